"""Waiting for a child process with a timeout, woken the moment it exits.

``subprocess.Popen.wait(timeout=...)`` polls on POSIX: it sleeps between
looks, doubling the sleep up to 50 ms. A push to a far remote, or a check,
that takes a few hundred milliseconds was then seen to end up to 50 ms
late, every time (about 45 ms a push, measured on a run with three pushes).
Linux gives a process a file descriptor that becomes readable when it exits
(``pidfd_open``, Linux 5.3 and later): `wait` sleeps in ``poll`` on it, so
it returns as soon as the process exits and still gives up at the timeout.
Elsewhere, or when the kernel says no, it falls back to ``Popen.wait``.
"""

from __future__ import annotations

import math
import os
import select
import subprocess
from typing import Any

__all__ = ["wait"]


def wait(proc: subprocess.Popen[Any], timeout: float | None) -> int:
    """``proc.wait(timeout)``, without polling: its exit code, or `subprocess.TimeoutExpired` after ``timeout``.

    A signal whose handler raises (Ctrl-C, SIGTERM) interrupts it, as it
    interrupts ``Popen.wait``.
    """
    if timeout is None or proc.returncode is not None:
        return proc.wait(timeout=timeout)
    try:
        pidfd = os.pidfd_open(proc.pid)  # type: ignore[attr-defined,unused-ignore]  # Linux only
    except (AttributeError, OSError):  # not Linux, an old kernel, or already reaped
        return proc.wait(timeout=timeout)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(math.ceil(max(0.0, timeout) * 1000)):
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(pidfd)
    return proc.wait()  # exited: reap it
