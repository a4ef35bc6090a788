"""The image steps: scan the context, find or build the image, check in it, push it, promote it.

The pipeline's stages (`continuity.docker.stages`) and the ``docker.*``
tasks (`continuity.docker.tasks`) are made of these. The SDK (and requests)
is imported only when one of them talks to the engine (`_engine`):
``import continuity`` stays light.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Callable

from .. import config as _config
from .._proc import Heartbeat, Result, heartbeat
from ..config import Settings
from ..errors import CommandFailed, ContinuityError, RegistryError, UsageError
from ..workspace import Workspace
from .context import KEY_LABEL, BuildContext, key_tag, scan
from .settings import DockerCheck, DockerSettings, docker_of

if TYPE_CHECKING:  # the SDK stays unimported until an engine is needed
    from .engine import Engine

Say = Callable[[str], None]
Record = Callable[..., None]  # `report.Reporter.command`

__all__ = ["image_digest", "promote_image", "tested_image", "build_context", "engine_for", "require", "scan_context",
           "lookup", "ensure_image", "image_detail", "image_of", "run_checks", "publish", "short_digest",
           "check_registry"]


def image_digest(settings: Settings, revision: str) -> str:
    """The digest the registry has for ``IMAGE:REVISION``; `ContinuityError` when it has none.

    Cheap: call it before moving anything that depends on the tested image.
    """
    engine = engine_for(require(docker_of(settings)))
    digest = engine.remote_digest(revision)
    if digest is None:
        raise ContinuityError(
            "the registry has no image {}: the pipeline pushes it when master advances to that revision "
            "(with continuity.docker.push true)".format(engine.ref(revision))
        )
    return digest


def promote_image(settings: Settings, ws: Workspace | None, revision: str, say: Say = print) -> str:
    """Give the image tested for ``revision`` the production tag in the registry; return its digest.

    Never rebuilds: the registry's digest for ``IMAGE:REVISION`` is pulled
    (when it is not here already), tagged and pushed under ``production_tag``,
    and the registry must then report the very same digest.
    """
    revision = (ws.git.commit(revision) if ws is not None else None) or revision
    digest = image_digest(settings, revision)
    docker = require(docker_of(settings))
    engine = engine_for(docker)
    production = docker.production_tag
    if engine.remote_digest(production) == digest:
        say("image: {} is already {}".format(engine.ref(production), short_digest(digest)))
        return digest
    image = engine.local_image("{}@{}".format(engine.repository, digest)) or engine.pull(digest)
    engine.tag(image.id, production)
    pushed = engine.push(production)
    if pushed != digest:
        raise ContinuityError("the registry stored {} as {}, not the tested {}; production was not promoted "
                              "to the tested image".format(engine.ref(production), pushed, digest))
    say("image: {} is now {} (the image tested for {})".format(engine.ref(production), short_digest(digest), revision[:12]))
    return digest


def tested_image(c: Any, revision: str) -> str:
    """``IMAGE@DIGEST`` of the image the pipeline tested and pushed for ``revision``.

    For your ``deploy`` task: ``rollout(c, tested_image(c, revision), "web")``.
    """
    settings = _config.settings(c)
    return "{}@{}".format(require(docker_of(settings)).image, image_digest(settings, revision))


def build_context(settings: Settings, root: str = ".") -> BuildContext:
    """The `BuildContext` of the checkout at ``root``: the files the build sends and their content key."""
    return scan_context(require(docker_of(settings)), root, lambda text: None)


def engine_for(docker_settings: DockerSettings) -> Engine:
    """The `engine.Engine` for ``docker_settings``: the one place the SDK gets imported, lazily."""
    from .engine import Engine  # imports the Docker SDK and requests

    return Engine(docker_settings)


def check_registry(docker_settings: DockerSettings) -> str:
    """Reach the engine, then the registry as a push would; pull, push and store nothing. Says what answered.

    With credentials (``username_env``), the engine logs in to the registry
    with them; without, it looks up ``IMAGE:PRODUCTION_TAG`` there (a
    missing tag is fine: the registry answered).
    """
    engine = engine_for(docker_settings)  # pings the engine, reads the credentials' variables
    host = docker_settings.registry_host
    if engine.auth:
        engine.login()
        return "the engine answers; registry {} accepted the credentials from ${} and ${}".format(
            host, docker_settings.username_env, docker_settings.password_env)
    found = engine.remote_digest(docker_settings.production_tag)
    return "the engine answers; registry {} answers without credentials ({} {})".format(
        host, engine.ref(docker_settings.production_tag), short_digest(found) if found else "not pushed yet")


def require(docker_settings: DockerSettings | None) -> DockerSettings:
    if docker_settings is None:
        raise UsageError("Docker is not configured: set continuity.docker.image in fabric.yaml (see the Docker guide)")
    return docker_settings


def scan_context(docker_settings: DockerSettings, root: str, say: Say) -> BuildContext:
    """The `context.BuildContext` of the checkout at ``root``, with its content key; says how long it took."""
    start = time.monotonic()
    context_dir = os.path.normpath(os.path.join(root, docker_settings.context))
    dockerfile = os.path.normpath(os.path.join(context_dir, docker_settings.dockerfile))
    if os.path.relpath(dockerfile, root).startswith(".." + os.sep):
        raise UsageError("continuity.docker.dockerfile: {} is outside the checkout".format(docker_settings.dockerfile))
    context = scan(context_dir, dockerfile, docker_settings.build_args)
    say("image: content key {} of {} files ({} left out by .dockerignore) in {:.2f}s".format(
        context.key[:12], context.files, context.ignored, time.monotonic() - start))
    return context


def lookup(engine: Engine, docker_settings: DockerSettings, tag: str) -> tuple[str | None, Any]:
    """("local", image), ("registry", digest) or (None, None) for the image tagged ``tag``.

    With ``push`` on, the registry is asked even when the image is here: wrong
    credentials or an unreachable registry then stop the run before master moves.
    """
    image = engine.local_image(engine.ref(tag))
    digest = engine.remote_digest(tag) if docker_settings.push else None
    if image is not None:
        return "local", image
    if digest:
        return "registry", digest
    return None, None


def ensure_image(engine: Engine, docker_settings: DockerSettings, context: BuildContext, say: Say,
                 record: Record) -> tuple[str, str]:
    """The image for ``context``: found locally, pulled from the registry or built. Returns (ID, how)."""
    tag = key_tag(context.key)
    where, found = lookup(engine, docker_settings, tag)
    if where == "local":
        say("image: no build needed: {} exists here ({})".format(engine.ref(tag), found.short_id))
        return found.id, "local"
    if where == "registry":
        say("image: no build needed: the registry has {} ({}); pulling it".format(engine.ref(tag), short_digest(found)))
        image = engine.pull(found)
        engine.tag(image.id, tag)
        return image.id, "registry"
    say("image: building {} from {} ({} files)".format(engine.ref(tag), context.dockerfile_name, context.files))
    try:
        image_id, result = engine.build(context, tag, docker_settings.network)
    except CommandFailed as exc:
        record("docker build", exc.result.command, exc.result, kind="build")
        raise
    record("docker build", result.command, result, kind="build")
    return image_id, "built"


def image_detail(engine: Engine, context: BuildContext, image_id: str, how: str) -> str:
    what = "{} {} (key {})".format(engine.repository, image_id[len("sha256:"):][:12], context.key[:12])
    if how == "built":
        return "built " + what
    return "reused {}, {}".format(what, "found here" if how == "local" else "pulled from the registry")


def image_of(engine: Engine, revision: str) -> Any:
    image = engine.local_image(engine.ref(revision))
    if image is None:
        raise ContinuityError("no image {} here; the pipeline's image stage builds it".format(engine.ref(revision)))
    return image


def run_checks(engine: Engine, docker_settings: DockerSettings, image_id: str, revision: str | None, say: Say,
               record: Record, names: Collection[str] | None = None,
               done: Callable[[DockerCheck, Result], None] | None = None, every: float = 0.0) -> int:
    """Run the Docker checks (those in ``names``, when given) in containers of ``image_id``; return how many.

    ``done(check, result)`` is told about each one that ran, the failing one
    included; the first failure raises `CommandFailed`. A check that runs
    longer than ``every`` seconds (``continuity.heartbeat``; 0: never) says
    so every ``every`` seconds, with the last line it printed.
    """
    checks = [check for check in docker_settings.checks if names is None or check.name in names]
    for check in checks:
        say("docker check: $ {}".format(check.display))
        environment = dict(check.environment, **({"CONTINUITY_REVISION": revision} if revision else {}))
        with heartbeat(Heartbeat(every, "docker check '{}'".format(check.name), say)):
            result = engine.run_check(image_id, check, environment, docker_settings.network)
        record(check.name, check.display, result)
        if done is not None:
            done(check, result)
        if not result.ok:
            raise CommandFailed("check '{}' {} in a container of {}; {}".format(
                check.name, result.describe(), image_id[len("sha256:"):][:12], result.tail_text()), result)
    return len(checks)


def publish(engine: Engine, image: Any, revision: str | None, say: Say) -> str:
    """Push ``image`` under ``revision`` (when given) and its key tag; return the one digest."""
    tags = [revision] if revision else []
    key = (image.labels or {}).get(KEY_LABEL)
    if key:
        engine.tag(image.id, key_tag(key))
        tags.append(key_tag(key))
    digests = set()
    for tag in tags:
        say("image: pushing {}".format(engine.ref(tag)))
        digests.add(engine.push(tag))
    if len(digests) != 1:
        raise RegistryError("the registry stored different digests for one image: " + ", ".join(sorted(digests)))
    return digests.pop()


def short_digest(digest: str) -> str:
    return digest[:19] if digest.startswith("sha256:") else digest[:12]
