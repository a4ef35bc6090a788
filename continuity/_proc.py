"""Run a command the user wrote (a build step, a check) as a shell command.

These are the only strings continuity hands to a shell, because the user
wrote them as shell commands. The command runs in its own process group so a
timeout (or Ctrl-C, or Jenkins aborting the build) ends it together with every
process it started. Its output streams to our stdout as it comes, and only
its end is kept for the failure report (`Tail`): the last lines, and never
more than a fixed number of bytes, whatever the command prints.

A command that runs long shows life (`Heartbeat`): every ``continuity.heartbeat``
seconds a line with the time it has run and its last line of output, put
between two lines of its output, never inside one. `heartbeat` does the same
for code that runs in this process (the user's deploy task).
"""

from __future__ import annotations

import codecs
import io
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Callable, TextIO

from . import _child
from ._dataclass import dataclass
from ._text import one_line

__all__ = ["Result", "Tail", "Heartbeat", "run_shell", "heartbeat", "kill_group"]

TAIL_LINES = 30
TAIL_BYTES = 64 * 1024
_CHUNK = 64 * 1024
_GRACE = 5.0  # seconds between SIGTERM and SIGKILL, unless CONTINUITY_KILL_GRACE says otherwise
_LAST_LINE = 120  # characters of the last line of output a heartbeat line shows


@dataclass
class Result:
    command: str
    exit_code: int | None  # None when it was killed for a timeout
    duration: float
    tail: str  # the end of its output, bounded by `Tail`
    timed_out: bool = False
    timeout: float | None = None  # the limit it was given, reported instead of the (later) kill time

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


def run_shell(command: str, cwd: str, timeout: float | None = None, env: Mapping[str, str] | None = None,
              out: TextIO | None = None, beat: Heartbeat | None = None,
              started: Callable[[subprocess.Popen[bytes]], None] | None = None) -> Result:
    """Run ``command`` through ``/bin/sh -c``; never raises for its failure.

    With ``beat`` (a `Heartbeat`), a long run says every ``beat.every``
    seconds that it still runs, with its last line of output.
    ``started(proc)`` is told about the process once it runs: a caller that
    runs commands in threads kills their groups (`kill_group`) when it is
    interrupted, since only the main thread hears Ctrl-C and SIGTERM.
    """
    console = _Console(out or sys.stdout, beat)
    start = console.start
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
    reader = threading.Thread(target=_pump, args=(proc.stdout, console), daemon=True)
    reader.start()
    timed_out = False
    try:
        _wait(proc, timeout, console)
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
    return Result(command, None if timed_out else proc.returncode, duration, console.tail.text(), timed_out, timeout)


def _wait(proc: subprocess.Popen[bytes], timeout: float | None, console: _Console) -> None:
    """Wait for ``proc`` to exit, saying the heartbeats on the way; `TimeoutExpired` after ``timeout``.

    The heartbeats come from this thread, between waits: no thread of ours
    outlives the command, and Ctrl-C or SIGTERM interrupts the wait as before.
    """
    deadline = None if timeout is None else console.start + timeout
    while True:
        now = time.monotonic()
        until = min(t for t in (deadline, console.next_beat) if t is not None) if console.beating else deadline
        try:
            _child.wait(proc, None if until is None else max(0.0, until - now))
            return
        except subprocess.TimeoutExpired:
            if deadline is not None and time.monotonic() >= deadline:
                raise
        console.beat_if_due()


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

    def feed(self, data: bytes | str) -> None:
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

    def last_line(self) -> str:
        """The last line with something on it ("" for none): one line, redacted, cut to a readable length.

        A carriage return ends a line too: of a progress bar, the state it
        shows now.
        """
        kept = bytes(self._kept[-self.size:])
        end = len(kept)
        while end > 0:
            start = max(kept.rfind(b"\n", 0, end), kept.rfind(b"\r", 0, end)) + 1
            line = one_line(kept[start:end].decode("utf-8", errors="replace"))
            if line:
                return line if len(line) <= _LAST_LINE else line[:_LAST_LINE - 3] + "..."
            end = start - 1
        return ""


def _start_of_last_lines(data: bytes, count: int) -> int:
    """Where the last ``count`` lines of ``data`` begin (a final newline ends a line)."""
    end = len(data) - 1 if data.endswith(b"\n") else len(data)
    for _ in range(count):
        end = data.rfind(b"\n", 0, end)
        if end < 0:
            return 0
    return end + 1


def _pump(stream: io.BufferedReader, console: _Console) -> None:
    """Copy the output to the console as it comes, in chunks: a line may have no end."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for chunk in iter(lambda: stream.read1(_CHUNK), b""):
        console.write(decoder.decode(chunk), chunk)
    console.write(decoder.decode(b"", final=True), b"")
    stream.close()


@dataclass(frozen=True)
class Heartbeat:
    """A sign of life for a long run: a line through ``say`` every ``every`` seconds (0: none).

    ``what`` names the run in that line: "check 'unit tests'", "deploy to staging".
    """

    every: float
    what: str
    say: Callable[[str], None] = print

    def line(self, elapsed: float, last: str) -> str:
        """"... check 'x' still running after 1m30s; last output: LINE" (or "; no output yet")."""
        text = "... {} still running after {}".format(self.what, elapsed_text(elapsed))
        return text + ("; last output: " + last if last else "; no output yet")


def elapsed_text(seconds: float) -> str:
    """``95`` -> "1m35s", ``3725`` -> "1h02m05s", ``9`` -> "9s"."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return "{}h{:02d}m{:02d}s".format(hours, minutes, secs)
    return "{}m{:02d}s".format(minutes, secs) if minutes else "{}s".format(secs)


class _Console:
    """Output on its way to ``out``, and the heartbeat lines that go between its lines.

    What is written goes to ``out`` and into a `Tail`. A heartbeat never
    lands inside a line of output: while the output is in the middle of a
    line it still writes (pytest's dots), the heartbeat waits for the line to
    end; a line left unfinished and silent for a whole heartbeat is ended
    first, so the heartbeat stands on a line of its own.
    """

    def __init__(self, out: TextIO, beat: Heartbeat | None) -> None:
        self.out, self.beat = out, beat
        self.tail = Tail()
        self.start = self.written = time.monotonic()
        self.beating = bool(beat and beat.every > 0)
        self.next_beat = self.start + beat.every if beat and self.beating else None
        self._lock = threading.RLock()
        self._mid_line = False
        self._saying = False

    def write(self, text: str, data: bytes | None = None) -> None:
        with self._lock:
            if self._saying:  # the heartbeat line itself, when ``say`` writes to this console
                self.out.write(text)
                self.out.flush()
                return
            self.tail.feed(text if data is None else data)
            self.out.write(text)
            self.out.flush()
            if text:
                self._mid_line = not text.endswith("\n")
                self.written = time.monotonic()

    def beat_if_due(self) -> None:
        """Say the heartbeat line if it is due; then plan the next one."""
        now = time.monotonic()
        if self.beat is None or self.next_beat is None or now < self.next_beat:
            return
        # Never wait long for the lock: the output may be stuck in a write to a
        # console nobody reads, and a heartbeat would not get out either.
        if not self._lock.acquire(timeout=1.0):
            self.next_beat = now + self.beat.every
            return
        try:
            if self._mid_line and now - self.written < self.beat.every:
                self.next_beat = now + min(1.0, self.beat.every)  # soon, once the line has ended
                return
            if self._mid_line:
                self.out.write("\n")
                self._mid_line = False
            self._saying = True
            try:
                self.beat.say(self.beat.line(now - self.start, self.tail.last_line()))
            finally:
                self._saying = False
        finally:
            self._lock.release()
        elapsed = now - self.start
        self.next_beat = self.start + (elapsed // self.beat.every + 1) * self.beat.every


class _Stdout:
    """``sys.stdout`` while in-process code runs: what it prints goes through a `_Console`."""

    def __init__(self, console: _Console, real: TextIO) -> None:
        self._console, self._real = console, real

    def write(self, text: str) -> int:
        self._console.write(text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._real.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno, buffer...: the real stream's
        return getattr(self._real, name)


@contextmanager
def heartbeat(beat: Heartbeat) -> Iterator[None]:
    """Heartbeat lines while the body runs in this process (the user's deploy task).

    What the body prints through ``sys.stdout`` (``print``, Invoke's and
    Fabric's ``run``) is watched for the last line and kept whole; what a
    subprocess writes straight to the terminal is not seen. The timer thread
    ends with the body, however it ends.
    """
    if beat.every <= 0:
        yield
        return
    real = sys.stdout
    console = _Console(real, beat)
    stop = threading.Event()
    ticker = threading.Thread(target=_tick, args=(console, stop), name="continuity-heartbeat", daemon=True)
    sys.stdout = _Stdout(console, real)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join(timeout=5.0)
        if isinstance(sys.stdout, _Stdout) and sys.stdout._console is console:
            sys.stdout = real


def _tick(console: _Console, stop: threading.Event) -> None:
    while console.next_beat is not None and not stop.wait(max(0.0, console.next_beat - time.monotonic())):
        console.beat_if_due()


def _stop_leftovers(proc: subprocess.Popen[bytes]) -> None:
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


def stop_groups(groups: Sequence[int], pids: Sequence[int]) -> None:
    """SIGTERM the process groups ``groups``, then SIGKILL them once ``pids`` have exited or the grace
    (`_grace`) is over.

    For processes that are not our children (what a killed run left
    running): there is nothing to wait on, so we look every 50 ms whether
    ``pids`` still run. One that exited but that nobody reaped yet (a
    zombie) has stopped.
    """
    for group in groups:
        _signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + _grace()
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for group in groups:
        _signal_group(group, signal.SIGKILL)  # what ignored SIGTERM, and what we did not see


def _signal_group(group: int, sig: int) -> None:
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):  # gone, or not ours to stop
        pass


def _running(pid: int) -> bool:
    """``pid`` runs (on Linux: exists and is not a zombie)."""
    try:
        with open("/proc/{}/stat".format(pid), "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[:1] != [b"Z"]
    except OSError:
        return False


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the whole group of ``proc``, then SIGKILL what is left after a grace."""
    _kill_group(proc)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
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
