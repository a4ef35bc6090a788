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
The layers of the package, and where to change what: docs/design.rst.
"""

from __future__ import annotations

from invoke import Collection

from . import build as _build
from . import candidate as _candidate
from . import docker as _docker
from . import flaky as _flaky
from . import hotfix as _hotfix
from . import merge as _merge
from . import notify as _notify  # noqa: F401  (registers the continuity.notify settings)
from . import page as _page
from . import release as _release
from . import test as _test
from . import trial as _trial
from .admin import init, locks, status, unlock
from .config import Settings, _collection_defaults, settings
from .deploy import annotate, register_deploy
from .docker import Rollout, rollout, tested_image
from .doctor import doctor
from .errors import ContinuityError
from .pipeline import pipeline, run_pipeline
from .record import RunRecord, RunState
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
    "doctor",
    "register_deploy",
    "annotate",
    "settings",
    "Settings",
    "ContinuityError",
    "RunRecord",
    "RunState",
    "rollout",
    "Rollout",
    "tested_image",
]

# The ``deploy``, ``merge``, ``build`` and ``test`` tasks are registered under
# those names but not bound here: ``continuity.deploy`` and the others stay the
# modules (register_deploy, annotate, ...).
ns = Collection("continuity", pipeline, status, init, promote, _release.deploy, rollback, history, locks, unlock,
                _merge.show_merge, _build.build_here, _test.check_here, _page.report,
                _candidate.candidate, _candidate.results, _trial.try_branch, _flaky.flaky)
ns.add_task(doctor)
ns.add_collection(_hotfix.ns)
ns.add_collection(_docker.ns)
ns.configure(_collection_defaults())
