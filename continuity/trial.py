"""``fab continuity.try BRANCH [--land]``: check a branch before it lands on development.

What development would become with BRANCH merged is made as the pipeline
makes its candidate (`merge.prepare`: in memory, a fast-forward or a merge
commit), built and checked in the workspace as the pipeline does, and its
results recorded on the remote, keyed by its tree (`continuity.results`).
Nothing moves: no branch, no lock. The JUnit report and the notifications
tell the branch's authors (the commits in development..BRANCH) how it went.

With ``--land``, once every check passed (a flaky one counts as passed),
development moves to that very commit in one compare-and-swap push, leased
on the development revision that was tried: if development moved meanwhile,
nothing lands and the user tries again.

The tree the pipeline checks next is the tried tree when master already
contains development (the usual case: the pipeline brings development along
to master): the trial is then made on master, so that development after the
land is a fast-forward of master and the pipeline's candidate is that very
commit; its checks are reused, not run again. When master has commits
development lacks and development has commits master lacks (they diverged),
the trial is made on development and the pipeline's merge with master makes
another tree, which it checks.
"""

from __future__ import annotations

import shlex
from typing import Any

from invoke import Context, task

from . import build as _build
from . import config as _config
from . import deploy as _deploy
from . import test as _test
from .boundary import LINE_HELP, boundary
from .config import Settings
from .errors import ContinuityError, GitError, MergeConflict, UsageError
from .git import Git, valid_branch
from .merge import prepare
from .publish import finish
from .record import RunRecord, RunState, build_url, flaky_note, start_record
from .remote import Snapshot, missing_branches, read_remote, swap
from .report import Reporter
from .stage import Attempt, Candidate, perform, plan_lines, record_results
from .workspace import Workspace, exclusive, restored_head

__all__ = ["try_branch", "Trial", "trial_message"]


class Trial:
    """What is tried: BRANCH merged into development (or into master, when master contains development)."""

    def __init__(self, branch: str, development: str, tip: str, made: Candidate, snapshot: Snapshot,
                 on_master: bool) -> None:
        self.branch = branch
        self.development = development  # development's revision on the remote: the land's lease
        self.tip = tip  # BRANCH's revision on the remote
        self.made = made  # the commit development would become
        self.snapshot = snapshot
        self.on_master = on_master  # made on master, which contains development

    @property
    def kind(self) -> str:
        return "fast-forward" if self.made.fast_forward else "merge commit"


def trial_message(settings: Settings, branch: str) -> str:
    """The merge commit's message: it names the branch, since it may land on development for good."""
    message = "Merge branch '{}' into {}\n\nTried and landed by continuity (fab continuity.try --land).".format(
        branch, settings.branches.development)
    if build_url():
        message += "\nBuild: " + build_url()
    return message


@task(
    name="try",
    help={
        "branch": "The branch on the remote to try: what development would become with it merged.",
        "land": "Then merge it into development (a compare-and-swap push), if and only if every check passed.",
        "junit": "Write a JUnit XML report (a test case per stage and per check) to this path.",
        "dry_run": "Fetch, merge in memory and print what would run; build, check, record and land nothing.",
        "line": LINE_HELP,
    },
)
@boundary
def try_branch(c: Context, branch: str, land: bool = False, junit: str | None = None, dry_run: bool = False,
               line: str | None = None) -> None:
    """Build and check development with BRANCH merged, moving nothing; --land merges it if every check passed."""
    settings = _config.settings(c, line=line)
    junit = _config.absolute_path(junit) if junit else None
    if not valid_branch(branch):
        raise UsageError("{!r} is not a branch name git accepts; give the name of a branch on {}, like "
                         "feature/login".format(branch, settings.remote))
    rep = Reporter()
    ws, _ = _deploy.preflight(settings, need_deploy=False)
    with exclusive(ws, say=rep.say), restored_head(ws, say=rep.say):
        trial = _prepare(ws.git, settings, branch, rep, dry_run)
        if dry_run:
            _plan(c, settings, ws, rep, trial, land)
            return
        _run(c, settings, ws, rep, trial, land, junit)


def _prepare(git: Git, settings: Settings, branch: str, rep: Reporter, dry_run: bool) -> Trial:
    """One read of the remote (the line's branches and BRANCH), then the merge in memory; `UsageError` for a
    missing branch, nothing to try, or a conflict."""
    b = settings.branches
    with rep.stage("fetch") as info:
        names = list(dict.fromkeys([b.development, b.master, branch]))
        snapshot = read_remote(git, settings, names, dry_run=dry_run, require=False)
        heads = snapshot.heads
        missing = [name for name in (b.development, b.master) if name not in heads]
        if missing:
            raise missing_branches(settings, missing)
        if branch not in heads:
            raise UsageError("remote '{}' has no branch '{}'; push it first: `{}`".format(
                settings.remote, branch, shlex.join(["git", "push", settings.remote, "HEAD:refs/heads/" + branch])))
        development, master, tip = heads[b.development], heads[b.master], heads[branch]
        info["detail"] = "{} {}, {} {}".format(b.development, development[:12], branch, tip[:12])
    on_master = development != master and git.is_ancestor(development, master)
    base = master if on_master else development
    if git.is_ancestor(tip, base):
        where = b.development if git.is_ancestor(tip, development) else b.master
        raise UsageError("nothing to try: {} already contains '{}' at {}".format(where, branch, tip[:12]))
    with rep.stage("merge") as info:
        try:
            made = prepare(git, base, tip, trial_message(settings, branch), (branch, b.development))
        except MergeConflict as exc:
            raise UsageError(str(exc)) from None
        info["detail"] = "{} {}{}".format(
            "fast-forward to" if made.fast_forward else "merge commit", made.sha[:12],
            " (on {}, which contains {})".format(b.master, b.development) if on_master else "")
    return Trial(branch, development, tip, made, snapshot, on_master)


def _attempt(c: Any, settings: Settings, ws: Workspace, rep: Reporter, record: RunRecord, trial: Trial) -> Attempt:
    return Attempt(c, settings, ws, rep, record, base=trial.made.base, development=trial.development,
                   candidate=trial.made, snapshot=trial.snapshot)


def _plan(c: Any, settings: Settings, ws: Workspace, rep: Reporter, trial: Trial, land: bool) -> None:
    record = start_record("try", settings)
    attempt = _attempt(c, settings, ws, rep, record, trial)
    for text in plan_lines([_build.STAGE, _test.check_stage()], attempt):
        rep.say("plan: " + text)
    if land:
        rep.say("plan: land: {} {} -> {} (only if every check passed and it is still {})".format(
            settings.branches.development, trial.development[:12], trial.made.sha[:12], trial.development[:12]))
    rep.say("plan: dry run: nothing was built, checked, recorded or landed")


def _run(c: Any, settings: Settings, ws: Workspace, rep: Reporter, trial: Trial, land: bool,
         junit: str | None) -> None:
    """Build and check the trial, record the results, land it if asked; the summary, JUnit, notifications."""
    record = start_record("try", settings, revisions={
        settings.branches.development: trial.development, trial.branch: trial.tip, "candidate": trial.made.sha})
    try:
        record.commits = ws.git.commits("{}..{}".format(trial.made.base, trial.tip))  # the branch's authors
    except GitError:
        pass
    attempt = _attempt(c, settings, ws, rep, record, trial)
    try:
        try:
            attempt.check_out()
            perform(_build.STAGE, attempt)
            perform(_test.check_stage(), attempt)
        except ContinuityError:
            record_results(attempt)  # a failed check is a result too
            raise
        record_results(attempt)
        if land:
            _land(settings, ws.git, rep, trial)
    except BaseException as exc:
        text = str(exc).splitlines()[0] if isinstance(exc, ContinuityError) else "stopped"
        summary = ("FAILED: " if isinstance(exc, ContinuityError) else "") + text
        if land and isinstance(exc, ContinuityError) and "not landed" not in text:
            summary += "; '{}' not landed".format(trial.branch)
        finish(settings, rep, record, exc, summary, junit=junit)
        rep.summary(summary)
        raise
    record.state = RunState.DONE
    summary = _summary(settings, trial, land) + flaky_note(rep.checks)
    finish(settings, rep, record, summary=summary, junit=junit)
    rep.summary(summary)


def _land(settings: Settings, git: Git, rep: Reporter, trial: Trial) -> None:
    """development: the tried revision -> the tried commit, as a compare-and-swap; refused when it moved."""
    name = settings.branches.development
    with rep.stage("land") as info:
        if swap(git, settings.remote, name, trial.made.sha, trial.development) is None:
            raise ContinuityError(
                "'{}' not landed: {} moved on {} since {} was tried; nothing changed: try again with `{}`".format(
                    trial.branch, name, settings.remote, trial.development[:12], _command(settings, trial.branch)))
        info["detail"] = "{} {} -> {}".format(name, trial.development[:12], trial.made.sha[:12])


def _command(settings: Settings, branch: str) -> str:
    return "fab continuity.try {} --land{}".format(shlex.quote(branch), settings.line_option)


def _summary(settings: Settings, trial: Trial, land: bool) -> str:
    development = settings.branches.development
    if land:
        return "'{}' landed: {} {} -> {} ({})".format(
            trial.branch, development, trial.development[:12], trial.made.sha[:12], trial.kind)
    return "'{}' passed on {} {} ({}); nothing moved: land it with `{}`".format(
        trial.branch, development, trial.made.sha[:12], trial.kind, _command(settings, trial.branch))
