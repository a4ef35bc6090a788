"""``fab continuity.doctor``: check the whole setup, change nothing.

Capistrano's ``deploy:check`` looks at directories and permissions; the
doctor looks at everything a continuity run will lean on, in the order a run
meets it, and says for each one ``ok`` or what is wrong and the command or
setting that fixes it:

1. the settings; 2. the user's deploy task and its signature; 3. git's
version; 4. the checkout (a work tree, full history, clean, an identity
for our commits); 5. the remote: reachable, and pushable (tried with a push
the remote must refuse, see `remote.probe_push`); 6. the line's three
branches there; 7. the locks held there; 8. the ledger; 9. each
environment's hosts over SSH; 10. the Docker engine and the registry's
credentials; 11. the SMTP server and the webhooks.

A check that cannot run because an earlier one failed says ``skipped:
needs ...``; one whose feature is not configured says ``not configured``.
Every check has a time limit. Nothing moves on the remote, on a host, in a
registry or in a mailbox; locally, objects may be fetched (as ``status``
does), no ref moves. Exit 0 only when every check passed.
"""

from __future__ import annotations

import inspect
import re
import threading
from collections.abc import Iterator, Sequence
from enum import Enum
from functools import partial
from typing import Any, Callable, TypeVar

from invoke import Context, task

from . import config as _config
from . import notify as _notify
from ._dataclass import dataclass
from ._text import one_line, redact
from .boundary import LINE_HELP, boundary
from .config import Environment, Settings
from .config.fields import plain
from .deploy import find_deploy_task
from .docker.images import check_registry
from .docker.settings import docker_of
from .errors import ConfigError, ContinuityError, UsageError
from .git import Git
from .hosts import probe_host
from .ledger import Ledger
from .lock import assessment, describe_age, list_locks, stale, who
from .remote import (
    PROBE_SUFFIX,
    Snapshot,
    check_branch_names,
    check_remote,
    missing_branches,
    probe_push,
    read_remote,
)
from .report import Reporter
from .workspace import Workspace, checkout_state, open_workspace

__all__ = ["doctor", "run_doctor", "Finding", "Verdict"]

#: Time limits of the checks, in seconds. git's is also capped by ``continuity.git_timeout``.
GIT_TIMEOUT = 60.0
SSH_TIMEOUT = 10.0  # connect, and then `true`, unless the environment sets connect_timeout
DOCKER_TIMEOUT = 30.0  # the engine, then the registry
# SMTP and webhooks: continuity.notify.timeout, as when sending.

#: git's oldest version continuity runs on: ``rev-parse --end-of-options`` (2.30), ``fetch --no-write-fetch-head`` (2.29).
MIN_GIT = (2, 30)
#: From this version merges are made in memory (``merge-tree --write-tree``), else in a temporary worktree.
MERGE_TREE_GIT = (2, 38)

#: The deploy task's arguments continuity passes (``revision`` and ``line`` when the task takes them).
_PASSED = ("environment", "revision", "line")

_T = TypeVar("_T")


class Verdict(str, Enum):
    OK = "ok"
    FAILED = "FAILED"
    SKIPPED = "skipped"
    OFF = "not configured"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's report."""

    name: str  # "remote origin reachable", "hosts of staging", ...
    verdict: Verdict
    detail: str = ""  # what was checked; or what is wrong and how to fix it; or what it needs

    def line(self) -> str:
        return "doctor: {}: {}{}".format(self.name, self.verdict, ": " + one_line(self.detail) if self.detail else "")


def _ok(name: str, detail: str = "") -> Finding:
    return Finding(name, Verdict.OK, detail)


def _failed(name: str, detail: str) -> Finding:
    return Finding(name, Verdict.FAILED, detail)


class _Doctor:
    """What the checks found so far, for the checks after them."""

    def __init__(self, c: Any, line: str | None) -> None:
        self.c, self.line = c, line
        self.settings: Settings | None = None
        self.ws: Workspace | None = None
        self.git_found = False
        self.heads: dict[str, str] | None = None  # the line's branches on the remote, once it answered
        self.snapshot: Snapshot | None = None  # the one read of the remote the later checks share

    @property
    def remote(self) -> str:
        return "remote " + self.settings.remote if self.settings else "remote"

    @property
    def git_timeout(self) -> float:
        return min(self.settings.git_timeout, GIT_TIMEOUT) if self.settings else GIT_TIMEOUT

    def missing(self, *needs: str) -> str | None:
        """"needs X" for the first of ``needs`` an earlier check could not provide, else None."""
        have = {"settings": self.settings is not None, "git": self.git_found, "checkout": self.ws is not None,
                "remote": self.heads is not None}
        wants = {"settings": "valid settings", "git": "git", "checkout": "a git checkout", "remote": "the remote"}
        gap = next((need for need in needs if not have[need]), None)
        return "needs " + wants[gap] if gap else None


# -- 1. settings -------------------------------------------------------------------


def _settings(d: _Doctor) -> Iterator[Finding]:
    try:
        d.settings = s = _config.settings(d.c, line=d.line)
    except ConfigError as exc:
        yield _failed("settings", exc.message)
        return
    yield _ok("settings", "line {}, remote {}, auto_deploy: {}".format(
        s.line, s.remote, ", ".join(s.auto_deploy) or "none"))


def _unknown_line(c: Any, line: str) -> bool:
    raw = plain(c.config.get("continuity")) if hasattr(c, "config") else None
    lines = raw.get("lines") if isinstance(raw, dict) else None
    return line != "main" and not (isinstance(lines, dict) and line in lines)


# -- 2. the deploy task --------------------------------------------------------------


def _deploy_task(d: _Doctor) -> Iterator[Finding]:
    name = "deploy task"
    missing = d.missing("settings")
    if missing or d.settings is None:
        yield Finding(name, Verdict.SKIPPED, missing or "")
        return
    s = d.settings
    needed = ["auto_deploy ({})".format(", ".join(s.auto_deploy))] if s.auto_deploy else []
    needed += ["environments ({})".format(", ".join(s.environments))] if s.environments else []
    why = "needed by " + " and ".join(needed) if needed else (
        "not needed by these settings (auto_deploy is empty, no environments are configured); "
        "promote, deploy and rollback need it")
    try:
        found = find_deploy_task(s.deploy_task)
        problem = _unpassed(found, s.deploy_task)
    except UsageError as exc:
        found, problem = None, exc.message
    if problem:
        yield _failed(name, "{} ({})".format(problem, why)) if needed else _ok(name, "{}; {}".format(problem, why))
        return
    yield _ok(name, "{}{}, {}".format(s.deploy_task, _signature(found), why))


def _unpassed(found: Any, name: str) -> str | None:
    """What is wrong when the task requires an argument continuity does not pass, else None."""
    params = list(_parameters(found))[1:]  # the first one is the context
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_ONLY)
    required = [p.name for p in params if p.default is p.empty and p.kind in kinds and p.name not in _PASSED]
    if not required:
        return None
    return ("your '{0}' task{1} requires {2}, which continuity does not pass: it calls {0}(c, environment=NAME), "
            "adding revision= and line= when the task takes them; give {3} a default".format(
                name, _signature(found), ", ".join(repr(r) for r in required), "it" if len(required) == 1 else "them"))


def _parameters(found: Any) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(getattr(found, "body", found)).parameters.values())
    except (TypeError, ValueError):
        return []


def _signature(found: Any) -> str:
    try:
        return str(inspect.signature(getattr(found, "body", found)))
    except (TypeError, ValueError):
        return "(...)"


# -- 3. git ----------------------------------------------------------------------------


def _git(d: _Doctor) -> Iterator[Finding]:
    try:
        said = Git(".", d.git_timeout).run("version")
    except ContinuityError as exc:
        yield _failed("git", exc.message)
        return
    match = re.search(r"(\d+)\.(\d+)(\.\d+)?", said)
    version = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    shown = match.group(0) if match else said
    if version < MIN_GIT:
        yield _failed("git", "git {} is older than {}.{}, the oldest continuity runs on; upgrade git on this "
                             "machine".format(shown, *MIN_GIT))
        return
    d.git_found = True
    if version < MERGE_TREE_GIT:
        yield _ok("git", "git {}; degraded: merges are made in a temporary worktree, not in memory "
                         "(`git merge-tree --write-tree` needs {}.{}); upgrade git to avoid it".format(shown, *MERGE_TREE_GIT))
        return
    yield _ok("git", "git {}, merges in memory".format(shown))


# -- 4. the checkout ----------------------------------------------------------------


def _workspace(d: _Doctor) -> Iterator[Finding]:
    missing = d.missing("git")
    if missing:
        yield Finding("workspace", Verdict.SKIPPED, missing)
        return
    try:
        d.ws = ws = open_workspace(".", d.git_timeout)
    except UsageError as exc:
        yield _failed("workspace", exc.message)
        return
    git, remote = ws.git, d.settings.remote if d.settings else "origin"
    problems = []
    if git.run("rev-parse", "--is-shallow-repository") == "true":
        problems.append("a shallow clone: continuity needs the history to merge and compare; run `git fetch "
                        "--unshallow {}` (in Jenkins: turn off the git plugin's shallow clone)".format(remote))
    head, changed = checkout_state(git)
    if not head or not git.commit(head):
        problems.append("no commit is checked out yet; commit or check out your project first")
    if changed:
        shown = ", ".join(changed[:5]) + (" and {} more".format(len(changed) - 5) if len(changed) > 5 else "")
        problems.append("uncommitted changes to tracked files ({}); commit or stash them: pipeline, promote, "
                        "deploy, rollback and hotfix.finish refuse to run on them".format(shown))
    identity, problem = _identity(git)
    if problem:
        problems.append(problem)
    if problems:
        yield _failed("workspace", "{}: {}".format(ws.root, "; ".join(problems)))
        return
    branch, _ = git.head()
    at = "on {}".format(branch[len("refs/heads/"):]) if branch else "detached"
    yield _ok("workspace", "{}, {} at {}, clean, full history, {}".format(ws.root, at, (head or "")[:12], identity))


def _identity(git: Git) -> tuple[str, str | None]:
    """(who our commits are made as, None) or ("", what is wrong): lock tokens, ledger entries, merge commits."""
    fallback = git.identity_env()
    proc = git.call("var", "GIT_COMMITTER_IDENT", env=fallback)
    if proc.returncode:
        said = (proc.stderr.strip().splitlines() or ["git var failed"])[-1]
        return "", "git cannot make commits here ({}); set user.name and user.email (git config)".format(said)
    ident = proc.stdout.strip().rsplit(">", 1)[0] + ">"
    if fallback:
        return "commits as {} (git has no user.name/user.email; continuity's own default)".format(ident), None
    return "commits as {}".format(ident), None


# -- 5.-8. the remote ----------------------------------------------------------------


def _remote(d: _Doctor) -> Iterator[Finding]:
    name = d.remote + " reachable"
    missing = d.missing("settings", "checkout")
    if missing or d.settings is None or d.ws is None:
        yield Finding(name, Verdict.SKIPPED, missing or "")
        return
    s, git = d.settings, d.ws.git
    try:
        check_remote(git, s.remote)
        # One read for the branches, the locks and the ledger; a dry run's: no local ref moves.
        d.snapshot = read_remote(git, s, list(dict.fromkeys(vars(s.branches).values())), dry_run=True, require=False)
        d.heads = d.snapshot.heads
    except ContinuityError as exc:
        yield _failed(name, exc.message)
        return
    yield _ok(name, "{} answered `git ls-remote`".format(redact(git.remote_url(s.remote)) or s.remote))


def _pushable(d: _Doctor) -> Iterator[Finding]:
    name = d.remote + " pushable"
    missing = d.missing("remote")
    if missing or d.settings is None or d.ws is None or d.heads is None:
        yield Finding(name, Verdict.SKIPPED, missing or "")
        return
    s, heads = d.settings, d.heads
    branch = next((b for b in (s.branches.master, s.branches.development, s.branches.production) if b in heads), None)
    if branch is None:
        yield Finding(name, Verdict.SKIPPED, "needs a branch of the line on {} to try a push against (see "
                                             "branches)".format(s.remote))
        return
    try:
        refused = probe_push(d.ws.git, s.remote, branch, heads[branch])
    except ContinuityError as exc:
        refused = exc.message
    probe = "refs/heads/" + branch + PROBE_SUFFIX
    if refused:
        yield _failed(name, "{} refused a test push (creating {}): {}; continuity pushes the line's branches and "
                            "refs/continuity/*: give these credentials write access (a key or token that is not "
                            "read-only) and make the remote's hooks and branch rules accept them".format(
                                s.remote, probe, refused))
        return
    yield _ok(name, "{} took a push from us and ran its hooks on a test command (creating {}), then refused to "
                    "write it, as git must while {} exists; nothing moved".format(s.remote, probe, branch))


def _branches(d: _Doctor) -> Iterator[Finding]:
    name = "branches on " + d.settings.remote if d.settings else "branches"
    missing = d.missing("remote")
    if missing or d.settings is None or d.ws is None or d.heads is None:
        yield Finding(name, Verdict.SKIPPED, missing or "")
        return
    s, heads = d.settings, d.heads
    try:
        check_branch_names(d.ws.git, s)
    except UsageError as exc:
        yield _failed(name, exc.message)
        return
    names = list(dict.fromkeys(vars(s.branches).values()))
    absent = [n for n in names if n not in heads]
    if absent:
        yield _failed(name, missing_branches(s, absent).message)
        return
    yield _ok(name, ", ".join("{} {}".format(n, heads[n][:12]) for n in names))


def _locks(d: _Doctor) -> Iterator[Finding]:
    name = "locks on " + d.settings.remote if d.settings else "locks"
    missing = d.missing("remote")
    if missing or d.settings is None or d.snapshot is None:
        yield Finding(name, Verdict.SKIPPED, missing or "")
        return
    s = d.settings
    try:
        held = list_locks(d.snapshot, s)
    except ContinuityError as exc:
        yield _failed(name, exc.message)
        return
    if not held:
        yield _ok(name, "none held")
        return
    described, blocking = [], []
    for lock, _, info in held:
        state, lead_in = assessment(info, s)
        text = "{} held by {} ({} old){}".format(lock, who(info), describe_age(info), "; " + state if state else "")
        if stale(info, s):
            blocking.append("{}; {}: `fab continuity.unlock {}{}`".format(text, lead_in, lock, s.line_option))
        else:
            described.append(text)
    if blocking:
        yield _failed(name, " | ".join(blocking + described))
        return
    yield _ok(name, " | ".join(described))


def _ledger(d: _Doctor) -> Iterator[Finding]:
    name = "ledger on " + d.settings.remote if d.settings else "ledger"
    missing = d.missing("remote")
    if missing or d.settings is None or d.ws is None or d.snapshot is None:
        yield Finding(name, Verdict.SKIPPED, missing or "")
        return
    try:
        ledger = Ledger.of(d.ws.git, d.settings, d.snapshot)
        names = list(dict.fromkeys(list(d.settings.known_environments()) + ledger.environments()))
        refs = ledger.check(names)
    except ContinuityError as exc:
        yield _failed(name, exc.message)
        return
    recorded = sorted({ref.rsplit("/", 1)[-1] for ref in refs})
    yield _ok(name, "the records of {} are readable".format(", ".join(recorded)) if recorded
              else "nothing recorded yet (the first deploy starts it)")


# -- 9. hosts ----------------------------------------------------------------------------


def _hosts(d: _Doctor) -> Iterator[Finding]:
    missing = d.missing("settings")
    if missing or d.settings is None:
        yield Finding("hosts", Verdict.SKIPPED, missing or "")
        return
    targets = [env for env in d.settings.environments.values() if env.hosts]
    if not targets:
        yield Finding("hosts", Verdict.OFF, "no environment lists hosts (continuity.environments.NAME.hosts): "
                                            "deploys run locally")
        return
    for target in targets:
        yield _environment_hosts(d.c, target)


def _environment_hosts(c: Any, target: Environment) -> Finding:
    """One line for the hosts of ``target``, tried at once, each as `probe_host` does."""
    timeout = target.connect_timeout or SSH_TIMEOUT
    calls = [partial(probe_host, c, target, host, timeout) for host in target.hosts]
    outcomes = _all_within(2 * timeout + 5, calls)
    parts, failed = [], False
    for host, outcome in zip(target.hosts, outcomes):
        if isinstance(outcome, BaseException):
            failed = True
            parts.append("{}: {}".format(host, _unexpected(outcome)))
        elif outcome[1] is not None:
            failed = True
            parts.append("{}: {}".format(host, outcome[1]))
        else:
            parts.append("{} ({}): ok".format(host, outcome[0]))
    name = "hosts of " + target.name
    if failed:
        return _failed(name, "{}; check continuity.environments.{}.hosts (and user, port, key_filename) and your SSH "
                             "key".format("; ".join(parts), target.name))
    return _ok(name, "; ".join(parts) + " (logged in over SSH and ran `true`)")


# -- 10. Docker ----------------------------------------------------------------------------


def _docker(d: _Doctor) -> Iterator[Finding]:
    missing = d.missing("settings")
    if missing or d.settings is None:
        yield Finding("docker", Verdict.SKIPPED, missing or "")
        return
    docker = docker_of(d.settings)
    if docker is None:
        yield Finding("docker", Verdict.OFF, "continuity.docker.image is not set")
        return
    outcome = _all_within(DOCKER_TIMEOUT, [lambda: check_registry(docker)])[0]
    if isinstance(outcome, BaseException):
        yield _failed("docker", _unexpected(outcome))
        return
    yield _ok("docker", outcome + "; nothing pulled or pushed")


# -- 11. notifications -----------------------------------------------------------------------


def _notify_outlets(d: _Doctor) -> Iterator[Finding]:
    missing = d.missing("settings")
    if missing or d.settings is None:
        yield Finding("notify", Verdict.SKIPPED, missing or "")
        return
    if d.settings.notify is None:
        yield Finding("notify", Verdict.OFF, "no channel under continuity.notify")
        return
    for label, answered, text in _notify.probe(d.settings.notify):
        name = "notify " + label
        if answered:
            yield _ok(name, text)
        else:
            key = "email" if label.startswith("email") else "webhooks"
            yield _failed(name, "{}; check continuity.notify.{} and that the server is up".format(text, key))


# -- running them ------------------------------------------------------------------------------

#: The checks, in the order a run meets what they check.
CHECKS: list[Callable[[_Doctor], Iterator[Finding]]] = [
    _settings, _deploy_task, _git, _workspace, _remote, _pushable, _branches, _locks, _ledger, _hosts, _docker,
    _notify_outlets,
]


def run_doctor(c: Any, line: str | None = None, rep: Reporter | None = None) -> list[Finding]:
    """Run every check, printing a line for each as it ends; return the findings.

    An unknown ``--line`` is a `UsageError` before anything is checked. An
    error a check did not expect (a git command that failed) is its failed
    line, and the report goes on.
    """
    if line is not None and _unknown_line(c, line):
        _config.settings(c, line=line)  # raises the error that names the known lines
    rep = rep or Reporter()
    d = _Doctor(c, line)
    findings = []
    for check in CHECKS:
        try:
            for finding in check(d):
                rep.say(finding.line())
                findings.append(finding)
        except ContinuityError as exc:
            finding = _failed(check.__name__.strip("_").replace("_", " "), exc.message)
            rep.say(finding.line())
            findings.append(finding)
    return findings


def _all_within(seconds: float, calls: Sequence[Callable[[], _T]]) -> list[Any]:
    """Run ``calls`` at once, each in a daemon thread; their results (or exceptions), after ``seconds`` at most.

    A socket timeout bounds each read, not the whole exchange; a daemon thread
    still waiting at the deadline cannot keep ``fab`` from exiting.
    """
    outcomes: list[Any] = [TimeoutError("no answer within {:g}s".format(seconds))] * len(calls)

    def run(index: int, call: Callable[[], _T]) -> None:
        try:
            outcomes[index] = call()
        except Exception as exc:  # handed to the caller, which reports it
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i, call), daemon=True, name="continuity-doctor")
               for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, seconds))
    return list(outcomes)


def _unexpected(exc: BaseException) -> str:
    if isinstance(exc, ContinuityError):
        return exc.message
    if isinstance(exc, TimeoutError):
        return str(exc)
    return "{}: {}".format(type(exc).__name__, one_line(str(exc)) or "no message")


@task(help={"line": LINE_HELP})
@boundary
def doctor(c: Context, line: str | None = None) -> None:
    """Check the whole setup (settings, deploy task, git, remote, hosts, Docker, notifications); change nothing."""
    rep = Reporter()
    findings = run_doctor(c, line, rep)
    counts = {verdict: sum(1 for f in findings if f.verdict is verdict) for verdict in Verdict}
    rep.say("doctor: {} ok, {} failed, {} skipped, {} not configured".format(
        counts[Verdict.OK], counts[Verdict.FAILED], counts[Verdict.SKIPPED], counts[Verdict.OFF]))
    failed = [f.name for f in findings if f.verdict is Verdict.FAILED]
    if failed:
        raise ContinuityError("doctor: {} check(s) failed: {}; see the lines above".format(len(failed), ", ".join(failed)))
