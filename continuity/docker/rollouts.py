"""Roll out an image on a host: start the new container, then retire the old.

`rollout` runs the ``docker`` CLI through ``c.run``, so it works the same over
a Fabric ``Connection`` (on the host) and with a local ``invoke.Context``.
Every command is built with `shlex.join`: image names, container names and
arguments are data, whatever the remote shell.

Containers of one service carry the label ``continuity.rollout=NAME`` and are
named ``NAME-<random>``, so the new one runs beside the old one until it is
healthy. Healthy means: the health command exits 0 inside it (``docker
exec``), or else the image's HEALTHCHECK reports ``healthy``, or else (no
health check at all) it is still running after a moment. Only then are the old
containers stopped and removed. Otherwise, or on Ctrl-C, the new container is
removed and the old one keeps running.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from collections.abc import Sequence
from typing import Any, Callable

from .. import ledger
from .._dataclass import dataclass
from ..errors import DeployError, UsageError

__all__ = ["rollout", "Rollout", "ROLLOUT_LABEL"]

ROLLOUT_LABEL = "continuity.rollout"
Say = Callable[[str], None]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_POLL = 0.5
_LOG_LINES = 20
_STATE = "{{.State.Status}} {{.State.ExitCode}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}"


@dataclass(frozen=True)
class Rollout:
    host: str
    container: str  # the new container's name
    image: str  # what it runs: IMAGE@DIGEST when the digest is known
    digest: str  # "" when the image has no registry digest
    replaced: tuple[str, ...]  # names of the containers stopped and removed


def rollout(c: Any, image: str, name: str, digest: str | None = None,
            health_cmd: str | Sequence[str] | None = None, timeout: float = 60,
            run_args: Sequence[str] | None = None, command: Sequence[str] | None = None,
            stop_timeout: float = 10, say: Say | None = None) -> Rollout:
    """Run ``image`` as service ``name`` on ``c``'s host; replace the old container once healthy.

    ``image`` is ``IMAGE@DIGEST``, ``IMAGE:TAG`` or ``IMAGE`` with ``digest``
    given. ``health_cmd`` (a shell string, or an argv list) runs in the new
    container; ``run_args`` are extra ``docker run`` arguments (``["--network",
    "host", "-e", "PORT=8000"]``); ``command`` overrides the image's command.
    Raises `DeployError` when the new container is not healthy within
    ``timeout`` seconds; the old one then keeps running.
    """
    say = say or _default_say
    if not isinstance(name, str) or not _NAME.match(name):
        raise UsageError("rollout: the service name {!r} must use letters, digits, '_', '.' and '-'".format(name))
    host = getattr(c, "host", None) or "localhost"
    reference = _reference(image, digest)
    _ensure_image(c, host, reference, say)
    digest = _digest_of(c, host, reference)
    old = _containers(c, host, name)
    new = "{}-{}".format(name, os.urandom(4).hex())  # secrets.token_hex(4), without importing secrets
    say("rollout: {}: starting {} from {}".format(host, new, reference))
    try:
        _docker(c, host, "run", "--detach", "--name", new, "--label", "{}={}".format(ROLLOUT_LABEL, name),
                *(run_args or ()), reference, *(command or ()))
        healthy, reason = _wait_healthy(c, host, new, health_cmd, timeout)
        if not healthy:
            _fail(c, host, name, new, reference, reason, old)
    except BaseException:
        _docker(c, host, "rm", "--force", new, check=False)
        raise
    say("rollout: {}: {} is healthy ({})".format(host, new, reason))
    _retire(c, host, old, stop_timeout, say)
    _annotate(image=reference, image_digest=digest)
    return Rollout(host, new, reference, digest, tuple(old))


def _default_say(text: str) -> None:
    print("continuity | " + text, flush=True)


def _reference(image: str, digest: str | None) -> str:
    if not isinstance(image, str) or not image or image.startswith("-") or any(ch.isspace() for ch in image):
        raise UsageError("rollout: {!r} is not an image reference".format(image))
    if digest is not None and not _DIGEST.match(digest):
        raise UsageError("rollout: {!r} is not an image digest (sha256:<64 hex digits>)".format(digest))
    repository, at, pinned = image.partition("@")
    if at:
        if digest and digest != pinned:
            raise UsageError("rollout: {} and digest {} disagree".format(image, digest))
        return image
    if not digest:
        return image
    last = repository.rsplit("/", 1)
    if ":" in last[-1]:  # drop a tag: the digest decides
        repository = repository[: len(repository) - len(last[-1])] + last[-1].split(":", 1)[0]
    return "{}@{}".format(repository, digest)


def _docker(c: Any, host: str, *args: str, check: bool = True) -> Any:
    """Run ``docker ARGS`` on the host; `DeployError` with its message when it fails and ``check``."""
    result = c.run(shlex.join(["docker", *args]), hide=True, warn=True, in_stream=False, pty=False)
    if check and result.exited != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        # Only the subcommand in the message: run_args may carry secrets (-e TOKEN=...).
        raise DeployError("rollout on {}: docker {} failed (exit code {}): {}".format(
            host, args[0], result.exited, lines[-1] if lines else "no output"))
    return result


def _ensure_image(c: Any, host: str, reference: str, say: Say) -> None:
    """Pull unless a pinned (``@digest``) image is already on the host; a tag is always pulled."""
    if "@" in reference and _docker(c, host, "image", "inspect", "--format", "{{.Id}}", reference, check=False).ok:
        return
    say("rollout: {}: pulling {}".format(host, reference))
    _docker(c, host, "pull", "--quiet", reference)


def _digest_of(c: Any, host: str, reference: str) -> str:
    if "@" in reference:
        return reference.split("@", 1)[1]
    result = _docker(c, host, "image", "inspect", "--format", "{{json .RepoDigests}}", reference, check=False)
    repository = reference.rsplit(":", 1)[0] if ":" in reference.rsplit("/", 1)[-1] else reference
    try:
        known = json.loads(result.stdout) or []
    except ValueError:
        known = []
    return next((item.split("@", 1)[1] for item in known if item.split("@", 1)[0] == repository), "")


def _containers(c: Any, host: str, name: str) -> list[str]:
    out = _docker(c, host, "ps", "--all", "--filter", "label={}={}".format(ROLLOUT_LABEL, name),
                  "--format", "{{.Names}}").stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def _wait_healthy(c: Any, host: str, container: str, health_cmd: str | Sequence[str] | None,
                  timeout: float) -> tuple[bool, str]:
    """(True, how) once healthy; (False, why) when it exits, turns unhealthy or time runs out."""
    deadline, waiting, seen_running = time.monotonic() + timeout, "it did not start", False
    while True:
        status, exit_code, health = _state(c, host, container)
        if status in ("exited", "dead"):
            return False, "it exited with code {}".format(exit_code)
        if status == "running":
            if health_cmd is not None:
                exec_args = ["sh", "-c", health_cmd] if isinstance(health_cmd, str) else list(health_cmd)
                probe = _docker(c, host, "exec", container, *exec_args, check=False)
                if probe.exited == 0:
                    return True, "health command passed"
                waiting = "the health command kept failing (last exit code {})".format(probe.exited)
            elif health == "healthy":
                return True, "HEALTHCHECK healthy"
            elif health == "unhealthy":
                return False, "its HEALTHCHECK reports unhealthy"
            elif health == "none":
                if seen_running:
                    return True, "running; the image has no HEALTHCHECK and no health command was given"
                seen_running, waiting = True, "it was still starting"
            else:
                waiting = "its HEALTHCHECK still says {}".format(health)
        if time.monotonic() >= deadline:
            return False, "not healthy after {:g}s: {}".format(timeout, waiting)
        time.sleep(_POLL)


def _state(c: Any, host: str, container: str) -> list[str]:
    out = _docker(c, host, "inspect", "--format", _STATE, container).stdout.split()
    return (out + ["", "", ""])[:3]


def _fail(c: Any, host: str, name: str, new: str, reference: str, reason: str, old: Sequence[str]) -> None:
    logs = _docker(c, host, "logs", "--tail", str(_LOG_LINES), new, check=False)
    output = ((logs.stdout or "") + (logs.stderr or "")).rstrip() or "(no output)"
    _docker(c, host, "rm", "--force", new, check=False)
    kept = "{} keeps running".format(", ".join(old)) if old else "no {} container was running before".format(name)
    raise DeployError(
        "rollout of {} on {} failed: the new container {} ({}) was not healthy: {}; it was removed and {}. "
        "Last output of the new container:\n{}".format(name, host, new, reference, reason, kept, output)
    )


def _retire(c: Any, host: str, old: Sequence[str], stop_timeout: float, say: Say) -> None:
    failed = []
    for container in old:
        stopped = _docker(c, host, "stop", "--time", str(int(stop_timeout)), container, check=False)
        removed = _docker(c, host, "rm", container, check=False) if stopped.ok else stopped
        if removed.ok:
            say("rollout: {}: stopped and removed {}".format(host, container))
        else:
            failed.append(container)
    if failed:
        raise DeployError("rollout on {}: the new container is running, but the old {} could not be stopped and "
                          "removed; stop them by hand (docker stop)".format(host, ", ".join(failed)))


def _annotate(**fields: str) -> None:
    """Record the image in the ledger entry of the deploy in progress."""
    ledger.annotate(**{key: value for key, value in fields.items() if value})
