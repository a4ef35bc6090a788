"""Build steps: run only the ones whose inputs changed.

A step is ``{name, command, paths}``. After a step succeeds, continuity writes
a stamp in the workspace's git directory (``.git/continuity/builds/NAME``)
with the revision it built and a digest of the step's definition. Before the
step starts, that stamp is replaced by an "unfinished" one: a step that fails,
times out or is killed (even with SIGKILL) after writing some of its output
leaves nothing a later candidate could skip it on. On the next run the step
runs when:

* there is no stamp (no earlier build in this workspace), or
* its last run did not finish, or
* the step's command or paths changed, or
* a file matching one of its paths changed between the stamped revision and
  the candidate (in a kept Jenkins workspace that is master, since the last
  run built what it pushed).

Otherwise it is skipped, and the report says why either way.

``fab continuity.build`` runs the same decisions on the checkout as it is,
with its uncommitted changes to tracked files counted as changed files. A
step that built uncommitted changes is stamped as such, never as the
revision, so a later candidate never skips it on that build.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable, TextIO

from invoke import Context, task

from . import config as _config
from . import results as _results
from ._dataclass import dataclass
from ._proc import Heartbeat, Result, run_shell
from .boundary import LINE_HELP, boundary
from .config import BuildStep, Settings
from .errors import CommandFailed, ContinuityError
from .git import Git
from .report import Reporter
from .stage import Attempt, Stage
from .workspace import Here, Workspace, checkout_here, exclusive

Verify = Callable[[str, Result], None]  # see `workspace.require_candidate`

__all__ = ["Decision", "plan", "plan_lines", "run_stage", "run_steps", "run_step", "matches", "build_here", "STAGE"]


@dataclass(frozen=True)
class Decision:
    step: BuildStep
    run: bool
    reason: str


def matches(path: str, pattern: str) -> bool:
    """True when ``path`` (relative, with '/') is covered by ``pattern``.

    ``*`` matches across '/', so ``src/*`` covers everything below ``src``;
    a pattern naming a directory (``src`` or ``src/``) covers what is in it.
    """
    if pattern.startswith("./"):
        pattern = pattern[2:]
    directory = pattern.rstrip("/")
    return fnmatch.fnmatchcase(path, pattern) or path.startswith(directory + "/")


def plan(git: Git, steps: Sequence[BuildStep], candidate: str, stamp_dir: str,
         uncommitted: Sequence[str] = ()) -> list[Decision]:
    """A `Decision` per step: run it or skip it, and why.

    ``uncommitted`` lists tracked files whose content differs from
    ``candidate`` (a build of the checkout as it is): a step they match runs.
    """
    return [_decide(git, step, candidate, _read_stamp(stamp_dir, step.name), uncommitted) for step in steps]


def plan_lines(decisions: Sequence[Decision]) -> list[str]:
    """What a dry run says about each step."""
    return ["build step '{}' would {}: {}".format(d.step.name, "run" if d.run else "be skipped", d.reason)
            for d in decisions]


def _decide(git: Git, step: BuildStep, candidate: str, stamp: dict[str, Any] | None,
            uncommitted: Sequence[str] = ()) -> Decision:
    edited = _covered(uncommitted, step)
    if edited:
        return Decision(step, True, "uncommitted changes: " + edited)
    if stamp is None:
        return Decision(step, True, "no earlier build in this workspace")
    if "unfinished" in stamp:
        return Decision(step, True, "its last run did not finish (it failed, timed out or was stopped)")
    if "uncommitted" in stamp:
        return Decision(step, True, "its last run built uncommitted changes")
    if stamp.get("definition") != _definition(step):
        return Decision(step, True, "its command or paths changed")
    built = git.commit(stamp.get("revision") or "")
    if built is None:
        return Decision(step, True, "the last build's revision is unknown here")
    if built == candidate:
        return Decision(step, False, "already built at this revision")
    changed = _covered(git.changed_files(built, candidate), step)
    if changed:
        return Decision(step, True, "changed: " + changed)
    return Decision(step, False, "no changes under " + ", ".join(step.paths))


def _covered(paths: Iterable[str], step: BuildStep) -> str:
    """The ``paths`` the step's patterns cover, as "a, b, c and 2 more" ("" for none)."""
    covered = [p for p in paths if any(matches(p, pattern) for pattern in step.paths)]
    more = " and {} more".format(len(covered) - 3) if len(covered) > 3 else ""
    return ", ".join(covered[:3]) + more if covered else ""


def run_stage(rep: Reporter, ws: Workspace, decisions: Sequence[Decision], sha: str, env: Mapping[str, str],
              verify: Verify | None = None, committed: bool = True,
              done: Callable[[BuildStep, Result], None] | None = None) -> None:
    """The *build* stage on the checked-out commit ``sha``: say why each step runs or not, run those that do.

    ``rep`` is a `report.Reporter`; each step that ran is recorded there,
    failed or not, and ``done(step, result)`` is told about it.
    ``verify(culprit, result)`` is called after each step that ran, to make
    sure it left the checkout as it found it. ``committed`` false: the work
    tree has uncommitted changes (see `run_step`).
    """
    if not decisions:
        rep.skipped("build", _NO_STEPS)
        return
    with rep.stage("build") as info:
        info["detail"] = run_steps(rep, ws, decisions, sha, env, verify, committed, done)


def run_steps(rep: Reporter, ws: Workspace, decisions: Sequence[Decision], sha: str, env: Mapping[str, str],
              verify: Verify | None = None, committed: bool = True,
              done: Callable[[BuildStep, Result], None] | None = None) -> str:
    """The steps of the build stage (see `run_stage`); returns the stage's detail.

    ``done(step, result)`` is told about each step that ran, failed or not.
    """
    ran = []
    for decision in decisions:
        step = decision.step
        rep.say("build step '{}' {}: {}".format(step.name, "runs" if decision.run else "skipped", decision.reason))
        if decision.run:
            rep.say("build: $ " + step.command)
            record = functools.partial(_told, rep, step, done)
            run_step(step, ws.root, sha, ws.build_stamps, env=env, record=record, committed=committed, verify=verify,
                     say=rep.say)
            ran.append(step.name)
    return "ran {}; skipped {}".format(", ".join(ran) or "nothing", len(decisions) - len(ran))


_NO_STEPS = "no build steps configured"


def _told(rep: Reporter, step: BuildStep, done: Callable[[BuildStep, Result], None] | None, name: str,
          command: str, result: Result) -> None:
    rep.command(name, command, result, kind="build")
    if done is not None:
        done(step, result)


def run_step(step: BuildStep, cwd: str, candidate: str, stamp_dir: str, env: Mapping[str, str] | None = None,
             out: TextIO | None = None, record: Callable[[str, str, Result], None] | None = None,
             committed: bool = True, verify: Verify | None = None, say: Callable[[str], None] = print) -> Result:
    """Run one step; write its stamp on success, raise `CommandFailed` otherwise.

    ``record(name, command, result)`` is told about the run, failed or not.
    ``verify(culprit, result)`` raises when the step left the checkout other
    than it found it; that is a failure too, so it runs before the stamp: a
    build made from an edited tree is never "built at the candidate". With
    ``committed`` false (the work tree differs from ``candidate``), the stamp
    says so: no later candidate skips the step on this build. ``say`` gets
    the heartbeat lines of a long run.
    """
    _write_stamp(stamp_dir, step, {"unfinished": candidate})
    beat = Heartbeat(step.heartbeat, "build step '{}'".format(step.name), say)
    result = run_shell(step.command, cwd, timeout=step.timeout, env=env, out=out, beat=beat)
    if record is not None:
        record(step.name, step.command, result)
    if not result.ok:
        raise CommandFailed(
            "build step '{}' ({}) {}; {}".format(step.name, step.command, result.describe(), result.tail_text()),
            result,
        )
    if verify is not None:
        verify("build step '{}' ({})".format(step.name, step.command), result)
    if committed:
        _write_stamp(stamp_dir, step, {"revision": candidate, "definition": _definition(step)})
    else:
        _write_stamp(stamp_dir, step, {"uncommitted": candidate})
    return result


def _definition(step: BuildStep) -> str:
    text = json.dumps([step.command, list(step.paths)])
    return hashlib.sha256(text.encode()).hexdigest()


def _read_stamp(stamp_dir: str, name: str) -> dict[str, Any] | None:
    try:
        with open(os.path.join(stamp_dir, name), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_stamp(stamp_dir: str, step: BuildStep, data: dict[str, str]) -> None:
    """Replace the step's stamp in one step (a rename): it is the old one or the new one, never half."""
    path = os.path.join(stamp_dir, step.name)
    try:
        os.makedirs(stamp_dir, exist_ok=True)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(path + ".tmp", path)
    except OSError as exc:
        raise ContinuityError("cannot write the stamp of build step '{}' ({}): {}; check the permissions "
                              "of {}".format(step.name, path, exc.strerror or exc, stamp_dir)) from None


# -- the pipeline's build stage ----------------------------------------------------------


def _decisions(attempt: Attempt) -> list[Decision]:
    if attempt.decisions is None:
        attempt.decisions = plan(attempt.git, attempt.settings.build, attempt.sha, attempt.ws.build_stamps)
    return attempt.decisions


def _run(attempt: Attempt) -> str:
    def done(step: BuildStep, result: Result) -> None:
        attempt.results.append(_results.recorded(_results.build_unit(step), attempt.tree, attempt.sha, result))

    try:
        return run_steps(attempt.rep, attempt.ws, _decisions(attempt), attempt.sha, attempt.env,
                         verify=attempt.verifier(), done=done)
    except CommandFailed:
        _failed_last(attempt.results)
        raise


def _failed_last(records: Sequence[_results.Recorded]) -> None:
    """The build failed: a last step recorded as passed exited 0, then failed the checkout check."""
    last = records[-1] if records else None
    if last is not None and last.kind == "build" and last.status == _results.PASSED:
        last.status = _results.FAILED


#: The build steps whose inputs changed, on the candidate.
STAGE = Stage(
    "build",
    run=_run,
    plan=lambda attempt: plan_lines(_decisions(attempt)),
    skip=lambda attempt: "" if _decisions(attempt) else _NO_STEPS,
)


# -- fab continuity.build -------------------------------------------------------------


@task(
    name="build",
    help={
        "dry_run": "Say which build steps would run and why; run nothing.",
        "line": LINE_HELP,
    },
)
@boundary
def build_here(c: Context, dry_run: bool = False, line: str | None = None) -> None:
    """Run the build steps whose inputs changed, on this checkout, as the pipeline would."""
    settings = _config.settings(c, line=line)
    rep = Reporter()
    here = checkout_here(settings)
    ws = here.workspace
    with exclusive(ws, clean=False, say=rep.say), here.kept(rep.say):
        decisions = plan(ws.git, settings.build, here.revision, ws.build_stamps, uncommitted=here.uncommitted)
        if dry_run:
            for text in plan_lines(decisions) or ["no build steps configured (continuity.build)"]:
                rep.say("plan: " + text)
            rep.say("dry run: nothing was built")
            return
        _build_and_record(settings, rep, here, decisions)
    ran = sum(1 for decision in decisions if decision.run)
    rep.say("result: {} build step(s) ran, {} skipped, on {}{}".format(
        ran, len(decisions) - ran, here.revision[:12], here.note))


def _build_and_record(settings: Settings, rep: Reporter, here: Here, decisions: Sequence[Decision]) -> None:
    """The build stage on the checkout; what each step did is recorded on the remote for HEAD's tree, as
    the pipeline records it, when the checkout has no uncommitted changes (failed steps too)."""
    ws = here.workspace
    if not decisions:
        run_stage(rep, ws, decisions, here.revision, here.env)
        return
    tree = ws.git.tree(here.revision) if here.committed else ""
    records: list[_results.Recorded] = []

    def done(step: BuildStep, result: Result) -> None:
        if tree:
            records.append(_results.recorded(_results.build_unit(step), tree, here.revision, result))

    try:
        run_stage(rep, ws, decisions, here.revision, here.env, verify=here.verifier(), committed=here.committed,
                  done=done)
    except ContinuityError:  # a failed step is a result too; an interruption records nothing
        _failed_last(records)
        _results.record_here(ws.git, settings.remote, here.committed, records, rep.say)
        raise
    _results.record_here(ws.git, settings.remote, here.committed, records, rep.say)
