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

The modules: `settings` (``continuity.docker`` read and checked),
`context` (what a build sends, its content key), `engine` (the SDK, the only
module that imports it), `images` (the steps), `stages` (what the pipeline
and promote run), `tasks` (``fab continuity.docker.*``) and `rollouts`
(`rollout`, for your deploy task).
"""

from __future__ import annotations

from .images import build_context, image_digest, promote_image, tested_image
from .rollouts import Rollout, rollout
from .settings import COLLECTION_DEFAULTS, DockerCheck, DockerSettings, parse_settings
from .stages import (
    after_promote,
    before_promote,
    pipeline_build,
    pipeline_checks,
    pipeline_plan,
    pipeline_publish,
    plugin,
)
from .tasks import build, check, ns, push

__all__ = [
    "COLLECTION_DEFAULTS", "DockerSettings", "DockerCheck", "parse_settings",
    "plugin", "pipeline_build", "pipeline_checks", "pipeline_publish", "pipeline_plan", "before_promote", "after_promote",
    "image_digest", "promote_image", "tested_image", "rollout", "Rollout", "build_context",
    "build", "check", "push", "ns",
]
