"""Problem-free: every configured check exits 0 on the candidate's tree.

Checks are shell commands the user wrote (``python -m pytest`` by default).
They run in the workspace, checked out at exactly the candidate, one after
the other (or ``jobs`` at a time, each one's output printed whole when it
ends); the first failure stops the run. A check with a timeout that hangs is
killed together with the processes it started, and reported as such. A
check with ``shards: N`` runs as N parts, each told ``CONTINUITY_SHARD`` and
``CONTINUITY_SHARDS``. A check with ``retries: N`` that fails (or times out)
runs again on the same checkout, still verified to be the candidate, up to N
times: one that passes then is **flaky**. It does not block; it is recorded
as ``flaky``, named in the summary, written to JUnit as Surefire's
``<flakyFailure>`` and told in the notifications.

Every result is recorded on the remote, keyed by the tree (see
`continuity.results`). The pipeline's check stage does not run a check again
on a tree it already passed on (``reuse_results``; a check can opt out with
``reuse: false``).

``fab continuity.test`` runs them on the checkout as it is, exactly as the
pipeline's check stage does: same commands, environment, time limits,
output and JUnit report; it moves nothing and takes no lock on the remote.
With ``--candidate ID`` it checks out a candidate `fab continuity.candidate`
published instead, and runs all its checks, or those of one shard
(``--shard I/N``) or one check (``--check NAME``): the agents of a Jenkins
``parallel`` stage share one candidate's checks that way.
"""

from __future__ import annotations

import io
import os
import re
import sys
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Callable, TextIO

from invoke import Context, task

from . import config as _config
from . import results as _results
from ._proc import Heartbeat, Result, kill_group, run_shell
from .boundary import LINE_HELP, boundary
from .config import Command, Settings
from .errors import CommandFailed, ContinuityError, UsageError
from .publish import finish
from .record import flaky_note, start_record
from .report import Reporter
from .results import Unit
from .stage import Attempt, Checks, Stage, record_results
from .workspace import Here, checkout_here, command_env, exclusive, open_workspace, require_candidate, restored_head

__all__ = ["run_checks", "run_units", "check_stage", "check_stage_detail", "split_reused", "say_reused", "check_here", "select_units"]

#: (unit, its last result, passed: it exited 0 and left the checkout alone, the runs it took: more than 1 after
#: a failure it was allowed to retry, ``retries``)
Done = Callable[[Unit, Result, bool, int], None]
Recorder = Callable[..., None]  # `report.Reporter.command`: (name, command, result, failures=[Result], tries=N)


def run_checks(checks: Sequence[Command], cwd: str, env: Mapping[str, str] | None = None,
               out: TextIO | None = None, say: Callable[[str], None] = print,
               record: Recorder | None = None,
               verify: Callable[[str, Result], None] | None = None, jobs: int = 1,
               done: Done | None = None) -> list[Result]:
    """Run ``checks`` (each shard of a sharded one) in order; return their results or raise `CommandFailed`.

    ``record(name, command, result)`` and ``done(unit, result, passed,
    attempts)`` are told about each check that ran (``record`` also gets
    ``failures=`` and ``tries=`` for one that ran again); ``verify(culprit,
    result)`` is called after each one that passed, and before a failed one
    runs again.
    """
    return run_units(_results.check_units(checks), cwd, env, out, say, record, verify, jobs, done)


def run_units(units: Sequence[Unit], cwd: str, env: Mapping[str, str] | None = None,
              out: TextIO | None = None, say: Callable[[str], None] = print,
              record: Recorder | None = None,
              verify: Callable[[str, Result], None] | None = None, jobs: int = 1,
              done: Done | None = None) -> list[Result]:
    """`run_checks` on `results.Unit` s: up to ``jobs`` at a time."""
    base = dict(env if env is not None else os.environ)

    def finished(unit: Unit, tried: _Tried) -> None:
        result = tried.result
        if record is not None:
            if tried.failures:
                record(unit.name, unit.command, result, failures=tried.failures, tries=unit.retries + 1)
            else:
                record(unit.name, unit.command, result)
        error = tried.error
        if error is None and not result.ok:
            error = CommandFailed("{} {}{}; {}".format(_short(unit), result.describe(), _runs(tried),
                                                       result.tail_text()), result)
        elif error is None and verify is not None:
            try:
                verify(_named(unit), result)
            except CommandFailed as exc:  # it passed, but changed the checkout: a failure, recorded as one
                error = exc
        if done is not None:
            done(unit, result, error is None, len(tried.failures) + 1)
        if error is not None:
            raise error

    if jobs <= 1 or len(units) <= 1:
        results = []
        for unit in units:
            def once(unit: Unit = unit) -> Result:
                say("check: $ " + unit.command + _shard_note(unit))
                return run_shell(unit.command, cwd, timeout=unit.timeout, env=dict(base, **unit.env()), out=out,
                                 beat=_beat(unit, say))
            tried = _tries(unit, once, verify, say)
            results.append(tried.result)
            finished(unit, tried)
        return results
    return _concurrently(units, cwd, base, out, say, finished, jobs, verify)


class _Tried:
    """What running a unit (and running it again after failures, ``retries``) came to."""

    def __init__(self, result: Result, failures: list[Result], error: CommandFailed | None = None) -> None:
        self.result = result  # the last run
        self.failures = failures  # the failed runs before it
        self.error = error  # the checkout was no longer the candidate after a failed run: no retry


def _tries(unit: Unit, once: Callable[[], Result], verify: Callable[[str, Result], None] | None,
           say: Callable[[str], None]) -> _Tried:
    """Run ``unit``; after a failure or a timeout, again (up to ``unit.retries`` times) on the same checkout."""
    failures: list[Result] = []
    while True:
        result = once()
        if result.ok or len(failures) >= unit.retries:
            return _Tried(result, failures)
        if verify is not None:  # a failure that also changed the checkout is no flake: it is not run again
            try:
                verify(_named(unit), result)
            except CommandFailed as exc:
                return _Tried(result, failures, exc)
        failures.append(result)
        say("{} {}; running it again on the same tree (attempt {} of {}, retries: {})".format(
            _short(unit), result.describe(), len(failures) + 1, unit.retries + 1, unit.retries))


def _runs(tried: _Tried) -> str:
    """" (3 attempts)" for a check that failed every run it was allowed."""
    return " ({} attempts)".format(len(tried.failures) + 1) if tried.failures else ""


def _concurrently(units: Sequence[Unit], cwd: str, env: dict[str, str], out: TextIO | None,
                  say: Callable[[str], None], finished: Callable[[Unit, _Tried], None], jobs: int,
                  verify: Callable[[str, Result], None] | None = None) -> list[Result]:
    """``jobs`` units at a time, each one's output kept and printed whole when it ends, never interleaved.

    After a failure no new unit starts; those running finish, and the first
    failure is raised. Only this thread hears Ctrl-C and SIGTERM: then the
    process groups of the running units are killed.
    """
    procs: list[Any] = []
    lock = threading.Lock()

    def started(proc: Any) -> None:
        with lock:
            procs.append(proc)

    def one(unit: Unit) -> tuple[_Tried, str]:
        buffer = io.StringIO()

        def once() -> Result:
            return run_shell(unit.command, cwd, timeout=unit.timeout, env=dict(env, **unit.env()), out=buffer,
                             beat=_beat(unit, say), started=started)

        def note(text: str) -> None:
            buffer.write("continuity | {}\n".format(text))

        return _tries(unit, once, verify, note), buffer.getvalue()

    target = out or sys.stdout
    results: list[Result] = []
    failure: BaseException | None = None
    pending = list(units)
    running: dict[Future[tuple[_Tried, str]], Unit] = {}
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="continuity-check")
    try:
        while pending or running:
            while pending and len(running) < jobs and failure is None:
                unit = pending.pop(0)
                running[pool.submit(one, unit)] = unit
            if not running:
                break
            finished_now, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished_now:
                unit = running.pop(future)
                tried, output = future.result()
                result = tried.result
                say("check: $ " + unit.command + _shard_note(unit) + " ({}{})".format(
                    "passed" if result.ok else result.describe(), _runs(tried)))
                target.write(output)
                target.flush()
                results.append(result)
                try:
                    finished(unit, tried)
                except CommandFailed as exc:
                    failure = failure or exc
    except BaseException:
        with lock:
            for proc in procs:
                if proc.poll() is None:
                    kill_group(proc)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if failure is not None:
        raise failure
    return results


def _beat(unit: Unit, say: Callable[[str], None]) -> Heartbeat:
    """The heartbeat of a long check ("... check 'unit' shard 2/4 still running after 1m30s")."""
    return Heartbeat(unit.heartbeat, _short(unit), say)


def _shard_note(unit: Unit) -> str:
    return "  [shard {}/{}]".format(unit.shard, unit.shards) if unit.shard else ""


def _short(unit: Unit) -> str:
    """"check 'NAME'", with its shard."""
    return "check '{}'{}".format(unit.name, " shard {}/{}".format(unit.shard, unit.shards) if unit.shard else "")


def _named(unit: Unit) -> str:
    """"check 'NAME' (COMMAND)", or "check 'COMMAND'" when it has no name of its own; with its shard."""
    command = "" if unit.name == unit.command else " ({})".format(unit.command)
    shard = " shard {}/{}".format(unit.shard, unit.shards) if unit.shard else ""
    return "check '{}'{}{}".format(unit.name, command, shard)


def check_stage_detail(count: int, reused: str = "") -> str:
    """The check stage's line: how many checks passed (and where the reused ones passed)."""
    if reused:
        return "{} check(s) passed; {}".format(count, reused) if count else "checks: " + reused
    return "{} check(s) passed".format(count) if count else "no checks configured (continuity.checks)"


# -- reuse -------------------------------------------------------------------------


def split_reused(settings: Settings, store: _results.Store, tree: str,
                 units: Sequence[Unit]) -> tuple[list[Unit], str]:
    """(the units to run, what to say about those reused: "reused, passed on tree 1a2b3c in build #41")."""
    if not settings.reuse_results:
        return list(units), ""
    verdict = store.verdict(tree, [unit for unit in units if unit.reuse])
    reused = {unit for unit, _ in verdict.passed}
    if not reused:
        return list(units), ""
    return [unit for unit in units if unit not in reused], "reused, passed on tree {} {}".format(
        tree[:12], verdict.source())


def say_reused(say: Callable[[str], None], units: Sequence[Unit], todo: Sequence[Unit], reused: str) -> None:
    """"check 'unit': reused, passed on tree 1a2b3c in build #41" for the units `split_reused` left out."""
    if reused:
        names = sorted({unit.name for unit in units if unit not in todo})
        say("{} {}: {}".format("check" if len(names) == 1 else "checks", ", ".join(
            "'{}'".format(name) for name in names), reused))


# -- the pipeline's check stage ----------------------------------------------------------


def check_stage(more: Sequence[Checks] = ()) -> Stage:
    """The check stage: the configured checks, then ``more`` (`stage.Checks` a plugin adds)."""

    def run(attempt: Attempt) -> str:
        settings = attempt.settings
        shell = _results.check_units(settings.checks)
        parts = [(part, list(part.units(settings))) for part in more]
        units = shell + [unit for _, part_units in parts for unit in part_units]
        todo, reused = units, ""
        if units:
            attempt.store = attempt.store or _load(attempt.git, settings, attempt.rep.say, attempt.snapshot)
            todo, reused = split_reused(settings, attempt.store, attempt.tree, units)
        say_reused(attempt.rep.say, units, todo, reused)

        def done(unit: Unit, result: Result, passed: bool, attempts: int) -> None:
            attempt.results.append(_results.recorded(unit, attempt.tree, attempt.sha, result, passed, attempts))

        run_units([unit for unit in shell if unit in todo], attempt.ws.root, env=attempt.env, say=attempt.rep.say,
                  record=attempt.rep.command, verify=attempt.verifier(), jobs=settings.jobs, done=done)
        ran = len({unit.name for unit in shell if unit in todo})
        for part, part_units in parts:
            ran += part.run(attempt, [unit for unit in part_units if unit in todo])
        return check_stage_detail(ran, reused)

    def plan(attempt: Attempt) -> list[str]:
        units = _results.check_units(attempt.settings.checks)
        todo, reused = units, ""
        if units and attempt.settings.reuse_results and attempt.ws is not None:  # no checkout: a plan on paper
            attempt.store = attempt.store or _load(attempt.git, attempt.settings, attempt.rep.say, attempt.snapshot)
            todo, reused = split_reused(attempt.settings, attempt.store, attempt.tree, units)
        lines = ["check $ " + unit.command + _shard_note(unit) + ("" if unit in todo else " (" + reused + ")")
                 for unit in units]
        return lines + [line for part in more for line in part.plan(attempt)]

    return Stage("check", run, plan, board=record_results)


def _load(git: Any, settings: Settings, say: Callable[[str], None], snapshot: Any = None) -> _results.Store:
    """The results on the remote (in ``snapshot``, the run's read of it); unreadable ones are a warning, and
    nothing is reused."""
    try:
        store = _results.load(git, settings.remote, snapshot)
    except ContinuityError as exc:
        say("warning: cannot read the results on {}: {}; every check runs".format(settings.remote, exc))
        return _results.Store(git, warning=str(exc))
    if store.warning:
        say("warning: " + store.warning)
    return store


# -- fab continuity.test --------------------------------------------------------------

_SHARD = re.compile(r"^([0-9]+)/([0-9]+)$")


def select_units(settings: Settings, shard: str | None, check: str | None) -> list[Unit]:
    """The units ``--shard I/N`` and ``--check NAME`` choose (every one without them); `UsageError` for a bad one.

    ``--shard I/N`` runs shard I of each check declaring ``shards: N``, and
    the checks that are not sharded on shard 1 only, so that N agents
    together run everything once.
    """
    units = _results.check_units(settings.checks)
    if check is not None:
        names = list(dict.fromkeys(unit.name for unit in units))
        if check not in names:
            raise UsageError("--check {!r}: no such check; configured: {} (continuity.checks, each check's name "
                             "or command)".format(check, ", ".join("'{}'".format(n) for n in names) or "none"))
        units = [unit for unit in units if unit.name == check]
    if shard is None:
        return units
    match = _SHARD.match(shard.strip())
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise UsageError("--shard takes I/N, this agent's part I of N (like 2/4, I from 1 to N), got {!r}".format(
            shard))
    index, count = int(match.group(1)), int(match.group(2))
    sharded = [unit for unit in units if unit.shards == count]
    if count > 1 and not sharded:
        counts = sorted({unit.shards for unit in units if unit.shards > 1})
        raise UsageError("--shard {}: no check declares shards: {} ({}); run it with the N a check declares".format(
            shard, count, "declared: " + ", ".join(str(n) for n in counts) if counts else "no check is sharded"))
    return [unit for unit in units if (unit.shards == count and unit.shard == index) or
            (unit.shards == 1 and index == 1)]


# ``check`` comes before ``candidate`` in the signature: Invoke gives short flags
# in that order, and the other way round --check would take -h from the help.
@task(
    name="test",
    help={
        "junit": "Write a JUnit XML report (a test case per check) to this path.",
        "dry_run": "List the checks that would run, with their time limits; run nothing.",
        "candidate": "Check out this candidate (the id `fab continuity.candidate` printed) and check it.",
        "shard": "Run part I of N (like 2/4): shard I of every check with `shards: N`, the others on part 1.",
        "check": "Run only the check of this name (continuity.checks).",
        "line": LINE_HELP,
    },
)
@boundary
def check_here(c: Context, junit: str | None = None, dry_run: bool = False, check: str | None = None,
               candidate: str | None = None, shard: str | None = None, line: str | None = None) -> None:
    """Run the configured checks on this checkout, exactly as the pipeline's check stage does."""
    settings = _config.settings(c, line=line)
    junit = _config.absolute_path(junit) if junit else None
    units = select_units(settings, shard, check)
    rep = Reporter()
    if candidate is not None:
        _check_candidate(settings, rep, candidate, units, junit, dry_run)
        return
    here = checkout_here(settings)
    if dry_run:
        _plan(rep, units)
        return
    record = start_record("test", settings, revisions={"candidate": here.revision})
    # A checkout another run is using is a refusal (one line, exit 2), not a run to summarize.
    with exclusive(here.workspace, clean=False, say=rep.say), here.kept(rep.say):
        _run_here(settings, rep, here, units, record, junit)
    if settings.docker is not None and settings.docker.checks:
        rep.say("continuity.docker.checks run in this checkout's image: fab continuity.docker.check")


def _plan(rep: Reporter, units: Sequence[Unit]) -> None:
    for unit in units:
        limit = " (time limit {:g}s)".format(unit.timeout) if unit.timeout else ""
        rep.say("plan: check $ {}{}{}".format(unit.command, _shard_note(unit), limit))
    rep.say("dry run: nothing was run")


def _run_here(settings: Settings, rep: Reporter, here: Here, units: Sequence[Unit], record: Any,
              junit: str | None, what: str = "") -> None:
    """Run ``units`` on the checkout ``here``, record their results (when it is committed), summarize."""
    tree = here.workspace.git.tree(here.revision) if here.committed else ""
    recorded: list[_results.Recorded] = []

    def done(unit: Unit, result: Result, passed: bool, attempts: int) -> None:
        if tree:
            recorded.append(_results.recorded(unit, tree, here.revision, result, passed, attempts))

    count = len({unit.name for unit in units})
    try:
        try:
            with rep.stage("check") as info:
                run_units(units, here.workspace.root, env=here.env, say=rep.say, record=rep.command,
                          verify=here.verifier(), jobs=settings.jobs, done=done)
                info["detail"] = check_stage_detail(count)
        except ContinuityError:  # a failed check is a result too; an interruption records nothing
            _results.record_here(here.workspace.git, settings.remote, here.committed, recorded, rep.say, strict=bool(what))
            raise
        _results.record_here(here.workspace.git, settings.remote, here.committed, recorded, rep.say, strict=bool(what))
    except BaseException as exc:
        stopped = "" if isinstance(exc, ContinuityError) else "stopped"  # Ctrl-C, SIGTERM: as the pipeline says
        finish(settings, rep, record, exc, stopped, where="check", junit=junit, send=False)
        rep.summary(record.summary)
        raise
    summary = "{} on {}{}{}{}".format(check_stage_detail(count), here.revision[:12], here.note, what,
                                      flaky_note(rep.checks))
    finish(settings, rep, record, summary=summary, junit=junit, send=False)
    rep.summary(summary)


def _check_candidate(settings: Settings, rep: Reporter, name: str, units: Sequence[Unit], junit: str | None,
                     dry_run: bool) -> None:
    """``--candidate ID``: fetch it, check it out, run ``units`` on it, record, put the checkout back."""
    ws = open_workspace(".", settings.git_timeout)
    offered = _results.find_candidate(ws.git, settings.remote, name)
    rep.say("candidate {}: {} on {} {}".format(offered.id, offered.sha[:12], settings.branches.master,
                                               offered.base[:12]))
    if dry_run:
        _plan(rep, units)
        return
    record = start_record("test", settings, revisions={"candidate": offered.sha, "base": offered.base})
    with exclusive(ws, say=rep.say), restored_head(ws, say=rep.say):
        ws.git.checkout(offered.sha)
        env = command_env(ws, offered.sha, offered.base, settings.branches.master)
        here = Here(ws, offered.sha, (), env)
        require_candidate(ws, offered.sha, "the checkout")
        _run_here(settings, rep, here, units, record, junit, what=" (candidate {})".format(offered.id))
