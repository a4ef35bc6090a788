"""Run a command the user wrote (a build step, a check) as a shell command.

These are the only strings continuity hands to a shell, because the user
wrote them as shell commands. The command runs in its own process group so a
timeout (or Ctrl-C, or Jenkins aborting the build) ends it together with every
process it started. Its output streams to our stdout as it comes, and only
its end is kept for the failure report (`Tail`): the last lines, and never
more than a fixed number of bytes, whatever the command prints.
"""

import codecs
import io
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Optional, TextIO, Union

__all__ = ["Result", "Tail", "run_shell", "kill_group"]

TAIL_LINES = 30
TAIL_BYTES = 64 * 1024
_CHUNK = 64 * 1024
_GRACE = 5.0  # seconds between SIGTERM and SIGKILL, unless CONTINUITY_KILL_GRACE says otherwise


@dataclass
class Result:
    command: str
    exit_code: Optional[int]  # None when it was killed for a timeout
    duration: float
    tail: str  # the end of its output, bounded by `Tail`
    timed_out: bool = False
    timeout: Optional[float] = None  # the limit it was given, reported instead of the (later) kill time

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def tail_text(self) -> str:
        """What ends a failure message: "last output:" and the tail, or "it printed nothing".

        Every message about a failed command ends this way, so none ends
        with a "last output:" that nothing follows.
        """
        tail = self.tail.rstrip()
        return "last output:\n" + tail if tail else "it printed nothing"

    def describe(self) -> str:
        """One line: what failed and how."""
        if self.timed_out:
            limit = self.timeout if self.timeout is not None else self.duration
            return "timed out after {:g}s and was killed with the processes it started".format(round(limit, 1))
        return "exited with code {}".format(self.exit_code)


def run_shell(command: str, cwd: str, timeout: Optional[float] = None, env: Optional[Mapping[str, str]] = None,
              out: Optional[TextIO] = None,
              started: Optional[Callable[["subprocess.Popen[bytes]"], None]] = None) -> Result:
    """Run ``command`` through ``/bin/sh -c``; never raises for its failure.

    ``started(proc)`` is told about the process once it runs: a caller that
    runs commands in threads kills their groups (`kill_group`) when it is
    interrupted, since only the main thread hears Ctrl-C and SIGTERM.
    """
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
    if started is not None:
        started(proc)
    tail = Tail()
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
        reader.join(timeout=_grace())
    duration = time.monotonic() - start
    return Result(command, None if timed_out else proc.returncode, duration, tail.text(), timed_out, timeout)


class Tail:
    """The end of a command's output: its last ``lines`` lines, at most ``size`` bytes.

    Memory stays bounded whatever the command prints, even a single line of
    150 MB with no newline: what goes into error messages, the JUnit report
    and notifications comes from here.
    """

    def __init__(self, lines: int = TAIL_LINES, size: int = TAIL_BYTES) -> None:
        self.lines, self.size = lines, size
        self.total = 0  # bytes seen
        self._kept = bytearray()

    def feed(self, data: Union[bytes, str]) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8", errors="replace")
        self.total += len(data)
        self._kept += data
        if len(self._kept) > 2 * self.size:  # trim now and then, not on every chunk
            del self._kept[: -self.size]

    def text(self) -> str:
        """The tail as text; says so when a line was cut to stay within ``size``."""
        kept = bytes(self._kept[-self.size:])
        start = _start_of_last_lines(kept, self.lines)
        text = kept[start:].decode("utf-8", errors="replace")
        if start == 0 and len(kept) < self.total:
            text = "[{} bytes of output before this were not kept]\n".format(self.total - len(kept)) + text
        return text


def _start_of_last_lines(data: bytes, count: int) -> int:
    """Where the last ``count`` lines of ``data`` begin (a final newline ends a line)."""
    end = len(data) - 1 if data.endswith(b"\n") else len(data)
    for _ in range(count):
        end = data.rfind(b"\n", 0, end)
        if end < 0:
            return 0
    return end + 1


def _pump(stream: io.BufferedReader, out: TextIO, tail: Tail) -> None:
    """Copy the output to ``out`` as it comes, in chunks: a line may have no end."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for chunk in iter(lambda: stream.read1(_CHUNK), b""):
        tail.feed(chunk)
        out.write(decoder.decode(chunk))
        out.flush()
    out.write(decoder.decode(b"", final=True))
    stream.close()


def _stop_leftovers(proc: "subprocess.Popen[bytes]") -> None:
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


def _grace() -> float:
    """Seconds between SIGTERM and SIGKILL: ``CONTINUITY_KILL_GRACE`` when set, else 5.

    Read at each kill, not at import, so a test suite (or an impatient CI)
    can shorten the wait for commands that ignore SIGTERM. A value that is not
    a number from 0 to 3600 keeps the default.
    """
    try:
        grace = float(os.environ.get("CONTINUITY_KILL_GRACE", ""))
    except ValueError:
        return _GRACE
    return grace if math.isfinite(grace) and 0 <= grace <= 3600 else _GRACE


def kill_group(proc: "subprocess.Popen[bytes]") -> None:
    """SIGTERM the whole group of ``proc``, then SIGKILL what is left after a grace."""
    _kill_group(proc)


def _kill_group(proc: "subprocess.Popen[bytes]") -> None:
    """SIGTERM the whole group, then SIGKILL what is left after a grace."""
    grace = _grace()
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
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
