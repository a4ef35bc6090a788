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

from . import docker as _docker
from . import hotfix as _hotfix
from . import notify as _notify  # noqa: F401  (registers the continuity.notify settings)
from . import release as _release
from .config import Settings, _collection_defaults, settings
from .deploy import annotate, register_deploy
from .errors import ContinuityError
from .lock import locks, unlock
from .pipeline import init, pipeline, run_pipeline, status
from .release import history, promote, rollback

__version__ = "0.1.0"

__all__ = [
    "ns",
    "pipeline",
    "status",
    "init",
    "run_pipeline",
    "promote",
    "rollback",
    "history",
    "locks",
    "unlock",
    "register_deploy",
    "annotate",
    "settings",
    "Settings",
    "ContinuityError",
]

# The ``deploy`` task is registered under that name but not bound here:
# ``continuity.deploy`` stays the module (register_deploy, annotate, ...).
ns = Collection("continuity", pipeline, status, init, promote, _release.deploy, rollback, history, locks, unlock)
ns.add_collection(_hotfix.ns)
ns.add_collection(_docker.ns)
ns.configure(_collection_defaults())
