"""Console output a person can follow in a Jenkins log.

One line per stage with its result and duration, then a summary table at the
end. Plain text only: no colour codes, so CI logs stay readable.
"""

import sys
import time
from contextlib import contextmanager

__all__ = ["Reporter"]

PREFIX = "continuity"


class Reporter:
    """Collects stage results and prints them as they finish."""

    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.stages = []  # [(name, status, seconds, detail)]

    def say(self, message):
        self.out.write("{} | {}\n".format(PREFIX, message))
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
            raise
        finally:
            self._finish(name, info, time.monotonic() - start)

    def skipped(self, name, detail):
        self._finish(name, {"status": "skipped", "detail": detail}, 0.0)

    def _finish(self, name, info, seconds):
        self.stages.append((name, info["status"], seconds, info["detail"]))
        self.say("{:<9} {:<8} {:>7.2f}s  {}".format(name, info["status"], seconds, info["detail"]).rstrip())

    def summary(self, result):
        """The closing block: every stage again, then the outcome."""
        self.say("-" * 60)
        for name, status, seconds, _ in self.stages:
            self.say("{:<9} {:<8} {:>7.2f}s".format(name, status, seconds))
        total = sum(seconds for _, _, seconds, _ in self.stages)
        self.say("{:<9} {:<8} {:>7.2f}s".format("total", "", total))
        self.say("result: " + result)


def _first_line(exc):
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
