"""The one record of what a run did: `RunRecord`.

A task starts its record with `start_record` (who runs, on which line and
remote), fills it as it goes (``state``, ``revisions``, ``deployed``,
``commits``), and `close_record` completes it from the console's stages and
checks and from the exception that ended the run, if any. The JUnit report,
the notifications and `continuity.run_pipeline`'s callers all read that one
object.

States are `RunState` members, a ``str`` enum: they compare equal to the
strings they always were (``record.state == "deployed"``) and print, format
and serialize to JSON as those strings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import field
from enum import Enum
from typing import Any, Protocol

from ._dataclass import dataclass
from ._text import one_line

__all__ = ["RunState", "StageStatus", "StageRecord", "CheckRecord", "RunRecord", "start_record", "close_record",
           "build_url", "flaky_note"]


class _Text(str, Enum):
    """A str enum that prints and formats as its value on every Python version."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class RunState(_Text):
    """Where a run ended (or stands, while it runs)."""

    RUNNING = "running"
    NOTHING_TO_DO = "nothing-to-do"  # the pipeline: master already contains development
    PLANNED = "planned"  # a dry run
    PUSHED = "pushed"  # master advanced; no deploy (yet)
    DEPLOYED = "deployed"
    FINISHED = "finished"  # a hotfix
    DONE = "done"  # a task that names no state of its own
    FAILED = "failed"


class StageStatus(_Text):
    OK = "ok"
    FAILED = "FAILED"
    SKIPPED = "skipped"
    REFUSED = "refused"  # the push: master moved on the remote


@dataclass
class StageRecord:
    """A stage as the run report, the JUnit report and the notifications show it."""

    name: str
    status: str  # a StageStatus
    seconds: float
    detail: str
    error: str = ""  # the whole error message (with output tail) when FAILED


@dataclass
class CheckRecord:
    """A check (or build step) that ran: its name, command and `_proc.Result`."""

    name: str
    command: str
    result: Any  # a `_proc.Result` (or the Docker engine's, which has the same fields): its last run
    kind: str = "check"  # check | build
    failures: list[Any] = field(default_factory=list)  # the failed runs before the last one (``retries``)
    tries: int = 1  # the runs it was allowed (1 + retries)

    @property
    def flaky(self) -> bool:
        """It failed, then passed when it ran again."""
        return bool(self.failures) and self.result.ok

    def flaky_text(self) -> str:
        """"'unit tests' (passed on attempt 2 of 3)"."""
        return "'{}' (passed on attempt {} of {})".format(self.name, len(self.failures) + 1, self.tries)


Commit = tuple[str, str, str, str]  # sha, subject, author name, author email


@dataclass
class RunRecord:
    """Everything a run did, for the JUnit report, the notifications and the caller."""

    task: str  # "pipeline", "promote", ...
    line: str  # the development line ("main" when no lines are configured)
    ok: bool = True
    state: str = RunState.RUNNING  # a RunState
    summary: str = ""  # the closing "result:" sentence
    stages: list[StageRecord] = field(default_factory=list)
    checks: list[CheckRecord] = field(default_factory=list)
    error: str = ""  # the failure message, "" on success
    failed_stage: str = ""
    failed_command: str = ""
    output_tail: str = ""
    revisions: dict[str, str] = field(default_factory=dict)  # base, development, candidate
    commits: list[Commit] = field(default_factory=list)  # brought in
    deployed: dict[str, str] = field(default_factory=dict)  # environment -> result sentence
    build_url: str = ""
    remote: str = ""
    branches: dict[str, str] = field(default_factory=dict)  # role -> branch name
    seconds: float = 0.0  # the whole run, when a task timed it (`publish.reported`); else its stages add up
    culprit: str = ""  # "sha subject author" of the commit a bisection blamed (`continuity.culprit`)
    bisection: list[str] = field(default_factory=list)  # what the bisection tried, one line each

    @property
    def flaky(self) -> list[str]:
        """The checks that failed, then passed when they ran again: "'unit tests' (passed on attempt 2 of 3)"."""
        return list(dict.fromkeys(check.flaky_text() for check in self.checks if check.flaky))

    @property
    def base(self) -> str:
        """master's revision the run started from ("" until known)."""
        return self.revisions.get("base", "")

    @property
    def candidate(self) -> str:
        """The revision the run tested, pushed or deployed ("" until known)."""
        return self.revisions.get("candidate", "")

    @property
    def development(self) -> str:
        """development's pinned revision ("" until known, and for tasks other than the pipeline)."""
        return self.revisions.get("development", "")


class _LineSettings(Protocol):
    """What `start_record` reads of `config.Settings`."""

    @property
    def line(self) -> str: ...

    @property
    def remote(self) -> str: ...

    @property
    def branches(self) -> Any: ...


def flaky_note(checks: Sequence[CheckRecord]) -> str:
    """"; flaky: 'unit tests' (passed on attempt 2 of 3)" for a summary, "" when no check was flaky."""
    texts = list(dict.fromkeys(check.flaky_text() for check in checks if check.flaky))
    return "; flaky: " + ", ".join(texts) if texts else ""


def build_url() -> str:
    """Jenkins' ``BUILD_URL`` on one line, without the credentials it may carry; "" when unset."""
    return one_line(os.environ.get("BUILD_URL", ""))


def start_record(task: str, settings: _LineSettings, revisions: dict[str, str] | None = None,
                 commits: Sequence[Commit] = ()) -> RunRecord:
    """The record of a run of ``task`` that starts now."""
    return RunRecord(
        task=task,
        line=settings.line or "main",
        revisions=dict(revisions or {}),
        commits=list(commits),
        build_url=build_url(),
        remote=settings.remote,
        branches=dict(vars(settings.branches)),
    )


def close_record(record: RunRecord, stages: Sequence[StageRecord], checks: Sequence[CheckRecord],
                 exc: BaseException | None = None, summary: str = "", where: str = "") -> RunRecord:
    """Complete ``record`` once the run ended: with ``exc`` when it failed, and return it.

    ``summary`` is the closing sentence (on failure, default: "FAILED: " and
    the error's first line). ``where`` names the failure when no stage failed:
    a task made of no stages names itself; the pipeline, all stages, names nothing.
    """
    record.stages, record.checks = list(stages), list(checks)
    record.ok = exc is None
    if exc is None:
        if record.state == RunState.RUNNING:
            record.state = RunState.DONE
        record.summary = summary or record.summary
        return record
    failed = [stage for stage in stages if stage.status == StageStatus.FAILED]
    result = getattr(exc, "result", None)
    record.state = RunState.FAILED
    record.summary = summary or "FAILED: " + (str(exc).splitlines() or [""])[0]
    record.error = str(exc)
    record.failed_stage = failed[-1].name if failed else where
    record.failed_command = getattr(result, "command", "") or ""
    record.output_tail = getattr(result, "tail", "") or ""
    return record
