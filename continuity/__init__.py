"""continuity: Fabric tasks that keep ``master`` a candidate release.

Compose it in your fabfile::

    from fabric import task
    from invoke import Collection
    import continuity

    @task
    def deploy(c, environment):
        ...

    ns = Collection(deploy, continuity)

then run ``fab continuity.pipeline`` (in Jenkins, from the workspace root).
"""

from invoke import Collection

from .config import Settings, _collection_defaults, settings
from .deploy import register_deploy
from .errors import ContinuityError
from .pipeline import init, pipeline, run_pipeline, status

__version__ = "0.1.0"

__all__ = [
    "ns",
    "pipeline",
    "status",
    "init",
    "run_pipeline",
    "register_deploy",
    "settings",
    "Settings",
    "ContinuityError",
]

ns = Collection("continuity", pipeline, status, init)
ns.configure(_collection_defaults())
