"""What Docker adds to the pipeline and to promote.

The pipeline gets an "image" stage after the build (build or reuse the
candidate's image), the Docker checks inside its "check" stage (recorded on
the candidate's tree and reused as the configured checks are), and a
"publish" stage once master advanced (push the tested image). Promote checks
that the tested image is in the registry before production moves, and gives
it the production tag after. With ``continuity.docker`` unset, each of these
does nothing.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from typing import Callable

from .. import results as _results
from .._proc import Result
from ..config import Settings
from ..report import Reporter
from ..results import Unit
from ..stage import Attempt, Candidate, Checks, Plugin, Stage
from ..workspace import Workspace
from .images import (
    engine_for,
    ensure_image,
    image_detail,
    image_digest,
    image_of,
    promote_image,
    publish,
    require,
    run_checks,
    scan_context,
    short_digest,
)
from .settings import DockerCheck, check_units, docker_of

__all__ = ["plugin", "pipeline_build", "pipeline_checks", "pipeline_publish", "pipeline_plan", "before_promote",
           "after_promote"]


def pipeline_build(settings: Settings, ws: Workspace, candidate: Candidate, rep: Reporter) -> str:
    """Stage "image": build or reuse the image of the candidate; tag it with the revision."""
    docker = require(docker_of(settings))
    engine = engine_for(docker)
    context = scan_context(docker, ws.root, rep.say)
    image_id, how = ensure_image(engine, docker, context, rep.say, rep.command)
    engine.tag(image_id, candidate.sha)
    return image_detail(engine, context, image_id, how)


def pipeline_checks(attempt: Attempt, units: Sequence[Unit]) -> int:
    """In stage "check": run the Docker checks of ``units`` (those not reused) in the candidate's image, adding
    their results to ``attempt.results``; return how many ran."""
    docker = require(docker_of(attempt.settings))
    if not units:
        return 0
    engine = engine_for(docker)
    image = image_of(engine, attempt.sha)
    by_name = {unit.name: unit for unit in units}

    def done(check: DockerCheck, result: Result) -> None:
        attempt.results.append(_results.recorded(by_name[check.name], attempt.tree, attempt.sha, result))

    return run_checks(engine, docker, image.id, attempt.sha, attempt.rep.say, attempt.rep.command, by_name, done,
                      every=attempt.settings.heartbeat)


def pipeline_publish(settings: Settings, ws: Workspace, candidate: Candidate, rep: Reporter) -> str:
    """Stage "publish", once master advanced: push the tested image under its revision and key."""
    docker = require(docker_of(settings))
    if not docker.push:
        return "not pushed: continuity.docker.push is false"
    engine = engine_for(docker)
    digest = publish(engine, image_of(engine, candidate.sha), candidate.sha, rep.say)
    return "pushed {}:{} as {}".format(docker.image, candidate.sha[:12], short_digest(digest))


def pipeline_plan(settings: Settings, candidate: Candidate) -> dict[str, list[str]]:
    """What a dry run prints for the Docker stages, by the pipeline stage they run in.

    ``{"image": [...], "check": [...], "publish": [...]}``: the pipeline
    prints each where that stage runs (image before the checks, publish
    after the push). Nothing is computed or asked.
    """
    docker_settings = require(docker_of(settings))
    image = ["image {} from {} for {}, unless one with the same content key exists".format(
        docker_settings.image, posixpath.join(docker_settings.context, docker_settings.dockerfile), candidate.sha[:12])]
    checks = ["docker check $ " + check.display for check in docker_settings.checks]
    published = (["publish {}:{} once master advanced".format(docker_settings.image, candidate.sha[:12])]
                 if docker_settings.push else [])
    return {"image": image, "check": checks, "publish": published}


# -- what the pipeline composes ----------------------------------------------------------


def plugin(settings: Settings) -> Plugin:
    """Docker's stages and checks for the pipeline; none when ``continuity.docker`` is unset."""
    if docker_of(settings) is None:
        return Plugin()
    return Plugin(stages=(IMAGE, PUBLISH), checks=(CHECKS,))


def _plan(part: str) -> Callable[[Attempt], list[str]]:
    return lambda attempt: pipeline_plan(attempt.settings, attempt.merged)[part]


def _run_image(attempt: Attempt) -> str:
    return pipeline_build(attempt.settings, attempt.ws, attempt.merged, attempt.rep)


def _run_publish(attempt: Attempt) -> str:
    return pipeline_publish(attempt.settings, attempt.ws, attempt.merged, attempt.rep)


#: Build or reuse the candidate's image, right after the build steps.
IMAGE = Stage("image", _run_image, _plan("image"), after="build")
#: The Docker checks, in containers of that image, within the check stage.
CHECKS = Checks(_plan("check"), pipeline_checks, check_units)
#: Push the tested image once master advanced.
PUBLISH = Stage("publish", _run_publish, _plan("publish"), after="push", after_push=True)


# -- promote ------------------------------------------------------------------------------


def before_promote(settings: Settings, revision: str) -> None:
    """Refuse to promote ``revision`` when the registry has no tested image of it (cheap: one question)."""
    if docker_of(settings) is not None:
        image_digest(settings, revision)


def after_promote(settings: Settings, ws: Workspace | None, revision: str,
                  say: Callable[[str], None] = print) -> None:
    """Once production moved: give the image tested for ``revision`` the production tag."""
    if docker_of(settings) is not None:
        promote_image(settings, ws, revision, say)
