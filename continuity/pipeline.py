"""``fab continuity.pipeline``: keep master a candidate release.

The pipeline composes the stages of the other modules, in this order:

preflight  settings, the deploy task, the checkout, the remote, branch names
fetch      pin development's revision and master's revision on the remote
lock       the line's pipeline lock, once there is something to do (fetch again if we had to wait)
merge      the candidate: development merged into master (nothing changes yet)  `merge.STAGE`
build      the build steps whose inputs changed, on the candidate                `build.STAGE`
check      every check on exactly the candidate's tree                           `test.check_stage`
push       master: base -> candidate, as a compare-and-swap on the remote       `push.STAGE`
deploy     the user's deploy task for each ``auto_deploy`` environment           `deploy.STAGE`

Docker adds "image" after build, its checks to check and "publish" after
push (`docker.plugin`). The stages are data (`stage.Stage`): a dry run
prints the plan of the very list a run goes through.

If master moved on the remote while we were testing, the push is refused by
the remote; we never push anyway. We start again from the fetch (keeping the
pinned development revision) up to ``max_attempts`` times, testing the new
candidate from scratch.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from invoke import Context, task

from . import build as _build
from . import candidate as _candidate
from . import config as _config
from . import culprit as _culprit
from . import deploy as _deploy
from . import docker as _docker
from . import merge as _merge
from . import push as _push
from . import test as _test
from ._text import redact
from .boundary import JUNIT_HELP, LINE_HELP, boundary
from .config import Settings
from .errors import ContinuityError, GitError
from .ledger import Ledger
from .lock import remote_lock
from .publish import finish
from .record import RunRecord, RunState, flaky_note, start_record
from .remote import read_remote
from .report import Reporter
from .stage import Attempt, Stage, compose, perform, plan_lines, record_results
from .workspace import Workspace, exclusive, require_clean, restored_head

__all__ = ["pipeline", "run_pipeline", "stages", "print_plan", "Outcome"]

#: What `run_pipeline` returned before the one `RunRecord`: the same object, by its old name.
Outcome = RunRecord


def stages(settings: Settings) -> list[Stage]:
    """The pipeline's stages for ``settings``, in the order they run."""
    plugins = [_docker.plugin(settings)]
    checks = [part for plugin in plugins for part in plugin.checks]
    core = [_merge.STAGE, _build.STAGE, _test.check_stage(checks), _push.STAGE, _deploy.STAGE]
    return compose(core, plugins)


@task(
    help={
        "dry_run": "Fetch, merge in memory and print the plan; build, check, push and deploy nothing.",
        "junit": JUNIT_HELP,
        "candidate": "Advance master to this candidate (`fab continuity.candidate`) once every check and shard "
                     "passed on its tree, then deploy.",
        "line": LINE_HELP,
    }
)
@boundary
def pipeline(c: Context, dry_run: bool = False, junit: str | None = None, candidate: str | None = None,
             line: str | None = None) -> None:
    """Build, check, merge development into master, push, deploy to auto_deploy."""
    settings = _config.settings(c, line=line)
    if candidate is not None:
        _candidate.advance(c, settings, candidate, dry_run=dry_run,
                           junit=_config.absolute_path(junit) if junit else None)
        return
    run_pipeline(c, settings, dry_run=dry_run, junit=junit)


def run_pipeline(c: Any, settings: Settings, dry_run: bool = False, reporter: Reporter | None = None,
                 junit: str | None = None) -> RunRecord:
    """The pipeline as a function; returns its `record.RunRecord` or raises.

    The record's ``state`` says how it ended (nothing-to-do, planned, pushed,
    deployed); ``base``, ``development``, ``candidate`` and ``deployed`` what
    it worked on. Whatever happens, the run ends with the summary, then the
    JUnit report (``junit`` or ``continuity.junit``) and the notifications.
    """
    junit = _config.absolute_path(junit) if junit else None  # now: a deploy task may chdir
    rep = reporter or Reporter()
    record = start_record("pipeline", settings, revisions={"base": "", "development": "", "candidate": ""})
    ws = None
    try:
        with rep.stage("preflight") as info:
            ws, deploy_task = _preflight(settings)
            info["detail"] = "{} at {}".format(settings.remote, redact(ws.git.remote_url(settings.remote)) or "?")
        with exclusive(ws, clean=False, say=rep.say), restored_head(ws, say=rep.say), ExitStack() as held:
            _run(c, settings, ws, deploy_task, rep, record, dry_run, held)
    except ContinuityError as exc:
        summary = "FAILED: " + _failure_summary(exc, record, settings)
        waiting = isinstance(exc, _culprit.Waiting)  # said at once, told no one: it is not news
        finish(settings, rep, _with_commits(ws, record, settings), exc, summary, junit=junit, send=not waiting)
        rep.summary(summary)
        raise
    except BaseException as exc:
        stopped = _stopped_summary(record, settings)
        finish(settings, rep, _with_commits(ws, record, settings), exc, stopped, junit=junit)
        rep.summary(stopped)
        raise
    summary = _success_summary(record, settings) + flaky_note(rep.checks)
    finish(settings, rep, _with_commits(ws, record, settings), summary=summary, junit=junit)
    rep.summary(summary)
    return record


def _with_commits(ws: Workspace | None, record: RunRecord, settings: Settings) -> RunRecord:
    """The commits the run brings in (base..development), for the notifications (when there are any)."""
    if settings.notify is None:  # nobody to tell
        return record
    if record.culprit:  # a bisection blamed one commit: only its author is told
        return record
    if ws is not None and record.base and record.development and record.base != record.development:
        try:
            record.commits = ws.git.commits("{}..{}".format(record.base, record.development))
        except GitError:
            pass
    return record


def _preflight(settings: Settings) -> tuple[Workspace, Any]:
    return _deploy.preflight(settings, need_deploy=bool(settings.auto_deploy))


def _run(c: Any, settings: Settings, ws: Workspace, deploy_task: Any, rep: Reporter, record: RunRecord, dry_run: bool,
         held: ExitStack) -> None:
    """Fetch; when there is work, take the line's pipeline lock (``held``) and fetch again; then the stages.

    A run with nothing to do never touches the lock, so a job that polls
    often stays cheap; a dry run takes no lock at all.
    """
    git, branches = ws.git, settings.branches
    pipeline_stages = stages(settings)
    development = lock = None
    locked = dry_run
    attempts = 0
    ready = False
    while attempts < settings.max_attempts:
        with rep.stage("fetch") as info:
            snapshot = read_remote(git, settings, dry_run=dry_run)  # one connection: branches, locks, ledgers
            heads = snapshot.heads
            pinned = development or heads[branches.development]
            base = heads[branches.master]
            info["detail"] = "{} {}, {} {}".format(branches.development, pinned[:12], branches.master, base[:12])
        record.revisions.update(base=base, development=pinned)
        if git.is_ancestor(pinned, base):
            record.state = RunState.NOTHING_TO_DO
            rep.say("nothing to do: {} already contains {} at {}".format(branches.master, branches.development, pinned[:12]))
            _push.sync_development(git, settings, pinned, base, rep.say, dry_run=dry_run)  # an earlier run could not
            return
        waiting = _culprit.waiting(settings, snapshot, pinned)
        if waiting is not None:
            raise waiting
        if not ready:  # there is work: refuse now what would refuse it after the lock or after master moved
            require_clean(ws)  # it checks out the candidate (a run with nothing to do never looks)
            Ledger.of(git, settings, snapshot).check(settings.auto_deploy)
            ready = True
        if not locked:
            with rep.stage("lock") as info:
                lock = held.enter_context(remote_lock(git, settings, "pipeline", say=rep.say))
                info["detail"] = "pipeline lock on {}".format(settings.remote)
            locked = True
            if lock.waited:
                continue  # fetch again: another run moved things while we waited
            # Taken at once: what we read is what the lock protects (the master push is a compare-and-swap anyway).
        development = pinned
        attempts += 1
        attempt = Attempt(c, settings, ws, rep, record, base=base, development=development, deploy_task=deploy_task,
                          lock=lock, snapshot=snapshot, held=held,
                          boarding=[stage.board for stage in pipeline_stages if stage.board])
        if not _try(attempt, pipeline_stages, dry_run):
            return
        if attempt.pushed:
            break
        if attempts < settings.max_attempts:
            rep.say("{} moved while we were testing; starting again on the new {} (attempt {} of {})".format(
                branches.master, branches.master, attempts + 1, settings.max_attempts))
    else:
        raise ContinuityError(
            "{0} kept moving on {1} while we tested ({2} attempts); nothing was pushed. Run the pipeline "
            "again, or raise continuity.max_attempts. Something other than continuity may be pushing "
            "to {0}.".format(branches.master, settings.remote, settings.max_attempts)
        )
    for stage in pipeline_stages:
        if stage.after_push:
            perform(stage, attempt)


def _try(attempt: Attempt, pipeline_stages: Sequence[Stage], dry_run: bool) -> bool:
    """One attempt, up to the push; False after a dry run's plan (the run ends there)."""
    for stage in pipeline_stages:
        if stage.dry:
            perform(stage, attempt)
    if dry_run:
        print_plan(attempt, pipeline_stages)
        attempt.record.state = RunState.PLANNED
        return False
    attempt.check_out()
    try:
        for stage in pipeline_stages:
            if not stage.dry and not stage.after_push:
                perform(stage, attempt)
    except ContinuityError as exc:
        failed = _culprit.failed_units(attempt) if attempt.settings.culprit_finding else []
        record_results(attempt)  # a failed check is a result too; an interruption records nothing
        if failed and attempt.lock is not None:
            _culprit.find(attempt, pipeline_stages, failed, exc)  # raises: what it found, what landed
        raise
    record_results(attempt)
    return True


def print_plan(attempt: Attempt, pipeline_stages: Sequence[Stage]) -> None:
    """The stages a run would go through, in the order they run; refusals as the run would refuse."""
    for line in plan_lines(pipeline_stages, attempt):
        attempt.rep.say("plan: " + line)
    attempt.rep.say("plan: dry run: nothing was built, checked, pushed or deployed")
    if attempt.refusal:
        raise attempt.refusal


def _success_summary(record: RunRecord, settings: Settings) -> str:
    master = settings.branches.master
    if record.state == "nothing-to-do":
        return "nothing to do; {} is at {}".format(master, record.base[:12])
    if record.state == "planned":
        return "dry run; {} would go from {} to {}".format(master, record.base[:12], record.candidate[:12])
    text = "{} advanced {} -> {}".format(master, record.base[:12], record.candidate[:12])
    for environment, result in record.deployed.items():
        text += "; {}: {}".format(environment, result)
    return text


def _stopped_summary(record: RunRecord, settings: Settings) -> str:
    """"stopped" (Ctrl-C, SIGTERM); once master moved, with how to deploy what the next run will not."""
    if record.state not in (RunState.PUSHED, RunState.DEPLOYED):
        return "stopped"
    left = [env for env in settings.auto_deploy if env not in record.deployed]
    text = "stopped after {} advanced to {}".format(settings.branches.master, record.candidate[:12])
    if left:
        text += "; the next pipeline run has nothing to do: deploy it with {}".format(
            " and ".join("`{}`".format(_deploy.redeploy_command(settings, env)) for env in left))
    return text


def _failure_summary(exc: BaseException, record: RunRecord, settings: Settings) -> str:
    first = str(exc).splitlines()[0]
    if isinstance(exc, _culprit.Blamed):
        return first + "".join("; {}: {}".format(env, result) for env, result in record.deployed.items())
    if isinstance(exc, _culprit.Waiting):
        return first
    if record.state in ("pushed", "deployed"):
        return "{} advanced to {}, then: {}".format(settings.branches.master, record.candidate[:12], first)
    return "{} untouched; {}".format(settings.branches.master, first)
