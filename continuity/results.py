"""What was tested: check and build step results, kept on the remote, keyed by tree.

A result belongs to the **tree** a check ran on (not the commit: a merge
commit remade by a rerun, a hotfix merge or a fast-forward that gives the
same files is the same test) and to the check's **definition** (its command,
its number of shards and the image it runs in; not its name or time limit).

All results live in one ref on the remote, ``refs/continuity/results``,
shared by every line (lines share trees): a chain of commits, each adding
the results of one run to its parent's tree, laid out as git notes are::

    TREE[:2]/TREE[2:]/KEY            a check (or build step) that is not sharded
    TREE[:2]/TREE[2:]/KEY-IofN       shard I of N

Each file holds ``key: value`` lines (`Recorded`), so plain git reads one::

    git fetch origin refs/continuity/results
    git show FETCH_HEAD:1a/2b3c.../KEY

Writers (one per agent, maybe many at once) push with a lease on the head
they read; when another writer got there first they read the new head,
remake their commit on it (the union of both: a file is one check's or one
shard's, so it never merges) and push again. One ref, not one per result:
the remote's ref advertisement would grow with every run.

What is on the remote is believed only as far as it parses: a ref that is
not a commit is reported once and results are treated as absent (nothing is
reused and no revision counts as tested); files that do not parse are
ignored.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import random
import re
import shlex
import socket
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import field
from datetime import datetime, timezone
from typing import Any, Callable

from ._dataclass import dataclass
from ._text import one_line
from .config import BuildStep, Command, Settings
from .errors import ContinuityError, GitError, UsageError
from .git import Git
from .record import build_url

__all__ = ["REF", "PASSED", "FAILED", "TIMED_OUT", "FLAKY", "Unit", "Recorded", "Store", "Verdict", "ResultsDamaged",
           "definition", "check_units", "configured_checks", "register_checks", "build_unit", "recorded", "load", "publish", "build_label",
           "CANDIDATES", "Offered", "offer", "find_candidate", "withdraw", "tested_note", "untested_refusal", "commit_on",
           "ride",
           "tested_mark"]

REF = "refs/continuity/results"

PASSED = "passed"
FAILED = "failed"
TIMED_OUT = "timed-out"
FLAKY = "flaky"  # reserved for retries (a check that failed, then passed): counts as passed
_GOOD = (PASSED, FLAKY)

_ATTEMPTS = 20  # writers that race: each round one of them wins, so this many agents finishing at once
_MAX_BLOB = 8192  # a result is a few hundred bytes; anything bigger was not written by continuity
_MAX_FILES = 1000  # per tree
_FILE = re.compile(r"^(?P<key>[0-9a-f]{12,64})(?:-(?P<shard>[0-9]+)of(?P<shards>[0-9]+))?$")
_HEX = re.compile(r"^[0-9a-f]{40,64}$")
_FIELD = re.compile(r"^[a-z_]+$")

Say = Callable[[str], None]


# -- what runs ----------------------------------------------------------------------


def definition(kind: str, command: str, shards: int = 1, image: str = "", paths: Sequence[str] = ()) -> str:
    """The digest of what a check or build step is: a result counts only for the same one."""
    text = json.dumps({"kind": kind, "command": command, "shards": shards, "image": image, "paths": list(paths)},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Unit:
    """One thing that runs and gets a result: a check, one shard of a check, or a build step."""

    kind: str  # check | build
    name: str
    command: str
    key: str  # `definition`
    shard: int = 0  # 1..shards for a sharded check, else 0
    shards: int = 1
    reuse: bool = True
    timeout: float | None = None
    heartbeat: float = 0.0  # seconds between "still running" lines, 0 for none
    retries: int = 0  # times a failure runs again (not part of the definition: the same check)
    docker: bool = False  # runs in a container of the candidate's image (continuity.docker.checks)

    @property
    def file(self) -> str:
        """Its file name under the tree's directory."""
        return self.key + ("-{}of{}".format(self.shard, self.shards) if self.shard else "")

    @property
    def label(self) -> str:
        """"check 'unit'", "check 'unit' shard 2/4", "build step 'assets'"."""
        what = "build step" if self.kind == "build" else "docker check" if self.docker else "check"
        return "{} '{}'{}".format(what, self.name, " shard {}/{}".format(self.shard, self.shards) if self.shard else "")

    def env(self) -> dict[str, str]:
        """What a shard is told: which part it is (``CONTINUITY_SHARD``, from 1) of how many."""
        if not self.shard:
            return {}
        return {"CONTINUITY_SHARD": str(self.shard), "CONTINUITY_SHARDS": str(self.shards)}


def check_units(checks: Iterable[Command]) -> list[Unit]:
    """Every check, a `Unit` per shard for a sharded one, in the order they run."""
    units = []
    for check in checks:
        key = definition("check", check.command, check.shards)
        shards = range(1, check.shards + 1) if check.shards > 1 else [0]
        units += [Unit("check", check.name, check.command, key, shard, check.shards, check.reuse, check.timeout,
                       check.heartbeat, check.retries) for shard in shards]
    return units


_PROVIDERS: list[Callable[[Settings], list[Unit]]] = []


def register_checks(provider: Callable[[Settings], list[Unit]]) -> None:
    """Add the checks an area above defines (Docker's) to those that decide whether a tree is tested.

    ``provider(settings)`` returns its `Unit` s, none when the area is off;
    this layer does not know the area, as `config.register_section` does
    not know its settings.
    """
    if provider not in _PROVIDERS:
        _PROVIDERS.append(provider)


def configured_checks(settings: Settings) -> list[Unit]:
    """Every check a tree must pass to be tested: ``continuity.checks``, then those registered (Docker's)."""
    return check_units(settings.checks) + [unit for provider in _PROVIDERS for unit in provider(settings)]


def build_unit(step: BuildStep) -> Unit:
    return Unit("build", step.name, step.command, definition("build", step.command, paths=step.paths),
                timeout=step.timeout)


# -- a result -----------------------------------------------------------------------


@dataclass
class Recorded:
    """A result as the remote keeps it."""

    kind: str = "check"
    name: str = ""
    command: str = ""
    key: str = ""
    shard: int = 0
    shards: int = 1
    status: str = ""
    duration: float = 0.0
    time: str = ""
    host: str = ""
    by: str = ""
    build: str = ""  # BUILD_URL, redacted
    build_number: str = ""
    tree: str = ""
    revision: str = ""
    attempts: int = 0  # the runs it took on this tree, when it could run again (``retries``); 0: not said
    tries: int = 0  # the runs it was allowed (1 + retries)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status in _GOOD

    @property
    def where(self) -> str:
        """"in build #41" when Jenkins ran it, else "on HOST"."""
        label = build_label(self.build_number, self.build)
        return "in " + label if label else "on " + (self.host or "?")

    def text(self) -> str:
        """The file's content: ``key: value`` lines, each on one line, redacted."""
        fields = [("kind", self.kind), ("name", self.name), ("command", self.command), ("definition", self.key),
                  ("shard", "{}/{}".format(self.shard, self.shards) if self.shard else ""), ("status", self.status),
                  ("duration", "{:.2f}".format(self.duration)), ("time", self.time), ("host", self.host),
                  ("by", self.by), ("build", self.build), ("build_number", self.build_number), ("tree", self.tree),
                  ("revision", self.revision),
                  ("attempts", "{}/{}".format(self.attempts, self.tries) if self.attempts else "")]
        return "".join("{}: {}\n".format(k, one_line(v)) for k, v in fields if v)

    @classmethod
    def parse(cls, text: str) -> Recorded | None:
        """A `Recorded` from a file's content; None when it is not one (junk someone pushed)."""
        values: dict[str, str] = {}
        for line in text.splitlines():
            key, sep, value = line.partition(": ")
            if sep and _FIELD.match(key):
                values[key] = value.strip()
        if not values.get("status") or not values.get("definition"):
            return None
        shard, shards = 0, 1
        if values.get("shard"):
            match = re.match(r"^([0-9]+)/([0-9]+)$", values["shard"])
            if not match:
                return None
            shard, shards = int(match.group(1)), int(match.group(2))
        try:
            duration = float(values.get("duration") or 0)
        except ValueError:
            duration = 0.0
        known = ("kind", "name", "command", "status", "time", "host", "by", "build", "build_number", "tree",
                 "revision")
        record = cls(key=values["definition"], shard=shard, shards=shards, duration=duration)
        for k in known:
            setattr(record, k, values.get(k, ""))
        attempts = re.match(r"^([0-9]{1,4})/([0-9]{1,4})$", values.get("attempts", ""))
        if attempts:
            record.attempts, record.tries = int(attempts.group(1)), int(attempts.group(2))
        record.extra = {k: v for k, v in values.items()
                        if k not in known + ("definition", "shard", "duration", "attempts")}
        return record


def build_label(number: str, url: str) -> str:
    """"build #41" from BUILD_NUMBER, or from the number that ends a Jenkins BUILD_URL; "" for none."""
    if not number:
        match = re.search(r"/([0-9]+)/?$", url or "")
        number = match.group(1) if match else ""
    return "build #" + number if number else ""


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _by() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (containers)
        user = str(os.getuid())
    return "{}@{}".format(user, socket.gethostname())


def recorded(unit: Unit, tree: str, revision: str, result: Any, passed: bool = True, attempts: int = 1) -> Recorded:
    """The `Recorded` of ``unit`` after it ran on ``tree`` (a `_proc.Result`, its last run), here and now.

    ``passed`` false: it exited 0 but failed all the same (it changed the
    checkout). ``attempts``: the runs it took (``retries``); one that passed
    after a failure is `FLAKY`.
    """
    status = TIMED_OUT if result.timed_out else PASSED if result.ok and passed else FAILED
    if status == PASSED and attempts > 1:
        status = FLAKY
    return Recorded(kind=unit.kind, name=unit.name, command=unit.command, key=unit.key, shard=unit.shard,
                    shards=unit.shards, status=status, duration=result.duration, time=_now(),
                    host=socket.gethostname(), by=_by(), build=build_url(),
                    build_number=one_line(os.environ.get("BUILD_NUMBER", "")), tree=tree, revision=revision,
                    attempts=attempts if unit.retries else 0, tries=unit.retries + 1 if unit.retries else 0)


def _path(tree: str, file: str = "") -> str:
    return "{}/{}/{}".format(tree[:2], tree[2:], file)


# -- reading ------------------------------------------------------------------------


class ResultsDamaged(UsageError):
    """``refs/continuity/results`` on the remote is not a commit."""


@dataclass
class Verdict:
    """What the results say about some units on one tree."""

    passed: list[tuple[Unit, Recorded]] = field(default_factory=list)
    failing: list[tuple[Unit, Recorded]] = field(default_factory=list)  # failed or timed out
    missing: list[Unit] = field(default_factory=list)
    stale: dict[str, Recorded] = field(default_factory=dict)  # check name -> a result of another definition of it

    @property
    def ok(self) -> bool:
        return not self.failing and not self.missing

    @property
    def docker(self) -> bool:
        """The first problem is a Docker check's (run by `fab continuity.docker.check`)."""
        first = self.failing[0][0] if self.failing else self.missing[0] if self.missing else None
        return first is not None and first.docker

    def problem(self) -> str:
        """The first thing that keeps the tree from being tested, in a few words ("" when none)."""
        if self.failing:
            unit, rec = self.failing[0]
            return "{} {} {}".format(unit.label, "timed out" if rec.status == TIMED_OUT else rec.status, rec.where)
        if self.missing:
            unit = self.missing[0]
            if unit.name in self.stale:
                changed = "command, environment or image settings" if unit.docker else "command or shards"
                return "{} has no result for its current definition (its {} changed since it ran {})".format(
                    unit.label, changed, self.stale[unit.name].where)
            more = " (and {} more)".format(len(self.missing) - 1) if len(self.missing) > 1 else ""
            return "{} has no result{}".format(unit.label, more)
        return ""

    def source(self) -> str:
        """Where the passed results came from: "in build #41", or the newest of several."""
        if not self.passed:
            return ""
        newest = max((rec for _, rec in self.passed), key=lambda rec: rec.time)
        return newest.where


class Store:
    """``refs/continuity/results`` as read from the remote (``head`` "" when there is none)."""

    def __init__(self, git: Git, head: str = "", warning: str = "") -> None:
        self.git = git
        self.head = head
        self.warning = warning  # why results are treated as absent, when the ref is damaged
        self._trees: dict[str, dict[str, Recorded]] = {}

    def for_tree(self, tree: str) -> dict[str, Recorded]:
        """{file name: `Recorded`} for ``tree``; files that do not parse are left out."""
        return self.for_trees([tree])[tree]

    def for_trees(self, trees: Sequence[str]) -> dict[str, dict[str, Recorded]]:
        """`for_tree` of each of ``trees``: the ones not read yet in one ``ls-tree`` and one ``cat-file --batch``."""
        unread = [tree for tree in dict.fromkeys(trees) if _HEX.match(tree) and tree not in self._trees]
        if unread and self.head:
            proc = self.git.call("ls-tree", "-l", "-z", self.head, "--", *(_path(tree) for tree in unread))
            self._trees.update(self._parse(proc.stdout.split("\0") if proc.returncode == 0 else [], unread))
        return {tree: self._trees.get(tree, {}) for tree in trees}

    def every(self, limit: int = 100000) -> list[Recorded]:
        """Every result recorded, of every tree (at most ``limit`` files): one ``ls-tree`` and one
        ``cat-file --batch``."""
        if not self.head:
            return []
        listing = self.git.run("ls-tree", "-r", "-l", "-z", self.head).split("\0")[:limit]
        return [rec for found in self._parse(listing).values() for rec in found.values()]

    def _parse(self, listing: Sequence[str], trees: Sequence[str] = ()) -> dict[str, dict[str, Recorded]]:
        """{tree: {file name: `Recorded`}} from ``ls-tree -l -z`` entries (of ``trees`` only, when given),
        at most ``_MAX_FILES`` a tree; their blobs are read in one ``cat-file --batch``."""
        found: dict[str, dict[str, Recorded]] = {tree: {} for tree in trees}
        wanted: list[tuple[str, str, str]] = []  # (blob, tree, file name)
        per_tree: dict[str, int] = {}
        for entry in listing:
            meta, _, path = entry.partition("\t")
            parts, pieces = meta.split(), path.split("/")
            if len(parts) != 4 or parts[1] != "blob" or len(pieces) != 3 or not _FILE.match(pieces[2]):
                continue
            tree = pieces[0] + pieces[1]
            if not _HEX.match(tree) or (trees and tree not in found) or per_tree.get(tree, 0) >= _MAX_FILES:
                continue
            if parts[3].isdigit() and int(parts[3]) <= _MAX_BLOB:
                per_tree[tree] = per_tree.get(tree, 0) + 1
                wanted.append((parts[2], tree, pieces[2]))
        bodies = self.git.cat_batch([blob for blob, _, _ in wanted])
        for blob, tree, name in wanted:
            rec = Recorded.parse(bodies.get(blob, ""))
            if rec is not None and _matches(rec, name, tree):
                rec.tree = rec.tree or tree
                found.setdefault(tree, {})[name] = rec
        return found

    def verdict(self, tree: str, units: Sequence[Unit]) -> Verdict:
        """For each unit: passed, failing or missing on ``tree``."""
        results = self.for_tree(tree)
        verdict = Verdict()
        current = {unit.key for unit in units}
        for other in results.values():
            if other.kind == "check" and other.key not in current:
                verdict.stale.setdefault(other.name, other)
        for unit in units:
            rec = results.get(unit.file)
            if rec is None:
                verdict.missing.append(unit)
            elif rec.passed:
                verdict.passed.append((unit, rec))
            else:
                verdict.failing.append((unit, rec))
        return verdict


def _matches(rec: Recorded, name: str, tree: str) -> bool:
    """A file says what its path says (a file copied under another tree or key does not count)."""
    match = _FILE.match(name)
    assert match is not None
    shard = (int(match.group("shard")), int(match.group("shards"))) if match.group("shard") else (0, 1)
    return rec.key == match.group("key") and (rec.shard, rec.shards if rec.shard else 1) == shard and \
        rec.tree in ("", tree)


def load(git: Git, remote: str, snapshot: Any = None) -> Store:
    """``refs/continuity/results`` on ``remote``: a `Store` (empty when there is none or it is damaged).

    From ``snapshot`` (a `remote.Snapshot`, which holds every
    ``refs/continuity/`` ref and its objects) when the task read one: no
    connection then; else read from the remote.
    """
    if snapshot is not None:
        head, kind = snapshot.sha(REF), snapshot.kind(REF)
        return _store(git, remote, head, "" if not head or kind == "commit" else _not_a_commit(remote, head, kind))
    head = _remote_head(git, remote)
    return _store(git, remote, head, _check_head(git, remote, head) if head else "")


def _store(git: Git, remote: str, head: str, problem: str) -> Store:
    if problem:
        return Store(git, warning=problem + "; results are treated as absent: nothing is reused and no revision "
                     "counts as tested. " + _repair(remote))
    return Store(git, head)


def ride(git: Git, remote: str, rides: list[Any], records: Sequence[Recorded], store: Store,
         update: Callable[[str, str, str], Any]) -> bool:
    """Put ``records`` on ``rides`` (a push's ref updates): one update of `REF`, chained on one already there.

    ``update(ref, new, old)`` makes the ref update (`git.RefUpdate`). False
    when the results ref is damaged: nothing is put on it then.
    """
    if store.warning:
        return False
    index = next((i for i, r in enumerate(rides) if r.ref == REF), None)
    parent, old = (rides[index].new, rides[index].old) if index is not None else (store.head, store.head)
    commit = commit_on(git, parent, records)
    if index is None:
        rides.append(update(REF, commit, old))
    else:
        rides[index] = update(REF, commit, old)
    return True


def _remote_head(git: Git, remote: str) -> str:
    return git.ls_remote(remote, REF).get(REF, "")


def _check_head(git: Git, remote: str, head: str) -> str:
    """"" when ``head`` (fetched here if need be) is a commit, else what it is instead."""
    if not git.commit(head):
        git.fetch_objects(remote, REF)
    kind = git.call("cat-file", "-t", head).stdout.strip() or "missing object"
    return "" if kind == "commit" else _not_a_commit(remote, head, kind)


def _not_a_commit(remote: str, head: str, kind: str) -> str:
    return "{} on {} is a {} ({}), not a commit".format(REF, remote, kind or "missing object", head[:12])


def _repair(remote: str) -> str:
    return "Repair it with `{}` (the results that were there are lost: checks run again)".format(
        shlex.join(["git", "push", remote, "--delete", REF]))


# -- writing ------------------------------------------------------------------------


def publish(git: Git, remote: str, records: Sequence[Recorded], head: str | None = None) -> str:
    """Add ``records`` to ``refs/continuity/results`` on ``remote``; return the new head.

    ``head`` is the head already read (one round trip saved); when the push
    is refused because another writer moved it, read it again and remake
    the commit on it. Raises `ResultsDamaged` when the ref is not a commit.
    """
    if not records:
        return head or ""
    for attempt in range(_ATTEMPTS):
        if head is None:
            head = _remote_head(git, remote)
        if head:
            problem = _check_head(git, remote, head)
            if problem:
                raise ResultsDamaged("cannot record results: {}. {}".format(problem, _repair(remote)))
        commit = commit_on(git, head, records)
        if git.push(remote, [(commit, REF)], leases=[(REF, head)]).ok:
            return commit
        head = None
        time.sleep(random.uniform(0.05, 0.1) * min(attempt + 1, 5))  # many shards finish at once: spread them
    raise ContinuityError("could not record {} result(s) in {} on {}: it kept changing".format(
        len(records), REF, remote))


def commit_on(git: Git, parent: str, records: Sequence[Recorded]) -> str:
    """A commit of ``parent``'s tree plus ``records``, made in a temporary index (the checkout's is never touched)."""
    with tempfile.TemporaryDirectory(prefix="continuity-results-") as tmp:
        env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        if parent:
            git.run("read-tree", parent + "^{tree}", env=env)
        files = []
        for index, rec in enumerate(records):
            name = os.path.join(tmp, str(index))
            with open(name, "w", encoding="utf-8") as f:
                f.write(rec.text())
            files.append(name)
        blobs = git.run("hash-object", "-w", "--stdin-paths", input="\n".join(files) + "\n").split()
        info = "".join("100644 {}\t{}\n".format(blob, _path(rec.tree, _file_of(rec)))
                       for blob, rec in zip(blobs, records))
        git.run("update-index", "--add", "--replace", "--index-info", input=info, env=env)
        tree = git.run("write-tree", env=env)
    trees = sorted({rec.tree[:12] for rec in records})
    message = "continuity results: {} result(s) for tree {}".format(len(records), ", ".join(trees))
    try:
        return git.commit_tree(tree, *(["-p", parent] if parent else []), "-m", message)
    except GitError as exc:
        raise ContinuityError("could not make the results commit: {}".format(exc)) from None


def _file_of(rec: Recorded) -> str:
    return rec.key + ("-{}of{}".format(rec.shard, rec.shards) if rec.shard else "")


def tested_note(store: Store, tree: str, settings: Settings) -> str:
    """"" when every configured check passed on ``tree``, else "not tested: what is missing or failed"."""
    verdict = store.verdict(tree, configured_checks(settings))
    return "" if verdict.ok else "not tested: " + verdict.problem()


def untested_refusal(git: Git, settings: Settings, revision: str, force_command: str,
                     snapshot: Any = None) -> str | None:
    """Why ``revision`` may not be deployed, promoted or rolled back to, or None when its tree passed every
    check. The sentence names what to run, and the command with ``--force``."""
    tree = git.tree(revision)
    store = load(git, settings.remote, snapshot)
    verdict = store.verdict(tree, configured_checks(settings))
    if verdict.ok:
        return None
    damaged = " ({}; results are treated as absent)".format(store.warning.split(";")[0]) if store.warning else ""
    task = "docker.check" if verdict.docker else "test" + settings.line_option
    return ("{} is not tested: on its tree {}, {}{}; only tested revisions are deployed: check it with `git "
            "checkout {} && fab continuity.{}`, or pass --force if you mean it: `{}`".format(
                revision[:12], tree[:12], verdict.problem(), damaged, revision[:12], task, force_command))


def tested_mark(store: Store, git: Git, revision: str, settings: Settings) -> str:
    """"tested" or "not tested (why)", for ``status``."""
    try:
        tree = git.tree(revision)
    except GitError:
        return "tested: unknown here"
    note = tested_note(store, tree, settings)
    return "tested" if not note else "not tested ({})".format(note[len("not tested: "):])


# -- candidates ---------------------------------------------------------------------

CANDIDATES = "refs/continuity/candidates/"
_ID = re.compile(r"^[0-9a-f]{7,40}$")


@dataclass(frozen=True)
class Offered:
    """A candidate published for agents to check: ``refs/continuity/candidates/ID``.

    The ref points to a small record commit (the empty tree) whose first
    parent is the candidate, whose second is master's revision it was made
    from, and whose message holds ``key: value`` lines: fetching it brings
    the candidate, and plain git reads it.
    """

    id: str
    record: str
    sha: str  # the candidate commit
    base: str  # master's revision it was made from
    development: str
    fast_forward: bool
    line: str

    @property
    def ref(self) -> str:
        return CANDIDATES + self.id


def offer(git: Git, remote: str, sha: str, base: str, development: str, fast_forward: bool, line: str) -> Offered:
    """Publish the candidate ``sha`` on ``remote``; return it with its id."""
    fields = [("candidate", sha), ("base", base), ("development", development),
              ("fast_forward", "true" if fast_forward else "false"), ("line", line), ("time", _now()),
              ("by", build_url() or _by())]
    body = "".join("{}: {}\n".format(k, one_line(v)) for k, v in fields)
    record = git.commit_tree(git.empty_tree(), "-p", sha, "-p", base, "-m",
                             "continuity candidate: {} on {}".format(sha[:12], base[:12]), "-m", body)
    offered = Offered(record[:12], record, sha, base, development, fast_forward, line)
    if not git.push(remote, [(record, offered.ref)], leases=[(offered.ref, "")]).ok:
        raise ContinuityError("candidate {} already exists on {}; run the task again".format(offered.id, remote))
    return offered


def find_candidate(git: Git, remote: str, name: str, hint: str = "", snapshot: Any = None) -> Offered:
    """The candidate ``name`` (its id) on ``remote`` (in ``snapshot`` when the task read one), fetched here;
    `UsageError` when there is none."""
    if not _ID.match(name or ""):
        raise UsageError("--candidate takes the id `fab continuity.candidate` printed (hex digits, like 1a2b3c4d5e6f), "
                         "got {!r}".format(name))
    ref = CANDIDATES + name
    sha = snapshot.sha(ref) if snapshot is not None else git.ls_remote(remote, ref).get(ref)
    if not sha:
        raise UsageError("unknown candidate {} on {} (no {}); {}".format(name, remote, ref, hint or
                         "make one with `fab continuity.candidate`"))
    if not git.commit(sha):
        git.fetch_objects(remote, ref)
    parsed = _parse_offer(git, name, sha)
    if parsed is None:
        raise UsageError("candidate {} on {} is damaged ({} is not a record continuity wrote); make a new one with "
                         "`fab continuity.candidate`".format(name, remote, ref))
    return parsed


def _parse_offer(git: Git, name: str, sha: str) -> Offered | None:
    proc = git.call("log", "-1", "--format=%P%x00%B", sha, "--")
    if proc.returncode or "\0" not in proc.stdout or git.call("cat-file", "-t", sha).stdout.strip() != "commit":
        return None
    parents, body = proc.stdout.split("\0", 1)
    values = dict(line.split(": ", 1) for line in body.splitlines() if ": " in line)
    parents_list = parents.split()
    if len(parents_list) != 2 or values.get("candidate") != parents_list[0] or values.get("base") != parents_list[1]:
        return None
    return Offered(name, sha, parents_list[0], parents_list[1], values.get("development", ""),
                   values.get("fast_forward") == "true", values.get("line", ""))


def withdraw(git: Git, remote: str, offered: Offered) -> bool:
    """Delete the candidate's ref (only if it still is that record); True when it is gone."""
    try:
        return git.push(remote, [("", offered.ref)], leases=[(offered.ref, offered.record)]).ok
    except GitError:
        return False


def record_here(git: Git, remote: str, committed: bool, records: Sequence[Recorded], say: Callable[[str], None],
                strict: bool = False) -> None:
    """Publish what ran on a checkout (``fab continuity.test``, ``build``): only when it has no uncommitted
    changes (``committed``), whose tree is not what ran. A failure is a warning, or with ``strict`` (a
    candidate's shard, which is run to be recorded) an error."""
    if not committed:
        say("results not recorded: the checkout has uncommitted changes")
        return
    if not records:
        return
    try:
        publish(git, remote, records)
    except ContinuityError as exc:
        if strict:
            raise
        say("warning: results not recorded on {}: {}".format(remote, exc))
        return
    say("recorded {} result(s) for tree {} on {}".format(len(records), records[0].tree[:12], remote))
