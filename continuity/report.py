"""Console output a person can follow in a Jenkins log.

One line per stage with its result and duration, then a summary table at the
end. Plain text only: no colour codes, so CI logs stay readable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from ._text import safe
from .record import CheckRecord, RunRecord, StageRecord, StageStatus

# The records are defined in `continuity.record`; they are named here too
# because code written against continuity 0.1 imports them from here.
__all__ = ["Reporter", "StageRecord", "CheckRecord", "RunRecord"]

PREFIX = "continuity"


class Reporter:
    """Collects stage results and prints them as they finish."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.stages: list[StageRecord] = []
        self.checks: list[CheckRecord] = []

    def say(self, message: str) -> None:
        self.out.write("{} | {}\n".format(PREFIX, safe(message)))  # commit subjects, URLs: see _text
        self.out.flush()

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        """Time a stage; ``detail`` set on the yielded dict ends up on its line."""
        info: dict[str, Any] = {"detail": "", "status": StageStatus.OK}
        start = time.monotonic()
        try:
            yield info
        except BaseException as exc:
            info["status"] = StageStatus.FAILED
            info["detail"] = info["detail"] or _first_line(exc)
            info["error"] = str(exc) or type(exc).__name__
            raise
        finally:
            self._finish(name, info, time.monotonic() - start)

    def skipped(self, name: str, detail: str) -> None:
        self._finish(name, {"status": StageStatus.SKIPPED, "detail": detail}, 0.0)

    def _finish(self, name: str, info: dict[str, Any], seconds: float) -> None:
        record = StageRecord(name, info["status"], seconds, info["detail"], info.get("error", ""))
        self.stages.append(record)
        self.say("{:<9} {:<8} {:>7.2f}s  {}".format(name, record.status, seconds, record.detail).rstrip())

    def command(self, name: str, command: str, result: Any, kind: str = "check", failures: Sequence[Any] = (),
                tries: int = 1) -> None:
        """Record a check or build step that ran (``failures``: its failed runs before the last, ``retries``)."""
        self.checks.append(CheckRecord(name, command, result, kind, list(failures), tries))

    def summary(self, result: str) -> None:
        """The closing block: every stage again, then the outcome."""
        self.say("-" * 60)
        for stage in self.stages:
            self.say("{:<9} {:<8} {:>7.2f}s".format(stage.name, stage.status, stage.seconds))
        total = sum(stage.seconds for stage in self.stages)
        self.say("{:<9} {:<8} {:>7.2f}s".format("total", "", total))
        self.say("result: " + result)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
