"""Console output a person can follow in a Jenkins log.

One line per stage with its result and duration, then a summary table at the
end. Plain text only: no colour codes, so CI logs stay readable.
"""

import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from ._text import safe

__all__ = ["Reporter", "StageRecord", "CheckRecord", "RunRecord"]

PREFIX = "continuity"


@dataclass
class StageRecord:
    name: str
    status: str  # ok | FAILED | skipped
    seconds: float
    detail: str
    error: str = ""  # the whole error message (with output tail) when FAILED


@dataclass
class CheckRecord:
    """A check (or build step) that ran: its name, command and `_proc.Result`."""

    name: str
    command: str
    result: object
    kind: str = "check"  # check | build


@dataclass
class RunRecord:
    """Everything a run did, for the JUnit report and the notifications."""

    task: str  # "pipeline", "promote", ...
    line: str  # the development line ("main" when no lines are configured)
    ok: bool
    state: str  # the outcome: nothing-to-do, planned, pushed, deployed, failed, ...
    summary: str  # the closing "result:" sentence
    stages: list = field(default_factory=list)  # [StageRecord]
    checks: list = field(default_factory=list)  # [CheckRecord]
    error: str = ""  # the failure message, "" on success
    failed_stage: str = ""
    failed_command: str = ""
    output_tail: str = ""
    revisions: dict = field(default_factory=dict)  # base, development, candidate
    commits: list = field(default_factory=list)  # [(sha, subject, author name, author email)] brought in
    deployed: dict = field(default_factory=dict)  # environment -> result sentence
    build_url: str = ""
    remote: str = ""
    branches: dict = field(default_factory=dict)  # role -> branch name


class Reporter:
    """Collects stage results and prints them as they finish."""

    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.stages = []  # [StageRecord]
        self.checks = []  # [CheckRecord]

    def say(self, message):
        self.out.write("{} | {}\n".format(PREFIX, safe(message)))  # commit subjects, URLs: see _text
        self.out.flush()

    @contextmanager
    def stage(self, name):
        """Time a stage; ``detail`` set on the yielded dict ends up on its line."""
        info = {"detail": "", "status": "ok"}
        start = time.monotonic()
        try:
            yield info
        except BaseException as exc:
            info["status"] = "FAILED"
            info["detail"] = info["detail"] or _first_line(exc)
            info["error"] = str(exc) or type(exc).__name__
            raise
        finally:
            self._finish(name, info, time.monotonic() - start)

    def skipped(self, name, detail):
        self._finish(name, {"status": "skipped", "detail": detail}, 0.0)

    def _finish(self, name, info, seconds):
        record = StageRecord(name, info["status"], seconds, info["detail"], info.get("error", ""))
        self.stages.append(record)
        self.say("{:<9} {:<8} {:>7.2f}s  {}".format(name, record.status, seconds, record.detail).rstrip())

    def command(self, name, command, result, kind="check"):
        """Record a check or build step that ran."""
        self.checks.append(CheckRecord(name, command, result, kind))

    def summary(self, result):
        """The closing block: every stage again, then the outcome."""
        self.say("-" * 60)
        for stage in self.stages:
            self.say("{:<9} {:<8} {:>7.2f}s".format(stage.name, stage.status, stage.seconds))
        total = sum(stage.seconds for stage in self.stages)
        self.say("{:<9} {:<8} {:>7.2f}s".format("total", "", total))
        self.say("result: " + result)


def _first_line(exc):
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
