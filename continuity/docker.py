"""Docker: build the image once, check inside it, push it, deploy that image.

Settings: ``continuity.docker`` (see the Docker guide, docs/docker.rst).

* **Build once.** The content key is a hash of what the build sends (the
  context less ``.dockerignore``), the Dockerfile and the build arguments.
  The image is tagged ``IMAGE:key-KEY`` and ``IMAGE:REVISION``; when an image
  with the key exists, locally or in the registry, it is reused, not rebuilt.
* **Check inside it.** ``checks`` run in fresh containers of that image,
  which are removed afterwards whatever happens.
* **Push.** After master advanced, the tested image is pushed under both
  tags; `promote_image` gives its digest the production tag, unchanged.
* **Deploy.** `rollout` starts the image on a host over a Fabric connection
  and replaces the old container only once the new one is healthy.

The SDK (and requests) is imported only when one of these runs: ``import
continuity`` stays light.
"""

import os
import posixpath
import time

from invoke import Collection, task

from . import config as _config
from ._docker_rollout import Rollout, rollout
from ._docker_settings import COLLECTION_DEFAULTS, DockerCheck, DockerSettings, parse_settings
from ._task import boundary
from .errors import CommandFailed, ContinuityError, UsageError
from .report import Reporter
from .workspace import open_workspace

__all__ = [
    "COLLECTION_DEFAULTS", "DockerSettings", "DockerCheck", "parse_settings",
    "pipeline_build", "pipeline_checks", "pipeline_publish", "pipeline_plan", "image_digest", "promote_image",
    "tested_image",
    "rollout", "Rollout", "build_context", "ns",
]


# -- the pipeline's stages -------------------------------------------------------


def pipeline_build(settings, ws, candidate, rep):
    """Stage "image": build or reuse the image of the candidate; tag it with the revision."""
    engine = _engine(settings.docker)
    context = _scan(settings.docker, ws.root, rep.say)
    image_id, how = _ensure_image(engine, settings.docker, context, rep.say, rep.command)
    engine.tag(image_id, candidate.sha)
    return _detail(engine, context, image_id, how)


def pipeline_checks(settings, ws, candidate, rep):
    """In stage "check": run the Docker checks in the candidate's image; return how many ran."""
    if not settings.docker.checks:
        return 0
    engine = _engine(settings.docker)
    image = _image_of(engine, candidate.sha)
    _run_checks(engine, settings.docker, image.id, candidate.sha, rep.say, rep.command)
    return len(settings.docker.checks)


def pipeline_publish(settings, ws, candidate, rep):
    """Stage "publish", once master advanced: push the tested image under its revision and key."""
    if not settings.docker.push:
        return "not pushed: continuity.docker.push is false"
    engine = _engine(settings.docker)
    digest = _publish(engine, _image_of(engine, candidate.sha), candidate.sha, rep.say)
    return "pushed {}:{} as {}".format(settings.docker.image, candidate.sha[:12], _short(digest))


def pipeline_plan(settings, candidate):
    """What a dry run prints for the Docker stages, by the pipeline stage they run in.

    ``{"image": [...], "check": [...], "publish": [...]}``: the pipeline
    prints each where that stage runs (image before the checks, publish
    after the push). Nothing is computed or asked.
    """
    docker_settings = settings.docker
    image = ["image {} from {} for {}, unless one with the same content key exists".format(
        docker_settings.image, posixpath.join(docker_settings.context, docker_settings.dockerfile), candidate.sha[:12])]
    checks = ["docker check $ " + check.display for check in docker_settings.checks]
    publish = (["publish {}:{} once master advanced".format(docker_settings.image, candidate.sha[:12])]
               if docker_settings.push else [])
    return {"image": image, "check": checks, "publish": publish}


def image_digest(settings, revision):
    """The digest the registry has for ``IMAGE:REVISION``; `ContinuityError` when it has none.

    Cheap: call it before moving anything that depends on the tested image.
    """
    engine = _engine(_require(settings.docker))
    digest = engine.remote_digest(revision)
    if digest is None:
        raise ContinuityError(
            "the registry has no image {}: the pipeline pushes it when master advances to that revision "
            "(with continuity.docker.push true)".format(engine.ref(revision))
        )
    return digest


def promote_image(settings, ws, revision, say=print):
    """Give the image tested for ``revision`` the production tag in the registry; return its digest.

    Never rebuilds: the registry's digest for ``IMAGE:REVISION`` is pulled
    (when it is not here already), tagged and pushed under ``production_tag``,
    and the registry must then report the very same digest.
    """
    revision = (ws.git.commit(revision) if ws is not None else None) or revision
    digest = image_digest(settings, revision)
    engine = _engine(settings.docker)
    production = settings.docker.production_tag
    if engine.remote_digest(production) == digest:
        say("image: {} is already {}".format(engine.ref(production), _short(digest)))
        return digest
    image = engine.local_image("{}@{}".format(engine.repository, digest)) or engine.pull(digest)
    engine.tag(image.id, production)
    pushed = engine.push(production)
    if pushed != digest:
        raise ContinuityError("the registry stored {} as {}, not the tested {}; production was not promoted "
                              "to the tested image".format(engine.ref(production), pushed, digest))
    say("image: {} is now {} (the image tested for {})".format(engine.ref(production), _short(digest), revision[:12]))
    return digest


def tested_image(c, revision):
    """``IMAGE@DIGEST`` of the image the pipeline tested and pushed for ``revision``.

    For your ``deploy`` task: ``rollout(c, tested_image(c, revision), "web")``.
    """
    settings = _config.settings(c)
    return "{}@{}".format(_require(settings.docker).image, image_digest(settings, revision))


def build_context(settings, root="."):
    """The `BuildContext` of the checkout at ``root``: the files the build sends and their content key."""
    return _scan(_require(settings.docker), root, lambda text: None)


# -- the steps -------------------------------------------------------------------


def _engine(docker_settings):
    from ._docker_engine import Engine

    return Engine(docker_settings)


def _require(docker_settings):
    if docker_settings is None:
        raise UsageError("Docker is not configured: set continuity.docker.image in fabric.yaml (see the Docker guide)")
    return docker_settings


def _docker_settings(c):
    return _require(_config.settings(c).docker)


def _scan(docker_settings, root, say):
    from ._docker_context import scan

    start = time.monotonic()
    context_dir = os.path.normpath(os.path.join(root, docker_settings.context))
    dockerfile = os.path.normpath(os.path.join(context_dir, docker_settings.dockerfile))
    if os.path.relpath(dockerfile, root).startswith(".." + os.sep):
        raise UsageError("continuity.docker.dockerfile: {} is outside the checkout".format(docker_settings.dockerfile))
    context = scan(context_dir, dockerfile, docker_settings.build_args)
    say("image: content key {} of {} files ({} left out by .dockerignore) in {:.2f}s".format(
        context.key[:12], context.files, context.ignored, time.monotonic() - start))
    return context


def _lookup(engine, docker_settings, tag):
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


def _ensure_image(engine, docker_settings, context, say, record):
    """The image for ``context``: found locally, pulled from the registry or built. Returns (ID, how)."""
    from ._docker_engine import key_tag

    tag = key_tag(context.key)
    where, found = _lookup(engine, docker_settings, tag)
    if where == "local":
        say("image: no build needed: {} exists here ({})".format(engine.ref(tag), found.short_id))
        return found.id, "local"
    if where == "registry":
        say("image: no build needed: the registry has {} ({}); pulling it".format(engine.ref(tag), _short(found)))
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


def _detail(engine, context, image_id, how):
    what = "{} {} (key {})".format(engine.repository, image_id[len("sha256:"):][:12], context.key[:12])
    if how == "built":
        return "built " + what
    return "reused {}, {}".format(what, "found here" if how == "local" else "pulled from the registry")


def _image_of(engine, revision):
    image = engine.local_image(engine.ref(revision))
    if image is None:
        raise ContinuityError("no image {} here; the pipeline's image stage builds it".format(engine.ref(revision)))
    return image


def _run_checks(engine, docker_settings, image_id, revision, say, record):
    for check in docker_settings.checks:
        say("docker check: $ {}".format(check.display))
        environment = dict(check.environment, **({"CONTINUITY_REVISION": revision} if revision else {}))
        result = engine.run_check(image_id, check, environment, docker_settings.network)
        record(check.name, check.display, result)
        if not result.ok:
            raise CommandFailed("check '{}' {} in a container of {}; {}".format(
                check.name, result.describe(), image_id[len("sha256:"):][:12], result.tail_text()), result)


def _publish(engine, image, revision, say):
    """Push ``image`` under ``revision`` (when given) and its key tag; return the one digest."""
    from ._docker_engine import KEY_LABEL, RegistryError, key_tag

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


def _short(digest):
    return digest[:19] if digest.startswith("sha256:") else digest[:12]


# -- tasks ---------------------------------------------------------------------------


def _task_setup(c):
    docker_settings = _docker_settings(c)
    ws = open_workspace(".")
    rep = Reporter()
    return docker_settings, ws, rep, _engine(docker_settings), _scan(docker_settings, ws.root, rep.say)


def _clean_revision(ws, say):
    """HEAD's revision, or None when tracked files changed (the image would not be that revision)."""
    if ws.git.dirty_files():
        say("image: not tagged with the revision: tracked files have uncommitted changes")
        return None
    return ws.git.commit("HEAD")


def _say_plan(engine, docker_settings, context, say):
    from ._docker_engine import key_tag

    where, _ = _lookup(engine, docker_settings, key_tag(context.key))
    action = {"local": "reuse the image here", "registry": "pull the image from the registry"}.get(where, "build it")
    say("plan: {} for key {}: {}".format(engine.ref(key_tag(context.key)), context.key[:12], action))


@task(help={"dry_run": "Compute the content key and say whether the image would be built or reused; build nothing."})
@boundary
def build(c, dry_run=False):
    """Build this checkout's Docker image, unless one with its content key exists."""
    docker_settings, ws, rep, engine, context = _task_setup(c)
    if dry_run:
        _say_plan(engine, docker_settings, context, rep.say)
        return
    image_id, how = _ensure_image(engine, docker_settings, context, rep.say, lambda *a, **k: None)
    revision = _clean_revision(ws, rep.say)
    if revision:
        engine.tag(image_id, revision)
    rep.say("image: " + _detail(engine, context, image_id, how))


@task(help={"dry_run": "Say which image and checks would run; run nothing."})
@boundary
def check(c, dry_run=False):
    """Run continuity.docker.checks in containers of this checkout's image (built if needed)."""
    docker_settings, ws, rep, engine, context = _task_setup(c)
    if dry_run:
        _say_plan(engine, docker_settings, context, rep.say)
        for item in docker_settings.checks:
            rep.say("plan: docker check $ " + item.display)
        return
    image_id, _ = _ensure_image(engine, docker_settings, context, rep.say, lambda *a, **k: None)
    _run_checks(engine, docker_settings, image_id, ws.git.commit("HEAD"), rep.say, lambda *a, **k: None)
    rep.say("{} docker check(s) passed".format(len(docker_settings.checks)))


@task(help={"dry_run": "Say which tags would be pushed where; push nothing."})
@boundary
def push(c, dry_run=False):
    """Push this checkout's image to the registry, tagged with its revision and content key."""
    from ._docker_engine import key_tag

    docker_settings, ws, rep, engine, context = _task_setup(c)
    image = engine.local_image(engine.ref(key_tag(context.key)))
    if image is None:
        raise UsageError("no image for this checkout's content (key {}) here; run fab continuity.docker.build "
                         "(and continuity.docker.check) first".format(context.key[:12]))
    revision = _clean_revision(ws, rep.say)
    if dry_run:
        tags = ([revision] if revision else []) + [key_tag(context.key)]
        rep.say("plan: push {} as {}".format(image.short_id, ", ".join(engine.ref(t) for t in tags)))
        return
    if revision:
        engine.tag(image.id, revision)
    digest = _publish(engine, image, revision, rep.say)
    rep.say("image: pushed {} as {}".format(engine.ref(revision or key_tag(context.key)), digest))


ns = Collection("docker", build, check, push)
