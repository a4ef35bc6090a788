"""The deploy ledger: every deploy recorded on the remote, in git itself.

Per environment, two refs on the remote (under the line's prefix,
``refs/continuity/`` for the default line and
``refs/continuity/lines/LINE/`` for a named one):

``deployed/ENV``
    the commit that runs there: a plain ref to the project's revision, so
    ``git log refs/continuity/deployed/staging..master`` works anywhere.
``ledger/ENV``
    a chain of small commits of the empty tree, newest first, one per event.
    Each message holds ``key: value`` lines: environment, revision, result
    (``deploying``, ``deployed``, ``failed`` or ``bad``), time, by (BUILD_URL or user@host),
    task, line, previous revision, and extra fields such as an image digest.
    The chain does not reference the project's commits, so fetching it is
    cheap.

A deploy writes two entries: an *intent* (``result: deploying``) in the
push that takes the environment's deploy lock, and its outcome (``deployed``
or ``failed``, whose parent is the intent) in the push that moves
``deployed/ENV`` and releases the lock. The lease on ``ledger/ENV`` in the
first push proves that what the task read is still current when it holds
the lock; an intent with no outcome is a run that stopped. Both refs are
only ever changed together, in atomic pushes guarded by leases. Any clone that can fetch from the remote can read
the ledger: ``fab continuity.history ENV``.
"""

from __future__ import annotations

import getpass
import os
import re
import shlex
import socket
from collections.abc import Iterable, Sequence
from dataclasses import field
from datetime import datetime, timezone
from typing import Any

from ._dataclass import dataclass
from ._text import one_line
from .config import Settings
from .errors import ContinuityError, UsageError
from .git import Git, RefUpdate
from .record import build_url
from .remote import Snapshot

__all__ = ["Ledger", "LedgerDamaged", "Entry", "State", "DEPLOYING", "who", "now", "build_url", "annotate", "take_annotations"]

_FIELDS = ("environment", "revision", "result", "time", "by", "task", "line", "previous")
#: The result of an intent: the entry a deploy writes when it takes the lock, before its outcome.
DEPLOYING = "deploying"
_ATTEMPTS = 5


@dataclass
class Entry:
    sha: str  # the ledger commit
    environment: str = ""
    revision: str = ""
    result: str = ""  # deploying | deployed | failed | bad
    time: str = ""
    by: str = ""
    task: str = ""
    line: str = ""
    previous: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    parent: str = ""  # the previous ledger commit ("" for the first)

    @property
    def unsettled(self) -> bool:
        """An intent that no outcome followed (state() hides the intents that one did)."""
        return self.result == DEPLOYING


@dataclass
class State:
    """What the remote says about one environment right now."""

    deployed: str  # revision recorded as running there, or ""
    head: str  # newest ledger commit, or ""
    entries: list[Entry]  # newest first

    @property
    def bad(self) -> set[str]:
        return {e.revision for e in self.entries if e.result == "bad"}

    def previous_good(self, current: str) -> str | None:
        """The newest revision deployed successfully before ``current``, not marked bad."""
        bad = self.bad
        for entry in self.entries:
            if entry.result == "deployed" and entry.revision not in bad and entry.revision != current:
                return entry.revision
        return None


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def who() -> str:
    """Jenkins' BUILD_URL (redacted) when set, else user@host."""
    if build_url():
        return build_url()
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (containers)
        user = str(os.getuid())
    return "{}@{}".format(user, socket.gethostname())


# -- fields the user's deploy task adds to its entry --------------------------------

_annotations: dict[str, str] = {}
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_RESERVED = {"environment", "revision", "result", "time", "by", "task", "line", "previous", "error", "reason"}


def annotate(**fields: Any) -> None:
    """Add fields (e.g. ``image_digest=...``) to the ledger entry of the deploy in progress.

    Call it from your deploy task (the Docker rollout helper does); values
    are recorded as ``key: value`` lines in the entry.
    """
    odd = sorted(key for key in fields if not _FIELD.match(key))
    if odd:
        raise UsageError("annotate(): {!r} is not a field name (letters, digits, '_', '.' and '-')".format(odd[0]))
    reserved = sorted(set(fields) & _RESERVED)
    if reserved:
        raise UsageError("annotate(): {} is recorded by continuity itself; use other names".format(", ".join(reserved)))
    _annotations.update({key: str(value) for key, value in fields.items()})


def take_annotations(clear: bool = False) -> dict[str, str]:
    """The fields `annotate` collected since the last ``take_annotations(clear=True)``."""
    fields = dict(_annotations)
    if clear:
        _annotations.clear()
    return fields


class LedgerDamaged(UsageError):
    """A ledger or deployed ref on the remote is not a commit: nothing can be recorded on it."""


class Ledger:
    """The ledger of one line on the remote: its ``deployed/ENV`` and ``ledger/ENV`` refs."""

    def __init__(self, git: Git, remote: str, prefix: str, line_option: str = "",
                 snapshot: Snapshot | None = None) -> None:
        self.git = git
        self.remote = remote
        self.prefix = prefix
        self.line_option = line_option  # " --line NAME" for the commands we suggest
        self.snapshot = snapshot  # what the task read from the remote; None: ask the remote (ls-remote)

    @classmethod
    def of(cls, git: Git, settings: Settings, snapshot: Snapshot | None = None) -> Ledger:
        """The ledger of the line ``settings`` are for, as ``snapshot`` shows it (else as the remote says now)."""
        return cls(git, settings.remote, settings.refs_prefix, settings.line_option, snapshot)

    def _listed(self, *patterns: str) -> dict[str, str]:
        """{ref: sha} on the remote for ``patterns`` (exact refs, or ``PREFIX/*``): from the snapshot if any."""
        if self.snapshot is None:
            return self.git.ls_remote(self.remote, *patterns)
        found = {}
        for ref, sha in self.snapshot.under(self.prefix).items():
            if any(ref == p or (p.endswith("/*") and ref.startswith(p[:-1])) for p in patterns):
                found[ref] = sha
        return found

    def deployed_ref(self, environment: str) -> str:
        return self.prefix + "deployed/" + environment

    def ledger_ref(self, environment: str) -> str:
        return self.prefix + "ledger/" + environment

    def environments(self) -> list[str]:
        """Environments with a deploy record or a ledger on the remote."""
        refs = self._listed(self.prefix + "deployed/*", self.prefix + "ledger/*")
        names = set()
        for ref in refs:
            kind, _, name = ref[len(self.prefix):].partition("/")
            if kind in ("deployed", "ledger"):
                names.add(name.partition("/")[0])  # deployed/ENV/x blocks ENV: `check` reports it
        return sorted(names)

    def state(self, environment: str, limit: int | None = None) -> State:
        """What the remote records for ``environment``; `LedgerDamaged` when a ref is not a commit.

        The entries leave out the intents that an outcome followed; up to
        ``limit`` of them, newest first.
        """
        refs = self.check([environment])
        head = refs.get(self.ledger_ref(environment), "")
        deployed = refs.get(self.deployed_ref(environment), "")
        # An outcome hides at most one intent: 2 * limit + 1 entries hold ``limit`` shown ones.
        entries = self._entries(head, 2 * limit + 1 if limit else None) if head else []
        settled = {entry.parent for entry in entries if entry.result != DEPLOYING}
        entries = [entry for entry in entries if not (entry.result == DEPLOYING and entry.sha in settled)]
        return State(deployed, head, entries[:limit] if limit else entries)

    def check(self, environments: Iterable[str]) -> dict[str, str]:
        """{ref: sha} of the environments' refs on the remote, each fetched here and a commit.

        Someone may push anything to these refs (a blob, a tag), or a ref
        under one of them (``deployed/ENV/x``: git cannot keep both, so ours
        could not be written): then no deploy can be recorded and the history
        cannot be read, so every task stops here, before it deploys, with the
        command that repairs it. Both are found by the same ``ls-remote``.
        """
        names = [ref for env in environments for ref in (self.ledger_ref(env), self.deployed_ref(env))]
        on_remote = self._listed(*names, *[ref + "/*" for ref in names]) if names else {}
        nested = sorted(ref for ref in on_remote if any(ref.startswith(name + "/") for name in names))
        if nested:
            raise self._nested(nested)
        refs = {ref: sha for ref, sha in on_remote.items() if ref in names}
        if not refs:
            return refs
        if self.snapshot is not None:  # the read fetched every object and knows its type
            for ref in names:
                if ref in refs and self.snapshot.kind(ref) != "commit":
                    raise self._damaged(ref, refs[ref], self.snapshot.kind(ref))
            return refs
        wanted = [ref for ref, sha in refs.items() if not self.git.commit(sha)]
        if wanted:
            self.git.fetch_objects(self.remote, *wanted)
        listed = self.git.run("cat-file", "--batch-check=%(objectname) %(objecttype)",
                              input="".join(sha + "\n" for sha in refs.values()))
        kinds = dict(line.split(" ", 1) for line in listed.splitlines() if " " in line)
        for ref in names:
            if ref in refs and kinds.get(refs[ref]) != "commit":
                raise self._damaged(ref, refs[ref], kinds.get(refs[ref], "missing object"))
        return refs

    def _damaged(self, ref: str, sha: str, kind: str) -> LedgerDamaged:
        environment = ref.rsplit("/", 1)[-1]
        peeled = self.git.commit(sha) if kind == "tag" else None
        if peeled:  # a tag of a commit: point the ref at that commit, and nothing is lost
            repair, loses = ["git", "push", self.remote, "+{}:{}".format(peeled, ref)], ""
        else:
            repair = ["git", "push", self.remote, "--delete", ref]
            loses = (" (this drops the history of {} that was there: it is no longer readable)".format(environment)
                     if "/ledger/" in ref else " (the next deploy records what runs there)")
        return LedgerDamaged(
            "the ledger of {0} on {1} is damaged: {2} is a {3} ({4}), not a commit, so no deploy to {0} can be "
            "read or recorded; repair it from this checkout with `{5}`{6}, then run the task again".format(
                environment, self.remote, ref, kind, sha[:12], shlex.join(repair), loses))

    def _nested(self, nested: Sequence[str]) -> LedgerDamaged:
        """The error for refs under ``deployed/ENV`` or ``ledger/ENV``, with the push that deletes them all."""
        kind, environment = nested[0][len(self.prefix):].split("/")[:2]
        parent = self.prefix + kind + "/" + environment
        more = " (and {} more)".format(len(nested) - 1) if len(nested) > 1 else ""
        repair = ["git", "push", self.remote, "--delete", *nested]
        return LedgerDamaged(
            "the ledger of {0} on {1} is damaged: {2}{3} is nested under {4}, a ref continuity needs, and git "
            "cannot keep both, so no deploy to {0} can be read or recorded; repair it from this checkout with "
            "`{5}` (nothing continuity recorded is lost), then run the task again".format(
                environment, self.remote, nested[0], more, parent, shlex.join(repair)))

    def _entries(self, head: str, limit: int | None) -> list[Entry]:
        args = ["log", "--format=%H%x00%P%x00%B%x1e"]
        if limit:
            args.append("--max-count={}".format(limit))
        out = self.git.run(*args, head, "--")
        entries = []
        for chunk in out.split("\x1e"):
            chunk = chunk.strip("\n")
            if chunk.count("\0") >= 2:
                sha, parents, body = chunk.split("\0", 2)
                entries.append(_parse(sha.strip(), body, parents.split()[0] if parents.split() else ""))
        return entries

    def append(self, environment: str, records: Sequence[dict[str, Any]], deployed: str | None = None,
               state: State | None = None) -> str:
        """Add ``records`` (dicts of fields) and, with ``deployed``, move deployed/ENV.

        Retries when another writer got there first; the deployed ref only
        moves from the value we read (a lease), never blindly.
        """
        expected = state.deployed if state is not None else None
        for _ in range(_ATTEMPTS):
            state = state or self.state(environment, limit=1)
            if deployed and expected is not None and state.deployed != expected:
                raise ContinuityError(
                    "{} was recorded as running {} by another run meanwhile (we read {}); not recording {} over "
                    "it: see `fab continuity.history {}{}`".format(
                        environment, state.deployed[:12] or "nothing", expected[:12] or "nothing", deployed[:12],
                        environment, self.line_option))
            expected = state.deployed
            head = state.head
            for record in records:
                head = self._commit(head, environment, record)
            updates = [(head, self.ledger_ref(environment))]
            leases = [(self.ledger_ref(environment), state.head)]
            if deployed:
                updates.append((deployed, self.deployed_ref(environment)))
                leases.append((self.deployed_ref(environment), state.deployed))
            if self.git.push(self.remote, updates, leases=leases).ok:
                return head
            state = None
        raise ContinuityError(
            "could not record the deploy of {} in the ledger on {}: it kept changing".format(environment, self.remote)
        )

    def commit_records(self, parent: str, environment: str, records: Sequence[dict[str, Any]]) -> str:
        """Commit ``records`` on top of ledger commit ``parent`` (nothing is pushed); the new head."""
        head = parent
        for record in records:
            head = self._commit(head, environment, record)
        return head

    def updates(self, environment: str, state: State, head: str, deployed: str | None = None) -> list[RefUpdate]:
        """The ref updates that move ``ledger/ENV`` from ``state.head`` to ``head`` (and deployed/ENV).

        They go into an atomic push, with whatever else must land with them
        (a lock taken or released, a branch moved): see `continuity.lock.push_coordinated`.
        """
        updates = [RefUpdate(self.ledger_ref(environment), head, state.head)]
        if deployed:
            updates.append(RefUpdate(self.deployed_ref(environment), deployed, state.deployed))
        return updates

    def _commit(self, parent: str, environment: str, record: dict[str, Any]) -> str:
        fields = dict(record, environment=environment)
        fields.setdefault("time", now())
        fields.setdefault("by", who())
        title = "{} {} {}".format(environment, fields.get("result", "?"), (fields.get("revision") or "")[:12])
        # Values (an error, an annotation, BUILD_URL) stay on the remote for good: redacted, one line each.
        body = "".join("{}: {}\n".format(k, one_line(str(v))) for k, v in fields.items() if v not in (None, ""))
        return self.git.commit_tree(self.git.empty_tree(), *(["-p", parent] if parent else []),
                                    "-m", "continuity ledger: " + title, "-m", body)


def _parse(sha: str, body: str, parent: str = "") -> Entry:
    values: dict[str, str] = {}
    for line in body.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key and " " not in key:
            values[key] = value.strip()
    known = {k: values.pop(k, "") for k in _FIELDS}
    return Entry(sha=sha, extra=values, parent=parent, **known)
