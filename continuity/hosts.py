"""Deploying to an environment's hosts: the user's task once per host.

When ``continuity.environments.NAME.hosts`` lists hosts, `deploy.call_deploy`
hands over to `deploy_hosts`. Each host gets its own ``fabric.Connection``
(built from a clone of the run's config, so ``fabric.yaml``, ``~/.ssh/config``
and ``fab -i``/``-t`` apply) and the user's task runs with it, in a pool of
``parallel`` threads: Fabric's ``ThreadingGroup`` parallelises single commands,
not a task function (fabric#1947).

Each host ends as one of: ok, FAILED (the task raised), unreachable (the SSH
connection could not be opened, the task never ran) or not started (an
earlier host failed and ``fail_fast`` is on). A table of them is printed at
the end; any host that is not ok makes the deploy a `DeployError`.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from typing import Any, Callable

from invoke.exceptions import CommandTimedOut, Failure

from ._dataclass import dataclass
from ._text import one_line
from .config import Environment
from .errors import ContinuityError, DeployError

Say = Callable[[str], None]

__all__ = ["deploy_hosts", "HostResult", "describe_failure", "error_line", "probe_host", "DEFAULT_CONNECT_TIMEOUT"]

#: Seconds to wait for a host to answer when neither the environment, nor
#: ``~/.ssh/config``, nor Fabric's ``timeouts.connect`` sets a limit: a CI
#: job must not hang on a host that drops packets.
DEFAULT_CONNECT_TIMEOUT = 30

_COMMAND_CHARS = 80

#: Set by `deploy.call_deploy`; all are a SHA or a validated name, safe for
#: the unquoted ``export`` Fabric puts in front of remote commands.
_FORWARDED = ("CONTINUITY_REVISION", "CONTINUITY_ENVIRONMENT", "CONTINUITY_LINE")


@dataclass
class HostResult:
    host: str  # as written in the settings
    status: str  # ok | FAILED | unreachable | not started
    seconds: float = 0.0
    error: str = ""  # one line, "" when ok

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def describe(self) -> str:
        return "{}: {}".format(self.status, self.error) if self.error else self.status


def deploy_hosts(c: Any, task: Any, target: Environment, kwargs: dict[str, Any],
                 say: Say = print) -> list[HostResult]:
    """Run ``task(connection, **kwargs)`` once per host of ``target``.

    ``target`` is a `config.Environment`. Returns the list of `HostResult`
    in the order of the settings; raises `DeployError` naming the hosts that
    failed, after every started host has finished and the table is printed.
    """
    say = _serialized(say)
    workers = min(target.parallel, len(target.hosts))
    say("deploy: {}: {} host(s), {} at a time{}".format(
        target.name, len(target.hosts), workers, ", stopping at the first failure" if target.fail_fast else ""))
    results = _run_all(c, task, target, kwargs, workers, say)
    _print_table(results, say)
    if any(not result.ok for result in results):
        raise DeployError(_failure_summary(target.name, results))
    return results


class _Run:
    """What the threads of one deploy share."""

    def __init__(self, c: Any, task: Any, target: Environment, kwargs: dict[str, Any], say: Say) -> None:
        self.c, self.task, self.target, self.kwargs, self.say = c, task, target, kwargs, say
        self.failed = threading.Event()  # with fail_fast: start no more hosts
        self.cancelled = threading.Event()  # Ctrl-C or SIGTERM: start none, say nothing more
        self.connections: set[Any] = set()  # open ones, to cut off when cancelled


def _run_all(c: Any, task: Any, target: Environment, kwargs: dict[str, Any], workers: int,
             say: Say) -> list[HostResult]:
    from concurrent.futures import ThreadPoolExecutor  # here: only a deploy needs its threads

    run = _Run(c, task, target, kwargs, say)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="continuity-deploy")
    futures = [pool.submit(_deploy_one, run, host) for host in target.hosts]
    try:
        results = [future.result() for future in futures]
    except BaseException:
        # Only the main thread sees signals: start no more hosts and close
        # the running ones' connections, so that their threads end too.
        run.cancelled.set()
        for connection in list(run.connections):
            _close(connection)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results


def _deploy_one(run: _Run, host: str) -> HostResult:
    if run.failed.is_set() or run.cancelled.is_set():
        return HostResult(host, "not started", error="an earlier host failed and fail_fast is on")
    start = time.monotonic()
    try:
        connection = _connect(run.c, run.target, host)
    except ValueError as exc:  # a host string Fabric cannot read
        result = HostResult(host, "FAILED", error=str(exc))
    else:
        run.connections.add(connection)
        try:
            result = _open_and_call(run.task, connection, run.kwargs, host)
        finally:
            run.connections.discard(connection)
            _close(connection)
    result.seconds = time.monotonic() - start
    if not result.ok and run.target.fail_fast:
        run.failed.set()
    if not run.cancelled.is_set():
        run.say("deploy: {}: {} in {:.2f}s{}".format(
            host, result.status, result.seconds, ": " + result.error if result.error else ""))
    return result


def _open_and_call(task: Any, connection: Any, kwargs: dict[str, Any], host: str) -> HostResult:
    """Open the connection (unreachable when that fails), then run the task."""
    try:
        connection.open()
    except Exception as exc:
        return HostResult(host, "unreachable", error=_connect_error(exc, connection))
    try:
        task(connection, **kwargs)
    except SystemExit as exc:  # as for a local deploy: sys.exit(0) is success
        if exc.code not in (None, 0):
            return HostResult(host, "FAILED", error="the task exited with {!r}".format(exc.code))
    except BaseException as exc:  # a worker thread: every outcome is a result
        return HostResult(host, "FAILED", error=error_line(exc))
    return HostResult(host, "ok")


def _connect(c: Any, target: Environment, host: str) -> Any:
    """A `fabric.Connection` to ``host`` with ``target``'s SSH settings.

    ``user@host:port`` in the host string wins over the environment's
    ``user`` and ``port``, which win over ``~/.ssh/config`` and Fabric's config.
    """
    from fabric import Config, Connection
    from fabric.connection import derive_shorthand

    try:
        shorthand = derive_shorthand(host)
    except ValueError:
        raise ValueError("'{}' is not a host (host, user@host or user@host:port)".format(host)) from None
    # A clone per host: threads must not share a Config we modify; an
    # Invoke config (no ``fab``) becomes a Fabric one with Fabric's defaults.
    config = c.config.clone(into=None if isinstance(c.config, Config) else Config)
    options: dict[str, Any] = {}
    if target.user and shorthand["user"] is None:
        options["user"] = target.user
    if target.port and shorthand["port"] is None:
        options["port"] = target.port
    if target.connect_timeout:
        options["connect_timeout"] = math.ceil(target.connect_timeout)
    if target.key_filename:
        options["connect_kwargs"] = dict(config.connect_kwargs, key_filename=[os.path.expanduser(target.key_filename)])
    connection = Connection(host, config=config, **options)
    if connection.connect_timeout is None:
        connection.connect_timeout = DEFAULT_CONNECT_TIMEOUT
    # Remote commands see the revision too.
    connection.config.run.env = dict(connection.config.run.env or {}, **_continuity_env())
    return connection


def probe_host(c: Any, target: Environment, host: str, timeout: float) -> tuple[str, str | None]:
    """Connect to ``host`` as a deploy would, log in and run ``true``; change nothing there.

    Returns (``user@host:port``, None) when that worked, else (where, why
    not, in one line). The connection is the deploy's own (`_connect`:
    ``~/.ssh/config``, the environment's user, port and key); ``timeout``
    bounds the connect (unless the environment sets ``connect_timeout``)
    and the command.
    """
    try:
        connection = _connect(c, target, host)
    except ValueError as exc:
        return host, str(exc)
    if not target.connect_timeout:
        connection.connect_timeout = math.ceil(min(connection.connect_timeout, timeout))
    where = "{}@{}:{}".format(connection.user, connection.host, connection.port)
    try:
        connection.open()
        try:
            connection.run("true", hide=True, in_stream=False, timeout=math.ceil(timeout))
        except Exception as exc:
            return where, "logged in to {}, but `true` failed: {}".format(where, error_line(exc))
    except Exception as exc:
        return where, _connect_error(exc, connection)
    finally:
        _close(connection)
    return where, None


def _continuity_env() -> dict[str, str]:
    return {key: os.environ[key] for key in _FORWARDED if os.environ.get(key)}


def _close(connection: Any) -> None:
    try:
        connection.close()
    except Exception:  # closing a half-open connection must not hide the result
        pass


# -- one line per outcome ------------------------------------------------------


def describe_failure(exc: BaseException) -> str:
    """One line for an exception raised by the user's deploy code (locally or on a host).

    Our own errors (``docker.tested_image()`` called from the task, say) are
    written for people: their message's first line, as it would be printed
    for any other task. Anything else is named by its class, with its last line.
    """
    result = getattr(exc, "result", None)
    if result is not None and hasattr(result, "command") and hasattr(result, "exited"):
        return "command {!r} exited with code {}".format(result.command, result.exited)
    if isinstance(exc, ContinuityError):
        return one_line(exc.message.strip().splitlines()[0]) if exc.message.strip() else type(exc).__name__
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return "{}: {}".format(type(exc).__name__, lines[-1].strip() if lines else "no message")


def error_line(exc: BaseException) -> str:
    """What went wrong in the user's task on one host, in one line.

    As for a local deploy (`describe_failure`), plus the last line the
    failed command wrote: with ``hide=True`` it is nowhere else in the log.
    """
    if isinstance(exc, CommandTimedOut):
        return "command {!r} timed out after {}s".format(_short(exc.result.command), exc.timeout)
    text = describe_failure(exc)
    if isinstance(exc, Failure):
        last = _last_line(exc.result.stderr) or _last_line(exc.result.stdout)
        text += ": " + last if last else ""
    return text


def _connect_error(exc: BaseException, connection: Any) -> str:
    where = "{}@{}:{}".format(connection.user, connection.host, connection.port)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        reason = "no answer within {}s".format(connection.connect_timeout)
    elif isinstance(exc, socket.gaierror):
        reason = "unknown host name"
    elif _is_auth_error(exc):
        reason = "SSH login refused ({}); check user and key_filename".format(_last_line(str(exc)) or type(exc).__name__)
    else:
        reason = _socket_reason(exc)
    return "cannot connect to {}: {}".format(where, reason)


def _is_auth_error(exc: BaseException) -> bool:
    from paramiko.ssh_exception import AuthenticationException

    return isinstance(exc, AuthenticationException)


def _socket_reason(exc: BaseException) -> str:
    errors = getattr(exc, "errors", None)  # paramiko's NoValidConnectionsError
    if errors:
        exc = next(iter(errors.values()))
    strerror = getattr(exc, "strerror", None)
    if strerror:
        return str(strerror).lower()  # "connection refused"
    return _last_line(str(exc)) or type(exc).__name__


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _short(command: str | None) -> str:
    command = " ".join((command or "").split())
    return command if len(command) <= _COMMAND_CHARS else command[: _COMMAND_CHARS - 3] + "..."


def _print_table(results: list[HostResult], say: Say) -> None:
    """host, duration, ok or the error line: one row per host."""
    width = max([len("host")] + [len(result.host) for result in results])
    say("{:<{w}}  {:>8}  {}".format("host", "time", "result", w=width))
    for result in results:
        seconds = "-" if result.status == "not started" else "{:.2f}s".format(result.seconds)
        say("{:<{w}}  {:>8}  {}".format(result.host, seconds, result.describe(), w=width))


def _failure_summary(environment: str, results: list[HostResult]) -> str:
    """One line for `DeployError`: which hosts failed and why."""
    failed = [r for r in results if not r.ok and r.status != "not started"]
    skipped = [r for r in results if r.status == "not started"]
    text = "deploy to {} failed on {} of {} host(s): {}".format(
        environment, len(failed), len(results), "; ".join("{} ({})".format(r.host, r.describe()) for r in failed))
    if skipped:
        text += "; not started (fail_fast): " + ", ".join(r.host for r in skipped)
    return text


def _serialized(say: Say) -> Say:
    """``say`` for several threads: one whole line at a time."""
    lock = threading.Lock()

    def locked(message: str) -> None:
        with lock:
            say(message)

    return locked
