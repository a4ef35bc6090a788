"""Problem-free: every configured check exits 0 on the candidate's tree.

Checks are shell commands the user wrote (``python -m pytest`` by default).
They run one after the other in the workspace, checked out at exactly the
candidate; the first failure stops the run. A check with a timeout that hangs
is killed together with the processes it started, and reported as such.

``fab continuity.test`` runs them on the checkout as it is, exactly as the
pipeline's check stage does: same commands, environment, time limits,
output and JUnit report; it moves nothing and takes no lock on the remote.
"""

from collections.abc import Mapping, Sequence
from typing import Callable, Optional, TextIO

from invoke import Context, task

from . import config as _config
from ._proc import Heartbeat, Result, run_shell
from .boundary import LINE_HELP, boundary
from .config import Command
from .errors import CommandFailed, ContinuityError
from .publish import finish
from .record import start_record
from .report import Reporter
from .stage import Attempt, Checks, Stage
from .workspace import checkout_here, exclusive

__all__ = ["run_checks", "check_stage", "check_stage_detail", "check_here"]


def run_checks(checks: Sequence[Command], cwd: str, env: Optional[Mapping[str, str]] = None,
               out: Optional[TextIO] = None, say: Callable[[str], None] = print,
               record: Optional[Callable[[str, str, Result], None]] = None,
               verify: Optional[Callable[[str, Result], None]] = None) -> list[Result]:
    """Run ``checks`` in order; return their results or raise `CommandFailed`.

    ``record(name, command, result)`` is told about each check that ran;
    ``verify(culprit, result)`` is called after each one that passed.
    """
    results = []
    for check in checks:
        say("check: $ " + check.command)
        beat = Heartbeat(check.heartbeat, "check '{}'".format(check.name), say)
        result = run_shell(check.command, cwd, timeout=check.timeout, env=env, out=out, beat=beat)
        results.append(result)
        if record is not None:
            record(check.name, check.command, result)
        if not result.ok:
            raise CommandFailed(
                "check '{}' {}; {}".format(check.name, result.describe(), result.tail_text()),
                result,
            )
        if verify is not None:
            verify(_named(check), result)
    return results


def _named(check: Command) -> str:
    """"check 'NAME' (COMMAND)", or "check 'COMMAND'" when it has no name of its own."""
    command = "" if check.name == check.command else " ({})".format(check.command)
    return "check '{}'{}".format(check.name, command)


def check_stage_detail(count: int) -> str:
    """The check stage's line: how many checks passed."""
    return "{} check(s) passed".format(count) if count else "no checks configured (continuity.checks)"


# -- the pipeline's check stage ----------------------------------------------------------


def check_stage(more: Sequence[Checks] = ()) -> Stage:
    """The check stage: the configured checks, then ``more`` (`stage.Checks` a plugin adds)."""

    def run(attempt: Attempt) -> str:
        settings = attempt.settings
        run_checks(settings.checks, attempt.ws.root, env=attempt.env, say=attempt.rep.say,
                   record=attempt.rep.command, verify=attempt.verifier())
        return check_stage_detail(len(settings.checks) + sum(part.run(attempt) for part in more))

    def plan(attempt: Attempt) -> list[str]:
        lines = ["check $ " + check.command for check in attempt.settings.checks]
        return lines + [line for part in more for line in part.plan(attempt)]

    return Stage("check", run, plan)


# -- fab continuity.test --------------------------------------------------------------


@task(
    name="test",
    help={
        "junit": "Write a JUnit XML report (a test case per check) to this path.",
        "dry_run": "List the checks that would run, with their time limits; run nothing.",
        "line": LINE_HELP,
    },
)
@boundary
def check_here(c: Context, junit: Optional[str] = None, dry_run: bool = False, line: Optional[str] = None) -> None:
    """Run the configured checks on this checkout, exactly as the pipeline's check stage does."""
    settings = _config.settings(c, line=line)
    junit = _config.absolute_path(junit) if junit else None
    rep = Reporter()
    here = checkout_here(settings)
    if dry_run:
        for check in settings.checks:
            limit = " (time limit {:g}s)".format(check.timeout) if check.timeout else ""
            rep.say("plan: check $ {}{}".format(check.command, limit))
        rep.say("dry run: nothing was run")
        return
    record = start_record("test", settings, revisions={"candidate": here.revision})
    # A checkout another run is using is a refusal (one line, exit 2), not a run to summarize.
    with exclusive(here.workspace, clean=False), here.kept(rep.say):
        try:
            with rep.stage("check") as info:
                run_checks(settings.checks, here.workspace.root, env=here.env, say=rep.say, record=rep.command,
                           verify=here.verifier())
                info["detail"] = check_stage_detail(len(settings.checks))
        except BaseException as exc:
            stopped = "" if isinstance(exc, ContinuityError) else "stopped"  # Ctrl-C, SIGTERM: as the pipeline says
            finish(settings, rep, record, exc, stopped, where="check", junit=junit, send=False)
            rep.summary(record.summary)
            raise
    summary = "{} on {}{}".format(check_stage_detail(len(settings.checks)), here.revision[:12], here.note)
    finish(settings, rep, record, summary=summary, junit=junit, send=False)
    rep.summary(summary)
    if settings.docker is not None and settings.docker.checks:
        rep.say("continuity.docker.checks run in this checkout's image: fab continuity.docker.check")
