"""The Docker engine and the registry, through the Docker SDK for Python.

The only module that imports the SDK (``import docker`` pulls in requests);
`continuity.docker.images` imports this one inside one function, so
``import continuity`` stays light. Registry credentials come from the
environment variables the settings name; they are handed to the engine as
an auth config, never printed, and removed from every message we raise.
"""

from __future__ import annotations

import codecs
import os
import secrets
import sys
import tempfile
import threading
import time
from typing import Any, Callable, TextIO

import docker
from docker import errors as sdk_errors
from requests import exceptions as http_errors

from .._proc import Result, Tail
from ..errors import CommandFailed, ContinuityError, RegistryError, UsageError
from .context import CHECK_LABEL, KEY_LABEL, BuildContext, key_tag, write_tar
from .settings import DockerCheck, DockerSettings

__all__ = ["Engine", "RegistryError", "KEY_LABEL", "CHECK_LABEL", "key_tag"]

_GRACE = 5.0
_REFUSED = ("unauthorized", "authentication required", "no basic auth")  # how registries say 401


class Engine:
    """A connection to the engine, for one repository and its credentials."""

    def __init__(self, settings: DockerSettings, out: TextIO | None = None) -> None:
        self.settings = settings
        self.repository = settings.image
        self._out = out  # None: sys.stdout as it is when we write (a heartbeat watches it)
        self.auth = _credentials(settings)
        self.hidden = [self.auth["password"]] if self.auth else []
        self.client = _connect()

    # -- images ---------------------------------------------------------------

    def local_image(self, reference: str) -> Any:
        """The local image ``reference`` (``repo:tag``, ``repo@digest`` or an ID), or None."""
        try:
            return self.client.images.get(reference)
        except sdk_errors.ImageNotFound:
            return None
        except sdk_errors.APIError as exc:
            raise ContinuityError("docker: cannot inspect {}: {}".format(reference, self._explain(exc))) from None

    def ref(self, tag: str) -> str:
        return "{}:{}".format(self.repository, tag)

    def tag(self, image_id: str, tag: str) -> None:
        self._call("tag " + self.ref(tag), self.client.api.tag, image_id, self.repository, tag, force=True)

    def build(self, context: BuildContext, tag: str, network: str | None = None) -> tuple[str, Result]:
        """Build ``context`` (a `BuildContext`) as ``repository:tag``; return (image ID, `Result`).

        Streams the build log; a failed build raises `CommandFailed` naming the failing step.
        """
        command = "docker build -f {} {}".format(context.dockerfile_name, os.path.relpath(context.root))
        log = _Output(self.out)
        start, step, image_id, error = time.monotonic(), "", None, None
        with tempfile.TemporaryFile() as tar:
            write_tar(context, tar)
            try:
                for event in self.client.api.build(
                    fileobj=tar, custom_context=True, dockerfile=context.dockerfile_name, tag=self.ref(tag),
                    buildargs=dict(self.settings.build_args), labels={KEY_LABEL: context.key}, network_mode=network,
                    rm=True, forcerm=True, decode=True, timeout=None,
                ):
                    text = event.get("stream") or ""
                    if text.startswith("Step "):
                        step = text.strip()
                    log.feed(text)
                    image_id = (event.get("aux") or {}).get("ID") or image_id
                    error = error or event.get("error")
            except sdk_errors.APIError as exc:
                error = self._explain(exc)
            except http_errors.RequestException as exc:
                error = "lost the connection to the Docker engine ({})".format(type(exc).__name__)
        result = Result(command, 1 if error else 0, time.monotonic() - start, log.text())
        if error:
            where = " at {}".format(step) if step else ""
            raise CommandFailed("docker build failed{}: {}; {}".format(
                where, self._redact(error.strip()), result.tail_text()), result)
        return image_id or self.client.images.get(self.ref(tag)).id, result

    # -- the registry -----------------------------------------------------------

    def remote_digest(self, tag: str) -> str | None:
        """The digest the registry has for ``repository:tag``, or None when it has none."""
        try:
            data = self.client.api.inspect_distribution(self.ref(tag), auth_config=self.auth)
        except sdk_errors.NotFound:
            return None
        except sdk_errors.APIError as exc:
            raise self._registry_error("cannot look up {}".format(self.ref(tag)), exc) from None
        return data["Descriptor"]["digest"]

    def login(self) -> None:
        """Log in to the registry with the configured credentials, as the engine does before a push.

        The engine asks the registry; nothing is pulled, pushed or stored
        (the SDK keeps the login in memory, not in ~/.docker/config.json).
        """
        if not self.auth:
            return
        try:
            self.client.login(self.auth["username"], self.auth["password"], registry=self.auth["serveraddress"],
                              reauth=True)
        except sdk_errors.APIError as exc:
            raise self._registry_error("docker login to {}".format(self.settings.registry_host), exc) from None
        except http_errors.RequestException as exc:
            raise RegistryError("docker login to {} failed: the engine stopped answering ({})".format(
                self.settings.registry_host, type(exc).__name__)) from None

    def pull(self, digest: str) -> Any:
        """Pull ``repository@digest``; return the image."""
        reference = "{}@{}".format(self.repository, digest)
        self._stream("pull " + reference, self.client.api.pull, self.repository, tag=digest,
                     stream=True, decode=True, auth_config=self.auth)
        return self.client.images.get(reference)

    def push(self, tag: str) -> str:
        """Push ``repository:tag``; return the digest the registry stored."""
        events = self._stream("push " + self.ref(tag), self.client.api.push, self.repository, tag,
                              stream=True, decode=True, auth_config=self.auth)
        digests = [(e.get("aux") or {}).get("Digest") for e in events]
        digest = next((d for d in reversed(digests) if d), None)
        if not digest:
            raise RegistryError("docker push {} finished without a digest from the registry".format(self.ref(tag)))
        return digest

    @property
    def out(self) -> TextIO:
        return self._out or sys.stdout

    # -- checks in a container --------------------------------------------------

    def run_check(self, image_id: str, check: DockerCheck, environment: dict[str, str],
                  network: str | None = None) -> Result:
        """Run ``check`` (a `DockerCheck`) in a new container; always remove it. Returns a `Result`."""
        if isinstance(check.command, str):
            entrypoint, command = ["/bin/sh", "-c"], [check.command]
        else:
            entrypoint, command = [check.command[0]], list(check.command[1:])
        start, output = time.monotonic(), _Output(self.out)
        # Named before it exists, so a Ctrl-C even during the create call cannot leave it behind.
        name = "continuity-check-" + secrets.token_hex(6)
        try:
            container = self._call(
                "create a container for check '{}'".format(check.name), self.client.containers.create, image_id,
                command=command, entrypoint=entrypoint, environment=environment, labels={CHECK_LABEL: check.name},
                network_mode=network, name=name, detach=True,
            )
            self._call("start the container of check '{}'".format(check.name), container.start)
            reader = threading.Thread(target=_follow, args=(container, output), daemon=True)
            reader.start()
            timed_out = not _join(reader, check.timeout)
            if timed_out:
                _quietly(container.kill)
            reader.join(_GRACE)
            code = None if timed_out else container.wait(timeout=60).get("StatusCode")
        finally:
            self._remove(name)
        return Result(check.display, code, time.monotonic() - start, output.text(), timed_out, check.timeout)

    def _remove(self, name: str) -> None:
        try:
            self.client.api.remove_container(name, force=True)
        except sdk_errors.NotFound:
            pass
        except Exception as exc:  # never hide the error that brought us here
            self.out.write("continuity | warning: could not remove container {}: {}\n".format(name, exc))

    # -- plumbing ------------------------------------------------------------------

    def _call(self, what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except sdk_errors.APIError as exc:
            raise ContinuityError("docker: cannot {}: {}".format(what, self._explain(exc))) from None
        except http_errors.RequestException as exc:
            raise ContinuityError("docker: cannot {}: the engine did not answer ({})".format(
                what, type(exc).__name__)) from None

    def _stream(self, what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """Run a pull or push; print its steps without the progress bars; return its events."""
        events = []
        try:
            for event in function(*args, **kwargs):
                events.append(event)
                if event.get("error"):
                    raise self._registry_error("docker " + what + " failed", event["error"])
                status = event.get("status", "")
                if status and not event.get("progressDetail") and status not in ("Preparing", "Waiting"):
                    self.out.write("{}{}\n".format(event["id"] + ": " if event.get("id") else "", status))
        except sdk_errors.APIError as exc:
            raise self._registry_error("docker " + what + " failed", exc) from None
        except http_errors.RequestException as exc:
            raise RegistryError("docker {} failed: the engine stopped answering ({})".format(
                what, type(exc).__name__)) from None
        self.out.flush()
        return events

    def _registry_error(self, what: str, problem: BaseException) -> ContinuityError:
        text = self._explain(problem) if isinstance(problem, sdk_errors.APIError) else self._redact(str(problem))
        status = getattr(getattr(problem, "response", None), "status_code", None)
        host = self.settings.registry_host
        lowered = text.lower()
        if status == 401 or any(sign in lowered for sign in _REFUSED):
            if self.auth:
                return UsageError("{}: the registry {} refused the credentials from ${} and ${}: {}".format(
                    what, host, self.settings.username_env, self.settings.password_env, text))
            return UsageError("{}: the registry {} requires credentials; set continuity.docker.username_env and "
                              "password_env to the names of variables holding them".format(what, host))
        return RegistryError("{}: {}".format(what, text))

    def _explain(self, exc: BaseException) -> str:
        return self._redact(str(getattr(exc, "explanation", None) or exc))

    def _redact(self, text: str) -> str:
        for secret in self.hidden:
            text = text.replace(secret, "****")
        return text


def _connect() -> Any:
    try:
        client = docker.from_env()
        client.ping()
    except sdk_errors.DockerException as exc:
        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        raise UsageError("cannot reach the Docker engine at {} ({}); start dockerd or set DOCKER_HOST".format(
            where, str(exc).splitlines()[0])) from None
    return client


def _credentials(settings: DockerSettings) -> dict[str, str] | None:
    """The auth config from the variables named in the settings, or None."""
    if not settings.username_env:
        return None
    values = {}
    for key in ("username_env", "password_env"):
        name = getattr(settings, key)
        values[key] = os.environ.get(name, "")
        if not values[key]:
            raise UsageError("continuity.docker.{}: the environment variable {} is not set; export it "
                             "(in Jenkins: bind the registry credentials to it)".format(key, name))
    return {"username": values["username_env"], "password": values["password_env"],
            "serveraddress": settings.registry_host}


class _Output:
    """Streams a container's or a build's output, keeping a bounded tail (`_proc.Tail`)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tail = Tail()
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, data: str) -> None:
        self.tail.feed(data)
        text = self.decoder.decode(data) if isinstance(data, bytes) else data
        if text:
            self.out.write(text)
            self.out.flush()

    def text(self) -> str:
        return self.tail.text()


def _follow(container: Any, output: _Output) -> None:
    try:
        for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
            output.feed(chunk)
    except Exception:  # the container was removed under us (Ctrl-C): nothing more to show
        pass


def _join(thread: threading.Thread, timeout: float | None) -> bool:
    """Wait for ``thread`` (interruptible by Ctrl-C); False when ``timeout`` ran out first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while thread.is_alive():
        left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
        if left <= 0:
            return False
        thread.join(left)
    return True


def _quietly(function: Callable[[], Any]) -> None:
    try:
        function()
    except sdk_errors.APIError:
        pass
