"""The task boundary: where our errors become one line and an exit code."""

import functools
import signal
import threading

from invoke import Exit

from ._text import safe
from .errors import ContinuityError, UsageError

__all__ = ["boundary", "confirm", "Terminated", "left_behind"]

#: What a cleanup could not undo in the task running now (see `left_behind`).
_left = []


class Terminated(BaseException):
    """SIGTERM arrived (Jenkins aborting the build): unwind and clean up."""


def boundary(func):
    """Run a task body; turn `ContinuityError` into `invoke.Exit`.

    Also makes SIGTERM unwind like Ctrl-C does, so locks are released, child
    processes are killed and the workspace is put back.
    """

    @functools.wraps(func)
    def wrapper(c, *args, **kwargs):
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
            import os
            import sys

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise Exit(code=141) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper


def left_behind(what):
    """Record what a cleanup could not undo (a lock still on the remote, with how to break it).

    The boundary then says so instead of "cleaned up": a user must not
    believe a lock is gone while the next run would wait for it.
    """
    _left.append(what)


def _stopped():
    if not _left:
        return "cleaned up and stopped"
    return "stopped, but not everything was cleaned up: " + "; ".join(_left)


def _not_cleaned():
    return "; also, not everything was cleaned up: " + "; ".join(_left) if _left else ""


def _trap_sigterm():
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        # Clean up once, undisturbed: a second SIGTERM must not cut the
        # release of a lock on the remote short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    return signal.signal(signal.SIGTERM, handler)


def _refuse_remote_context(c):
    """``fab -H host continuity.X`` would run the task once per host, there."""
    if hasattr(c, "host") and getattr(c, "host", None):
        raise UsageError(
            "continuity tasks run once, locally, from your checkout; drop -H/--hosts. To deploy an "
            "environment to hosts, list them in fabric.yaml under continuity.environments.NAME.hosts: "
            "your deploy task then runs once per host with a Connection"
        )


def confirm(question, yes=False):
    """Ask at a terminal; ``yes`` (``--yes``) answers for CI. Declining is a `UsageError`."""
    import sys

    if yes:
        return
    if not sys.stdin or not sys.stdin.isatty():
        raise UsageError("this task asks for confirmation and stdin is not a terminal; pass --yes (as CI does)")
    if input(question + " [y/N] ").strip().lower() not in ("y", "yes"):
        raise UsageError("not confirmed; nothing changed")
