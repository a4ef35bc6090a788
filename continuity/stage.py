"""The pipeline's stages as data.

A `Stage` is a name (its line in the console and its JUnit test case), what
a dry run says it would do (``plan``), and what a run does (``run``). The
pipeline (`continuity.pipeline`) only composes them: it runs them in order on
an `Attempt` and derives its dry-run plan from the same list, so the plan
cannot drift from what runs.

Each stage lives with its area: merge in `continuity.merge`, build in
`continuity.build`, check in `continuity.test`, push in `continuity.push`,
deploy in `continuity.deploy`; Docker adds its own through a `Plugin`
(`continuity.docker.stages`).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import field
from typing import Any, Callable, NamedTuple, Union

from . import results as _results
from ._dataclass import dataclass
from .config import Settings
from .errors import ContinuityError
from .git import RefUpdate
from .lock import HeldLock
from .record import RunRecord, StageStatus
from .report import Reporter
from .workspace import Workspace, command_env, require_candidate

__all__ = ["Candidate", "Attempt", "Done", "Stage", "Checks", "Plugin", "compose", "perform", "plan_lines",
           "record_results"]


@dataclass(frozen=True)
class Candidate:
    """Development merged into master: the commit the stages build, check, push and deploy."""

    sha: str
    base: str  # master's revision the candidate was made from
    development: str  # the pinned development revision
    fast_forward: bool


@dataclass
class Attempt:
    """What the stages of one pipeline run share; the candidate is new on each attempt.

    What rides on the master push: the push stage moves master in ONE atomic
    push that also carries ``rides`` and ``coordination``, and releases the
    pipeline lock. A stage adds to them before the push: ``rides`` is
    [`RefUpdate`] (ref, new, expected old) that must land atomically with
    master, e.g. a record of the run's results; a stale one is dropped and
    the push tried again without it. A stage that needs to do it right before
    the push (after the checks) gives its `Stage` a ``board`` function, which
    the push stage calls first. ``coordination`` (+ ``takes``, the locks it
    takes: [(`HeldLock`, expected token)]) is the deploy stage's: locks and
    ledger intents, all dropped together when any of it is stale
    (``coordinated`` says whether they landed). ``lock.rides`` (the pipeline
    lock's, `HeldLock.rides`) go with whichever push releases that lock: the
    master push, or the lock's own release when the run stops before it (a
    failing check). So a stage that records something whatever happens puts
    it on ``lock.rides``; one that records it only with master, on ``rides``.
    """

    c: Any  # the task's Context, for the user's deploy task
    settings: Settings
    ws: Any  # the Workspace (None only when a plan is printed without a checkout)
    rep: Reporter
    record: RunRecord
    base: str = ""
    development: str = ""
    deploy_task: Any = None
    lock: HeldLock | None = None
    candidate: Candidate | None = None  # once the merge stage made it
    decisions: list[Any] | None = None  # the build steps' `build.Decision`, once planned
    env: dict[str, str] = field(default_factory=dict)  # what build steps and checks see, once checked out
    pushed: bool = False  # master advanced to the candidate
    snapshot: Any = None  # the `remote.Snapshot` the attempt started from
    held: ExitStack | None = None  # the run's locks, let go when it ends
    rides: list[RefUpdate] = field(default_factory=list)  # ref updates for the master push (see above)
    coordination: list[RefUpdate] = field(default_factory=list)  # the deploy stage's part of the master push
    takes: list[tuple[HeldLock, str]] = field(default_factory=list)  # locks the master push takes
    claims: dict[str, Any] = field(default_factory=dict)  # environment -> `deploy.Claim` or why it skips
    coordinated: bool = False  # the master push carried ``coordination`` and ``takes``
    brought: bool | None = None  # development brought along in the master push (None: not needed)
    boarding: list[Callable[[Attempt], None]] = field(default_factory=list)  # the stages' ``board`` functions
    refusal: ContinuityError | None = None  # what a dry run refuses, raised after the plan
    results: list[_results.Recorded] = field(default_factory=list)  # build steps and checks that ran, to record
    store: _results.Store | None = None  # the results on the remote, once the check stage read them
    _tree: str = ""

    @property
    def git(self) -> Any:
        return self.ws.git

    @property
    def merged(self) -> Candidate:
        """The candidate, for the stages after the merge stage, which makes it."""
        if self.candidate is None:
            raise RuntimeError("no candidate yet: the merge stage makes it")
        return self.candidate

    @property
    def sha(self) -> str:
        """The candidate's revision."""
        return self.merged.sha

    @property
    def tree(self) -> str:
        """The candidate's tree: what results are recorded and looked up by."""
        if not self._tree:
            self._tree = self.git.tree(self.sha)
        return self._tree

    def check_out(self) -> None:
        """Check the candidate out, and set the environment its build steps and checks see."""
        self.git.checkout(self.sha)
        self.env = command_env(self.ws, self.sha, self.base, self.settings.branches.master)

    def verifier(self) -> Callable[[str, Any], None]:
        """``verify(culprit, result)`` for build steps and checks: the checkout is still exactly the candidate."""
        ws: Workspace = self.ws
        sha = self.sha
        return lambda culprit, result: require_candidate(ws, sha, culprit, result)


@dataclass(frozen=True)
class Done:
    """How a stage ended, when it is not simply "ok": its line's detail and status."""

    detail: str
    status: StageStatus = StageStatus.OK


Outcome = Union[str, Done]  # a detail, for a stage that ended ok


def _nothing(attempt: Attempt) -> str:
    return ""


class Stage(NamedTuple):
    """A stage of the pipeline.

    ``run(attempt)`` does the work and returns its line's detail (or a
    `Done`); it raises to fail the run. ``plan(attempt)`` returns what a dry
    run prints for it, one line each. ``skip(attempt)``, when it returns a
    reason, reports the stage as skipped instead of running it. ``then``
    runs after the stage's line is printed: what follows from it without
    being part of it. A ``dry`` stage changes nothing and runs in dry runs
    too (the merge, which the plan is about). An ``after_push`` stage runs
    once master advanced, not on every attempt. ``board(attempt)`` runs right
    before the master push, to add ref updates to it (see `Attempt`).

    A `typing.NamedTuple`, as `Checks` is, not a dataclass: every stage
    module makes its stage at import, where a frozen dataclass costs about
    a millisecond to make and a named tuple a tenth of that.
    """

    name: str
    run: Callable[[Attempt], Outcome]
    plan: Callable[[Attempt], Sequence[str]]
    skip: Callable[[Attempt], str] = _nothing
    then: Callable[[Attempt], None] | None = None
    dry: bool = False
    after_push: bool = False
    after: str = ""  # for a plugin's stage: the stage it comes right after
    board: Callable[[Attempt], None] | None = None  # adds to the master push (Attempt.rides) right before it


class Checks(NamedTuple):
    """More checks for the check stage, run after the configured ones (Docker's, in the image).

    ``units(settings)`` are its `results.Unit` s: the check stage reuses
    those that already passed on the candidate's tree, as it does the
    configured ones, and ``run(attempt, units)`` runs the others, adding
    each one's `results.Recorded` to ``attempt.results``; it returns how
    many ran and raises `CommandFailed` for the first that fails.
    """

    plan: Callable[[Attempt], Sequence[str]]
    run: Callable[[Attempt, Sequence[_results.Unit]], int]
    units: Callable[[Settings], Sequence[_results.Unit]]


class Plugin(NamedTuple):
    """What an area adds to the pipeline: stages (each placed after its ``after``) and checks.

    A named tuple like `Stage`: every run makes one, and a dataclass costs more to make.
    """

    stages: Sequence[Stage] = ()
    checks: Sequence[Checks] = ()


def compose(core: Sequence[Stage], plugins: Sequence[Plugin]) -> list[Stage]:
    """``core`` with each plugin's stages inserted right after the stage they name."""
    stages = list(core)
    for plugin in plugins:
        for stage in plugin.stages:
            names = [s.name for s in stages]
            if stage.after not in names:
                raise ValueError("stage {!r} comes after {!r}, which is not in the pipeline".format(stage.name, stage.after))
            stages.insert(names.index(stage.after) + 1, stage)
    return stages


def perform(stage: Stage, attempt: Attempt) -> StageStatus:
    """Run ``stage``: skipped, or timed on its own line; then its ``then``."""
    reason = stage.skip(attempt)
    if reason:
        attempt.rep.skipped(stage.name, reason)
        return StageStatus.SKIPPED
    with attempt.rep.stage(stage.name) as info:
        outcome = stage.run(attempt)
        done = outcome if isinstance(outcome, Done) else Done(outcome)
        info["detail"], info["status"] = done.detail, done.status
    if stage.then is not None:
        stage.then(attempt)
    return done.status


def plan_lines(stages: Sequence[Stage], attempt: Attempt) -> list[str]:
    """What a dry run says about ``stages``, in the order they would run."""
    return [line for stage in stages for line in stage.plan(attempt)]


def record_results(attempt: Attempt) -> None:
    """Record on the remote what the attempt's build steps and checks did (see `continuity.results`).

    Under the pipeline lock they ride on ``lock.rides``: with the master push
    when master advances, with the lock's release when the run stops before
    (a failing check). A ride another writer made stale is dropped by the
    push, and those results are not recorded: the next run checks again.
    Without a lock (``fab continuity.candidate``), a leased push of its own.
    A failure to record is a warning.
    """
    records, attempt.results = attempt.results, []
    if not records:
        return
    git, remote = attempt.git, attempt.settings.remote
    if attempt.lock is None:
        try:
            _results.publish(git, remote, records)
        except ContinuityError as exc:
            attempt.rep.say("warning: {} result(s) not recorded: {}".format(len(records), exc))
        return
    store = attempt.store or _results.load(git, remote, attempt.snapshot)
    if not _results.ride(git, remote, attempt.lock.rides, records, store, RefUpdate):
        attempt.rep.say("warning: {} result(s) not recorded: {}".format(len(records), store.warning))
