"""When development is red: find the culprit, land what is good, tell its author, wait quietly.

When the candidate (development merged into master) fails a check, the
pipeline looks for the first commit that breaks it among the commits new on
development: its first-parent chain since master (``git rev-list
--first-parent --reverse master..development``). Prefix ``i`` of that chain
is tested the way the candidate was: master merged with the chain's ``i``-th
commit in memory, the build steps, then only the checks that failed. The
results recorded on the remote count first (a tree checked before is not
checked again), then a bisection, at most ``culprit_max_runs`` check runs
(default ceil(log2 n) + 1), the last one re-running the failing check on
the culprit's candidate before blaming it.

The longest prefix known to pass lands: once every check (not only those
that failed) passed on its tree, master advances to it with the usual
compare-and-swap, and it deploys to ``auto_deploy``; development is not
brought along, it is ahead. Only the culprit's author is written to.

The culprit is recorded on the remote in ``refs/continuity/culprit`` (per
line), a commit of the empty tree whose message holds ``key: value`` lines.
While development is still the revision that was bisected, the next run says
so and runs nothing (`waiting`); any new commit on development (a fix, a
revert) makes the run go on as usual.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from . import build as _build
from . import results as _results
from ._dataclass import dataclass
from ._proc import Result
from ._text import one_line
from .config import Settings
from .errors import CommandFailed, ContinuityError
from .git import Git, RefUpdate
from .merge import merge_message, prepare
from .stage import Attempt, Candidate, Stage, perform, record_results
from .test import Done, run_units

__all__ = ["Known", "Blamed", "Waiting", "marker_ref", "known", "waiting", "failed_units", "find", "max_runs"]

_FIELDS = ("development", "culprit", "subject", "author", "tree", "checks", "keys")


class Blamed(ContinuityError):
    """The bisection's outcome: its first line is the run's summary; ``result`` the failing check's."""

    def __init__(self, message: str, result: Result | None = None) -> None:
        super().__init__(message)
        self.result = result


class Waiting(ContinuityError):
    """development still contains a known culprit and nothing new arrived: no check runs, no one is told."""


@dataclass(frozen=True)
class Known:
    """A culprit recorded on the remote."""

    development: str  # development's revision that was bisected
    culprit: str
    subject: str
    author: str
    tree: str  # of the culprit's candidate, where its check failed twice
    checks: tuple[str, ...]  # names of the checks it breaks
    keys: tuple[str, ...]  # their definitions (`results.definition`)

    @property
    def said(self) -> str:
        """"9f3e2a1 'Parse dates' by Alice breaks 'unit tests'"."""
        return "{} '{}' by {} breaks {}".format(self.culprit[:7], self.subject, self.author, _names(self.checks))


def _names(checks: Sequence[str]) -> str:
    return " and ".join("'{}'".format(name) for name in checks)


def marker_ref(settings: Settings) -> str:
    return settings.refs_prefix + "culprit"


def known(settings: Settings, snapshot: Any) -> Known | None:
    """The culprit recorded on the remote (as the run's snapshot read it), or None."""
    sha = snapshot.sha(marker_ref(settings)) if snapshot is not None else ""
    if not sha or snapshot.kind(marker_ref(settings)) != "commit":
        return None
    _, _, message = snapshot.body(sha).partition("\n\n")
    values = dict(line.split(": ", 1) for line in message.splitlines() if ": " in line)
    if not all(values.get(key) for key in ("development", "culprit", "keys")):
        return None
    return Known(values["development"], values["culprit"], values.get("subject", ""), values.get("author", ""),
                 values.get("tree", ""), tuple(values.get("checks", "").split("\t")), tuple(values["keys"].split()))


def waiting(settings: Settings, snapshot: Any, development: str) -> Waiting | None:
    """`Waiting` when development is still the revision whose culprit is recorded, and its checks are unchanged."""
    if not settings.culprit_finding:
        return None
    found = known(settings, snapshot)
    if found is None or found.development != development:
        return None
    configured = {unit.key for unit in _results.configured_checks(settings)}
    if not set(found.keys) <= configured:
        return None  # the failing check was changed or removed: check again
    return Waiting("{} still contains {}, which breaks {}; waiting for a fix (nothing new on {} since {})".format(
        settings.branches.development, found.culprit[:7], _names(found.checks), settings.branches.development,
        development[:12]))


def failed_units(attempt: Attempt) -> list[_results.Unit]:
    """The configured checks' units that failed in ``attempt`` (before its results are recorded)."""
    failed = {(rec.key, rec.shard) for rec in attempt.results if rec.kind == "check" and not rec.passed}
    return [unit for unit in _results.check_units(attempt.settings.checks) if (unit.key, unit.shard) in failed]


def max_runs(settings: Settings, commits: int) -> int:
    """The cap: ``culprit_max_runs``, or ceil(log2 n) + 1 check runs for n commits."""
    if settings.culprit_max_runs is not None:
        return settings.culprit_max_runs
    return math.ceil(math.log2(commits)) + 1 if commits > 1 else 1


# -- the bisection --------------------------------------------------------------------


@dataclass
class _Probe:
    """Prefix ``index`` of the chain: its candidate, and what its tree did."""

    index: int
    candidate: Candidate
    tree: str
    ok: bool | None = None  # None: not known
    result: Result | None = None  # the failing check's, when one ran here


class _Bisection:
    def __init__(self, attempt: Attempt, units: Sequence[_results.Unit], failure: ContinuityError) -> None:
        self.attempt, self.units, self.failure = attempt, list(units), failure
        self.settings, self.git, self.rep = attempt.settings, attempt.git, attempt.rep
        chain = self.git.run("rev-list", "--first-parent", "--reverse", "{}..{}".format(
            attempt.base, attempt.development), "--").split()
        self.chain = chain
        self.cap = max_runs(self.settings, len(chain))
        self.runs = 0
        self.log: list[str] = []
        self.probes: dict[int, _Probe] = {}
        self.store = attempt.store or _results.load(self.git, self.settings.remote, attempt.snapshot)
        self.known = known(self.settings, attempt.snapshot)

    def say(self, text: str) -> None:
        self.log.append(text)
        self.rep.say("bisect: " + text)

    def probe(self, index: int) -> _Probe:
        if index not in self.probes:
            if index == 0:
                made = Candidate(self.attempt.base, self.attempt.base, self.attempt.base, True)
            elif index == len(self.chain):
                made = self.attempt.merged
            else:
                b = self.settings.branches
                made = prepare(self.git, self.attempt.base, self.chain[index - 1], merge_message(self.settings),
                               (b.development, b.master))
            self.probes[index] = _Probe(index, made, self.git.tree(made.sha))
        return self.probes[index]

    def describe(self, index: int) -> str:
        if index == 0:
            return "{} {}".format(self.settings.branches.master, self.attempt.base[:7])
        sha = self.chain[index - 1]
        subject = self.git.run("show", "-s", "--format=%s", sha, "--")
        return "{} of {} ({} '{}')".format(index, len(self.chain), sha[:7], one_line(subject))

    def recorded(self, probe: _Probe) -> bool | None:
        """What the results on the remote say about the failed checks on the probe's tree."""
        verdict = self.store.verdict(probe.tree, self.units)
        if verdict.failing:
            return False
        return True if not verdict.missing else None

    def run(self, probe: _Probe, why: str) -> bool:
        """Build the probe's candidate and run the failed checks on it; True when they pass."""
        self.runs += index_cost(probe.index)
        attempt = self.sub(probe.candidate)
        ok = True
        try:
            attempt.check_out()
            if not _build.STAGE.skip(attempt):
                _build.STAGE.run(attempt)
            # not in the run's JUnit cases: those are the candidate's checks; the log says what ran here
            run_units(self.units, attempt.ws.root, env=attempt.env, say=self.rep.say,
                      verify=attempt.verifier(), jobs=self.settings.jobs, done=_done(attempt))
        except CommandFailed as exc:
            ok, probe.result = False, exc.result if isinstance(exc.result, Result) else probe.result
        finally:
            record_results(attempt)
            self.refresh()
        self.say("{}: {} ({}{})".format(self.describe(probe.index), "passed" if ok else "failed", why, "" if not
                                         probe.index else ", run {} of at most {}".format(self.runs, self.cap)))
        return ok

    def sub(self, candidate: Candidate) -> Attempt:
        a = self.attempt
        return Attempt(a.c, a.settings, a.ws, a.rep, a.record, base=a.base, development=candidate.development,
                       deploy_task=a.deploy_task, lock=a.lock, candidate=candidate, snapshot=a.snapshot, held=a.held,
                       store=self.store)

    def refresh(self) -> None:
        """Read results from the commit riding on the lock's release: what this run recorded counts too."""
        lock = self.attempt.lock
        ride = next((r for r in (lock.rides if lock else []) if r.ref == _results.REF), None)
        if ride is not None and not self.store.warning:
            self.store = _results.Store(self.git, ride.new)

    def search(self) -> tuple[int, int]:
        """(lo, hi): prefix lo passes (0: master), prefix hi fails; hi - lo is 1 when the search ended."""
        n = len(self.chain)
        self.refresh()  # the candidate's own failure
        hi = next((i for i in range(1, n) if self.quiet(i) is False), n)
        lo = max((i for i in range(1, hi) if self.quiet(i) is True), default=0)
        if lo or hi < n:
            self.say("recorded results: prefix {} passes, prefix {} fails".format(lo, hi))
        while hi - lo > 1 and self.runs < self.cap - 1:
            mid = (lo + hi) // 2
            probe = self.probe(mid)
            probe.ok = self.run(probe, "bisecting")
            lo, hi = (mid, hi) if probe.ok else (lo, mid)
        return lo, hi

    def quiet(self, index: int) -> bool | None:
        """What the recorded results say about prefix ``index``, without saying it."""
        probe = self.probe(index)
        if probe.ok is None:
            probe.ok = self.recorded(probe)
        return probe.ok

    def master_passes(self) -> bool:
        """Whether master passes the failed checks: recorded (the usual case: master is a tested tree), or run
        once, outside the cap (a check added or changed since master was tested)."""
        probe = self.probe(0)
        if probe.ok is None:
            probe.ok = self.recorded(probe)
        if probe.ok is None:
            probe.ok = self.run(probe, "no result recorded for master's tree")
        return probe.ok

    def confirm(self, hi: int) -> bool | None:
        """Re-run the failing checks on the culprit's candidate: True when they fail again (blame), None when
        the cap was reached first."""
        probe = self.probe(hi)
        found = self.known
        if found is not None and found.tree == probe.tree and set(u.key for u in self.units) <= set(found.keys):
            self.say("{}: failed twice before (recorded culprit)".format(self.describe(hi)))
            return True
        if self.runs >= self.cap:
            return None
        return not self.run(probe, "re-run before blaming")


def _done(attempt: Attempt) -> Done:
    def done(unit: _results.Unit, result: Result, passed: bool, attempts: int) -> None:
        attempt.results.append(_results.recorded(unit, attempt.tree, attempt.sha, result, passed, attempts))
    return done


def find(attempt: Attempt, stages: Sequence[Stage], units: Sequence[_results.Unit],
         failure: ContinuityError) -> None:
    """Bisect development's new commits for the one that breaks ``units``; land the good prefix; raise `Blamed`.

    Called under the pipeline lock once the candidate failed ``units``
    (``failure``). Always raises: `Blamed`, whose first line is the run's
    summary ("landed 4 of 6 new commits; 9f3e2a1 'Parse dates' by Alice
    breaks 'unit tests'").
    """
    rep, record = attempt.rep, attempt.record
    try:
        bisection, lo, hi, blamed, innocent = _search(attempt, units, failure)
    except ContinuityError as exc:  # the bisection broke (git, a merge conflict on a prefix): the failure stands
        rep.say("warning: no culprit sought further: {}".format(str(exc).splitlines()[0]))
        raise failure from None
    record.bisection = bisection.log
    if innocent:
        bisection.say("{} fails on {} too: no commit is to blame".format(
            _names(_unique(units)), attempt.settings.branches.master))
        raise failure
    n = len(bisection.chain)
    if blamed:
        culprit = _commit(attempt.git, bisection.chain[hi - 1])
        found = _mark(bisection, hi, culprit)
        record.culprit = "{} {} {}".format(culprit[0][:12], culprit[1], culprit[2])
        record.commits = [culprit]
        told = found.said
    elif blamed is None and hi - lo > 1:
        told = "the first failing commit is one of {} to {} (bisection stopped after {} check runs: " \
               "continuity.culprit_max_runs)".format(bisection.chain[lo][:7], bisection.chain[hi - 1][:7],
                                                     bisection.runs)
    elif blamed is None:
        told = "{} fails {}, not re-run before blaming it (continuity.culprit_max_runs reached)".format(
            bisection.chain[hi - 1][:7], _names(_unique(units)))
    else:
        told = "{} failed, then passed when re-run on {}: it looks flaky; no commit is blamed".format(
            _names(_unique(units)), bisection.chain[hi - 1][:7])
    landed, why = _land(bisection, lo, stages) if lo else (0, "")
    summary = "landed {} of {} new commits; {}{}".format(landed, n, told, why)
    result = bisection.probe(hi).result or getattr(failure, "result", None)
    raise Blamed("\n".join([summary, "bisection:"] + ["  " + line for line in bisection.log]), result)


def _search(attempt: Attempt, units: Sequence[_results.Unit],
            failure: ContinuityError) -> tuple[_Bisection, int, int, bool | None, bool]:
    """The bisection, on its own line: (it, lo, hi, blamed: True/False/None for not known, innocent: master
    fails too)."""
    with attempt.rep.stage("bisect") as info:
        bisection = _Bisection(attempt, units, failure)
        bisection.say("{} new commit(s) on {}; check(s) {} failed; at most {} check run(s)".format(
            len(bisection.chain), attempt.settings.branches.development, _names(_unique(units)), bisection.cap))
        lo, hi = bisection.search()
        innocent = lo == 0 and not bisection.master_passes()  # the check, not a commit, is broken
        blamed = bisection.confirm(hi) if hi - lo == 1 and not innocent else None
        info["detail"] = "{} check run(s); {}".format(bisection.runs, "culprit {}".format(
            bisection.chain[hi - 1][:7]) if blamed else "no culprit named")
    return bisection, lo, hi, blamed, innocent


def index_cost(index: int) -> int:
    """What a run on prefix ``index`` costs against the cap: master's own run is free."""
    return 1 if index else 0


def _unique(units: Sequence[_results.Unit]) -> list[str]:
    return list(dict.fromkeys(unit.name for unit in units))


def _commit(git: Git, sha: str) -> tuple[str, str, str, str]:
    """(sha, subject, author name, author email) of one commit (a merge commit too)."""
    out = git.run("show", "-s", "--format=%H%x00%s%x00%an%x00%ae", sha, "--")
    full, subject, name, email = (out.split("\0") + ["", "", "", ""])[:4]
    return full, one_line(subject), one_line(name), one_line(email)


def _mark(bisection: _Bisection, hi: int, culprit: tuple[str, str, str, str]) -> Known:
    """Record the culprit on the remote: it rides on the push that releases the pipeline lock."""
    attempt, git = bisection.attempt, bisection.git
    names = _unique(bisection.units)
    found = Known(attempt.development, culprit[0], culprit[1], culprit[2], bisection.probe(hi).tree, tuple(names),
                  tuple(dict.fromkeys(unit.key for unit in bisection.units)))
    values = [("development", found.development), ("culprit", found.culprit), ("subject", found.subject),
              ("author", found.author), ("tree", found.tree), ("checks", "\t".join(one_line(n) for n in names)),
              ("keys", " ".join(found.keys))]
    commit = git.commit_tree(git.empty_tree(), "-m", "continuity culprit: {}".format(found.culprit[:12]), "-m",
                             "".join("{}: {}\n".format(k, v) for k, v in values))
    ref = marker_ref(attempt.settings)
    lock = attempt.lock
    if lock is not None:
        old = attempt.snapshot.sha(ref) if attempt.snapshot is not None else ""
        lock.rides = [r for r in lock.rides if r.ref != ref] + [RefUpdate(ref, commit, old)]
    return found


def _land(bisection: _Bisection, lo: int, stages: Sequence[Stage]) -> tuple[int, str]:
    """Advance master to prefix ``lo``'s candidate once every check passed on it, and deploy it.

    (commits landed, what kept them from landing). development is not
    brought along: it is ahead.
    """
    a, probe = bisection.attempt, bisection.probe(lo)
    settings = replace(a.settings, sync_development=False)
    attempt = Attempt(a.c, settings, a.ws, a.rep, a.record, base=a.base, development=probe.candidate.development,
                      deploy_task=a.deploy_task, lock=a.lock, candidate=probe.candidate, snapshot=a.snapshot,
                      held=a.held, store=bisection.store, boarding=[s.board for s in stages if s.board])
    master = settings.branches.master
    a.rep.say("landing the first {} of {} new commits: {} {} -> {}".format(
        lo, len(bisection.chain), master, a.base[:12], probe.candidate.sha[:12]))
    failed = a.record.revisions.get("candidate", "")
    a.record.revisions["candidate"] = probe.candidate.sha
    try:
        attempt.check_out()
        for stage in stages:
            if not stage.dry and not stage.after_push:
                perform(stage, attempt)
    except ContinuityError as exc:
        record_results(attempt)
        a.record.revisions["candidate"] = failed
        return 0, "; nothing landed: {}".format(str(exc).splitlines()[0])
    if not attempt.pushed:
        a.record.revisions["candidate"] = failed
        return 0, "; nothing landed: {} moved on {} during the bisection (the next run starts again)".format(
            master, settings.remote)
    try:
        for stage in stages:
            if stage.after_push:
                perform(stage, attempt)
    except ContinuityError as exc:  # master advanced: the culprit is still what the run must say
        return lo, "; then: {}".format(str(exc).splitlines()[0])
    return lo, ""
