"""Run a command the user wrote (a build step, a check) as a shell command.

These are the only strings continuity hands to a shell, because the user
wrote them as shell commands. The command runs in its own process group so a
timeout (or Ctrl-C, or Jenkins aborting the build) ends it together with every
process it started. Its output streams to our stdout as it comes, and the last
lines are kept for the failure report.
"""

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

__all__ = ["Result", "run_shell"]

TAIL_LINES = 30
_GRACE = 5.0  # seconds between SIGTERM and SIGKILL


@dataclass
class Result:
    command: str
    exit_code: object  # int, or None when it was killed for a timeout
    duration: float
    tail: str
    timed_out: bool = False
    timeout: object = None  # the limit it was given, reported instead of the (later) kill time

    @property
    def ok(self):
        return self.exit_code == 0 and not self.timed_out

    def tail_text(self):
        """"last output:" and the tail, or "no output"."""
        tail = self.tail.rstrip()
        return "last output:\n" + tail if tail else "it printed nothing"

    def describe(self):
        """One line: what failed and how."""
        if self.timed_out:
            limit = self.timeout if self.timeout is not None else self.duration
            return "timed out after {:g}s and was killed with the processes it started".format(round(limit, 1))
        return "exited with code {}".format(self.exit_code)


def run_shell(command, cwd, timeout=None, env=None, out=None):
    """Run ``command`` through ``/bin/sh -c``; never raises for its failure."""
    out = out or sys.stdout
    start = time.monotonic()
    proc = subprocess.Popen(
        command,
        shell=True,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    tail = collections.deque(maxlen=TAIL_LINES)
    reader = threading.Thread(target=_pump, args=(proc.stdout, out, tail), daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
        _stop_leftovers(proc)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        reader.join(timeout=_GRACE)
    duration = time.monotonic() - start
    return Result(command, None if timed_out else proc.returncode, duration, "".join(tail), timed_out, timeout)


def _pump(stream, out, tail):
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace")
        tail.append(line)
        out.write(line)
        out.flush()
    stream.close()


def _stop_leftovers(proc):
    """The command exited; stop what it left running in its group (``cmd &``).

    Otherwise a forgotten background process keeps our output pipe open and
    lives on after the check that started it.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)


def _kill_group(proc):
    """SIGTERM the whole group, then SIGKILL what is left after a grace."""
    for sig, wait in ((signal.SIGTERM, _GRACE), (signal.SIGKILL, _GRACE)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            # The leader is gone; a child that ignored SIGTERM may remain.
            os.killpg(proc.pid, signal.SIGKILL)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            continue
        return
