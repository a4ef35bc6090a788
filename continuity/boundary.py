"""The task boundary: where our errors become one line and an exit code.

Every task is wrapped in `boundary`; it is the only place a
`ContinuityError` becomes output and an exit code (as Invoke's ``Program``
does for its own errors). What every task shares at its edge lives here too:
the confirmation prompt and the ``--line`` help text.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any, Callable, Optional, TypeVar, Union

from invoke import Exit

from ._text import safe
from .errors import ContinuityError, UsageError

__all__ = ["boundary", "confirm", "Terminated", "left_behind", "LINE_HELP", "JUNIT_HELP"]

#: The help of every task's ``--line`` option.
LINE_HELP = "The development line to work on (a name under continuity.lines); default: the main line."
#: The help of the ``--junit`` option of the pipeline and the tasks that deploy.
JUNIT_HELP = "Write a JUnit XML report (a test case per stage and per check) to this path."

#: What a cleanup could not undo in the task running now (see `left_behind`).
_left: list[str] = []

_Task = TypeVar("_Task", bound=Callable[..., Any])
_Handler = Union[Callable[[int, Optional[FrameType]], Any], int, None]


class Terminated(BaseException):
    """SIGTERM arrived (Jenkins aborting the build): unwind and clean up."""


def boundary(func: _Task) -> _Task:
    """Run a task body; turn `ContinuityError` into `invoke.Exit`.

    Also makes SIGTERM unwind like Ctrl-C does, so locks are released, child
    processes are killed and the workspace is put back.
    """

    @functools.wraps(func)
    def wrapper(c: Any, *args: Any, **kwargs: Any) -> Any:
        previous = _trap_sigterm()
        del _left[:]
        try:
            _refuse_remote_context(c)
            return func(c, *args, **kwargs)
        except ContinuityError as exc:
            # The last safety net: no credentials, no control characters on the terminal.
            raise Exit("continuity: error: " + safe(exc.message + _not_cleaned()), code=exc.exit_code) from None
        except Terminated:
            raise Exit("continuity: terminated (SIGTERM); " + _stopped(), code=143) from None
        except KeyboardInterrupt:
            raise Exit("continuity: interrupted; " + _stopped(), code=130) from None
        except BrokenPipeError:
            # `fab continuity.status | head`: the reader left; stop quietly.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise Exit(code=141) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper  # type: ignore[return-value]


def left_behind(what: str) -> None:
    """Record what a cleanup could not undo (a lock still on the remote, with how to break it).

    The boundary then says so instead of "cleaned up": a user must not
    believe a lock is gone while the next run would wait for it.
    """
    _left.append(what)


def _stopped() -> str:
    if not _left:
        return "cleaned up and stopped"
    return "stopped, but not everything was cleaned up: " + "; ".join(_left)


def _not_cleaned() -> str:
    return "; also, not everything was cleaned up: " + "; ".join(_left) if _left else ""


def _trap_sigterm() -> _Handler:
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: FrameType | None) -> None:
        # Clean up once, undisturbed: a second SIGTERM must not cut the
        # release of a lock on the remote short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    return signal.signal(signal.SIGTERM, handler)


def _refuse_remote_context(c: Any) -> None:
    """``fab -H host continuity.X`` would run the task once per host, there."""
    if hasattr(c, "host") and getattr(c, "host", None):
        raise UsageError(
            "continuity tasks run once, locally, from your checkout; drop -H/--hosts. To deploy an "
            "environment to hosts, list them in fabric.yaml under continuity.environments.NAME.hosts: "
            "your deploy task then runs once per host with a Connection"
        )


def confirm(question: str, yes: bool = False) -> None:
    """Ask at a terminal; ``yes`` (``--yes``) answers for CI. Declining is a `UsageError`."""
    if yes:
        return
    if not sys.stdin or not sys.stdin.isatty():
        raise UsageError("this task asks for confirmation and stdin is not a terminal; pass --yes (as CI does)")
    if input(question + " [y/N] ").strip().lower() not in ("y", "yes"):
        raise UsageError("not confirmed; nothing changed")
