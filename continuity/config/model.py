"""What the settings are: their defaults and the frozen objects they become.

`DEFAULTS` is the documented ``continuity:`` mapping (docs/configuration.rst
prints it). `COLLECTION_DEFAULTS` is what the collection hands Invoke, and
differs on purpose: Invoke casts a ``FABRIC_CONTINUITY_*`` variable to the
type of the value it replaces and cannot cast a string to a list or check a
number, so lists and numbers are ``None`` there and are filled in by the
parser, which reads either spelling. Mappings stay, so Invoke still knows
their keys (``FABRIC_CONTINUITY_BRANCHES_MASTER``).

Everything else here is data: modules receive a `Settings`, never raw config.
"""

from __future__ import annotations

import copy
from typing import Any

from .._dataclass import dataclass

__all__ = ["DEFAULTS", "COLLECTION_DEFAULTS", "SECTIONS", "Command", "BuildStep", "Branches", "Environment",
           "Hotfix", "Settings"]

DEFAULTS: dict[str, Any] = {
    "remote": "origin",
    "branches": {
        "development": "development",
        "master": "master",
        "production": "production",
    },
    "checks": ["python -m pytest"],
    "check_timeout": None,
    "build": [],
    "auto_deploy": ["staging"],
    "deploy_task": "deploy",
    "max_attempts": 3,
    "sync_development": True,
    "reuse_results": True,
    "culprit_finding": True,
    "culprit_max_runs": None,
    "jobs": 1,
    "lock_timeout": 600,
    "git_timeout": 300,
    "lock_stale_after": 3600,
    "lock_lease": 60,
    "heartbeat": 30,
    "production_environment": "production",
    "hotfix": {"prefix": "hotfix/", "tag": "", "deploy": False},
    "environments": {},
    "junit": None,
    "line": None,
    "lines": {},
    "notify": None,
    "docker": None,
}

#: Keys whose settings belong to a package above this one, which registers
#: its parser (see `.sections`): config never imports them.
SECTIONS = ("notify", "docker")

_KEPT = {"remote", "deploy_task", "production_environment", "branches", "environments", "hotfix", "lines"}

#: What Invoke sees; `.sections.register_section` fills in each section's own.
COLLECTION_DEFAULTS: dict[str, dict[str, Any]] = {
    "continuity": {key: (copy.deepcopy(value) if key in _KEPT else None) for key, value in DEFAULTS.items()}
}


@dataclass(frozen=True)
class Command:
    """A shell command the user wrote: a check."""

    name: str
    command: str
    timeout: float | None = None  # seconds
    heartbeat: float = 30.0  # seconds between "still running" lines (continuity.heartbeat), 0 for none
    reuse: bool = True  # a result recorded for the same tree and definition counts (see `continuity.results`)
    shards: int = 1  # run as this many parts, each told CONTINUITY_SHARD and CONTINUITY_SHARDS
    retries: int = 0  # a failure is run again on the same tree up to this many times; a later pass is flaky


@dataclass(frozen=True)
class BuildStep:
    """A build command and the paths whose changes make it run."""

    name: str
    command: str
    paths: tuple[str, ...]
    timeout: float | None = None
    heartbeat: float = 30.0  # as `Command.heartbeat`


@dataclass(frozen=True)
class Branches:
    """The line's three long-lived branches (``continuity.branches``), by their short names."""

    development: str
    master: str
    production: str


@dataclass(frozen=True)
class Environment:
    """Where an environment's deploy runs: locally, or once per host."""

    name: str
    hosts: tuple[str, ...] = ()  # "host", "user@host" or "user@host:port"
    user: str | None = None
    port: int | None = None
    key_filename: str | None = None
    connect_timeout: float | None = None
    parallel: int = 4  # hosts deployed at once (1 = one after the other)
    fail_fast: bool = False  # stop starting new hosts after a failure


@dataclass(frozen=True)
class Hotfix:
    """How ``hotfix.start`` names branches and ``hotfix.finish`` tags and deploys (``continuity.hotfix``)."""

    prefix: str  # hotfix branches are PREFIX + NAME
    tag: str  # tag to create on production, "{name}" is the hotfix's name; "" for none
    deploy: bool  # deploy production after finishing


@dataclass(frozen=True)
class Settings:
    """The ``continuity`` settings of one line, parsed and checked (`config.parse`): what every task reads."""

    remote: str
    branches: Branches
    checks: tuple[Command, ...]
    build: tuple[BuildStep, ...]
    auto_deploy: tuple[str, ...]
    deploy_task: str
    max_attempts: int
    lock_timeout: float
    git_timeout: float
    environments: dict[str, Environment]  # only the configured ones
    hotfix: Hotfix
    junit: str | None = None  # path of the JUnit XML report
    # The sections' own objects (notify.NotifySettings, docker.DockerSettings),
    # or None when off. Typed loosely: this package sits below theirs.
    notify: Any = None
    docker: Any = None
    line: str = "main"  # the development line these settings are for
    lock_stale_after: float = 3600.0
    lock_lease: float = 60.0
    production_environment: str = "production"
    sync_development: bool = True  # fast-forward development to master's merge commits
    heartbeat: float = 30.0  # seconds between "still running" lines of a long check, step or deploy; 0: none
    reuse_results: bool = True  # skip a check that already passed on the candidate's tree
    jobs: int = 1  # checks run at once on one agent
    culprit_finding: bool = True  # bisect development when the candidate fails a check (continuity.culprit)
    culprit_max_runs: int | None = None  # check runs a bisection may cost; None: ceil(log2 n) + 1

    @property
    def refs_prefix(self) -> str:
        """Where this line keeps its locks, deploy records and ledger on the remote."""
        return "refs/continuity/" if self.line == "main" else "refs/continuity/lines/{}/".format(self.line)

    @property
    def line_option(self) -> str:
        """``" --line NAME"`` for commands we suggest on a named line, else ``""``."""
        return "" if self.line == "main" else " --line " + self.line

    def known_environments(self) -> tuple[str, ...]:
        names = list(self.environments) + list(self.auto_deploy) + [self.production_environment]
        return tuple(dict.fromkeys(names))

    def environment(self, name: str) -> Environment:
        """The `Environment` called ``name`` (a local one when not configured)."""
        return self.environments.get(name) or Environment(name)
