"""The ``docker.*`` tasks: build, check and push this checkout's image, by hand.

They do what the pipeline's Docker stages do, on the checkout as it is
(uncommitted changes included, though an image is tagged with the revision,
and ``check`` records its results on the tree, only when tracked files are
clean).
"""

from __future__ import annotations

from typing import Any, Callable

from invoke import Collection, Context, task

from .. import config as _config
from .. import results as _results
from .._proc import Result
from ..boundary import boundary
from ..errors import ContinuityError, UsageError
from ..report import Reporter
from ..workspace import Workspace, open_workspace
from .context import BuildContext, key_tag
from .images import engine_for, ensure_image, image_detail, lookup, publish, require, run_checks, scan_context
from .settings import DockerCheck, DockerSettings, check_units

__all__ = ["build", "check", "push", "ns"]


def _task_setup(c: Context) -> tuple[DockerSettings, Workspace, Reporter, Any, BuildContext]:
    docker_settings = require(_config.settings(c).docker)
    ws = open_workspace(".")
    rep = Reporter()
    return docker_settings, ws, rep, engine_for(docker_settings), scan_context(docker_settings, ws.root, rep.say)


def _clean_revision(ws: Workspace, say: Callable[[str], None]) -> str | None:
    """HEAD's revision, or None when tracked files changed (the image would not be that revision)."""
    if ws.git.dirty_files():
        say("image: not tagged with the revision: tracked files have uncommitted changes")
        return None
    return ws.git.commit("HEAD")


def _say_plan(engine: Any, docker_settings: DockerSettings, context: BuildContext, say: Callable[[str], None]) -> None:
    where, _ = lookup(engine, docker_settings, key_tag(context.key))
    action = {"local": "reuse the image here", "registry": "pull the image from the registry"}.get(where or "", "build it")
    say("plan: {} for key {}: {}".format(engine.ref(key_tag(context.key)), context.key[:12], action))


@task(help={"dry_run": "Compute the content key and say whether the image would be built or reused; build nothing."})
@boundary
def build(c: Context, dry_run: bool = False) -> None:
    """Build this checkout's Docker image, unless one with its content key exists."""
    docker_settings, ws, rep, engine, context = _task_setup(c)
    if dry_run:
        _say_plan(engine, docker_settings, context, rep.say)
        return
    image_id, how = ensure_image(engine, docker_settings, context, rep.say, lambda *a, **k: None)
    revision = _clean_revision(ws, rep.say)
    if revision:
        engine.tag(image_id, revision)
    rep.say("image: " + image_detail(engine, context, image_id, how))


@task(help={"dry_run": "Say which image and checks would run; run nothing."})
@boundary
def check(c: Context, dry_run: bool = False) -> None:
    """Run continuity.docker.checks in containers of this checkout's image (built if needed); record the results."""
    docker_settings, ws, rep, engine, context = _task_setup(c)
    if dry_run:
        _say_plan(engine, docker_settings, context, rep.say)
        for item in docker_settings.checks:
            rep.say("plan: docker check $ " + item.display)
        return
    settings = _config.settings(c)
    image_id, _ = ensure_image(engine, docker_settings, context, rep.say, lambda *a, **k: None)
    revision = ws.git.commit("HEAD")
    clean = revision is not None and not ws.git.dirty_files()
    tree = ws.git.tree(revision) if clean and revision else ""
    units = {unit.name: unit for unit in check_units(settings)}
    records: list[_results.Recorded] = []

    def done(item: DockerCheck, result: Result) -> None:
        if tree and revision:
            records.append(_results.recorded(units[item.name], tree, revision, result))

    try:
        run_checks(engine, docker_settings, image_id, revision, rep.say, lambda *a, **k: None, done=done,
                   every=settings.heartbeat)
    finally:  # a failed check is a result too
        _record(ws, settings.remote, rep.say, records, clean)
    rep.say("{} docker check(s) passed".format(len(docker_settings.checks)))


def _record(ws: Workspace, remote: str, say: Callable[[str], None], records: list[_results.Recorded],
            clean: bool) -> None:
    """Publish the results on the checkout's tree, as `fab continuity.test` does; a failure is a warning."""
    if not clean:
        say("results not recorded: the checkout has uncommitted changes")
        return
    if not records:
        return
    try:
        _results.publish(ws.git, remote, records)
    except ContinuityError as exc:
        say("warning: results not recorded on {}: {}".format(remote, exc))
        return
    say("recorded {} result(s) for tree {} on {}".format(len(records), records[0].tree[:12], remote))


@task(help={"dry_run": "Say which tags would be pushed where; push nothing."})
@boundary
def push(c: Context, dry_run: bool = False) -> None:
    """Push this checkout's image to the registry, tagged with its revision and content key."""
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
    digest = publish(engine, image, revision, rep.say)
    rep.say("image: pushed {} as {}".format(engine.ref(revision or key_tag(context.key)), digest))


ns = Collection("docker", build, check, push)
