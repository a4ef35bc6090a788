"""Settings: read once from the Fabric config, validated, typed.

Fabric 3's config is Fabric 1's ``env``. Everything continuity reads lives
under the ``continuity:`` key. Sources, lowest precedence first:

1. the defaults below (`DEFAULTS`);
2. ``~/.fabric.yaml``, then the project's ``fabric.yaml`` next to the fabfile;
3. ``FABRIC_CONTINUITY_*`` environment variables
   (``FABRIC_CONTINUITY_BRANCHES_MASTER=main``);
4. a runtime file given with ``fab -f FILE``;
5. task options (``--dry-run`` ...), which beat every setting.

`settings(c)` is the only reader: it deep-merges `DEFAULTS` with
``c.config.continuity`` (a root task such as the user's ``deploy`` does not
see collection defaults, and Invoke merges collection levels shallowly), checks
every key and value, and returns a frozen `Settings`. Modules receive that
object; none of them digs in the raw config.
"""

import copy
import difflib
import os
import re
from dataclasses import dataclass

from .errors import ConfigError

__all__ = ["DEFAULTS", "COLLECTION_DEFAULTS", "Settings", "Environment", "Command", "BuildStep", "settings", "parse"]

#: The documented defaults. Lists and numbers are built here, not in the
#: collection config: Invoke cannot cast an environment variable onto a list
#: or validate a number, so the collection carries ``None`` for those keys
#: (which lets ``FABRIC_CONTINUITY_CHECKS`` arrive as a string we parse).
DEFAULTS = {
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
    "lock_timeout": 600,
    "git_timeout": 300,
    "lock_stale_after": 3600,
    "lock_lease": 60,
    "production_environment": "production",
    "hotfix": {"prefix": "hotfix/", "tag": "", "deploy": False},
    "environments": {},
    "junit": None,
    "line": None,
    "lines": {},
    "notify": None,
    "docker": None,
}

#: Sections whose keys and parsing belong to their own module (imported
#: lazily: they must stay light). Each has ``COLLECTION_DEFAULTS`` (what
#: Invoke may map ``FABRIC_CONTINUITY_<SECTION>_*`` variables onto) and
#: ``parse_settings(raw_dict)``.
_SECTIONS = ("notify", "docker")

_STRING_OR_NONE = {"remote", "deploy_task", "production_environment"}
_MAPPINGS = {"branches", "environments", "hotfix", "lines"}

COLLECTION_DEFAULTS = {
    "continuity": {
        key: (copy.deepcopy(value) if key in _STRING_OR_NONE or key in _MAPPINGS else None)
        for key, value in DEFAULTS.items()
    }
}


def _section_module(name):
    import importlib

    return importlib.import_module("continuity." + name)


def _collection_defaults():
    for name in _SECTIONS:
        COLLECTION_DEFAULTS["continuity"][name] = copy.deepcopy(_section_module(name).COLLECTION_DEFAULTS)
    return COLLECTION_DEFAULTS

_ENV_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9_-])?$")
_MAX_SECONDS = 7 * 24 * 3600
_MAX_COUNT = 10000
_STEP_NAME = _ENV_NAME


@dataclass(frozen=True)
class Command:
    """A shell command the user wrote: a check."""

    name: str
    command: str
    timeout: object = None  # seconds (float) or None


@dataclass(frozen=True)
class BuildStep:
    """A build command and the paths whose changes make it run."""

    name: str
    command: str
    paths: tuple
    timeout: object = None


@dataclass(frozen=True)
class Branches:
    development: str
    master: str
    production: str


@dataclass(frozen=True)
class Environment:
    """Where an environment's deploy runs: locally, or once per host."""

    name: str
    hosts: tuple = ()  # "host", "user@host" or "user@host:port"
    user: object = None
    port: object = None
    key_filename: object = None
    connect_timeout: object = None
    parallel: int = 4  # hosts deployed at once (1 = one after the other)
    fail_fast: bool = False  # stop starting new hosts after a failure


@dataclass(frozen=True)
class Hotfix:
    prefix: str  # hotfix branches are PREFIX + NAME
    tag: str  # tag to create on production, "{name}" is the hotfix's name; "" for none
    deploy: bool  # deploy production after finishing


@dataclass(frozen=True)
class Settings:
    remote: str
    branches: Branches
    checks: tuple
    build: tuple
    auto_deploy: tuple
    deploy_task: str
    max_attempts: int
    lock_timeout: float
    git_timeout: float
    environments: dict  # name -> Environment (only the configured ones)
    junit: object = None  # path of the JUnit XML report, or None
    notify: object = None  # notify.NotifySettings, or None when nothing is configured
    docker: object = None  # docker.DockerSettings, or None when docker is off
    line: str = "main"  # the development line these settings are for
    lock_stale_after: float = 3600.0
    lock_lease: float = 60.0
    production_environment: str = "production"
    hotfix: Hotfix = Hotfix("hotfix/", "", False)
    sync_development: bool = True  # fast-forward development to master's merge commits

    @property
    def refs_prefix(self):
        """Where this line keeps its locks, deploy records and ledger on the remote."""
        return "refs/continuity/" if self.line == "main" else "refs/continuity/lines/{}/".format(self.line)

    @property
    def line_option(self):
        """``" --line NAME"`` for commands we suggest on a named line, else ``""``."""
        return "" if self.line == "main" else " --line " + self.line

    def known_environments(self):
        names = list(self.environments) + list(self.auto_deploy) + [self.production_environment]
        return tuple(dict.fromkeys(names))

    def environment(self, name):
        """The `Environment` called ``name`` (a local one when not configured)."""
        return self.environments.get(name) or Environment(name)


def _accept_env_strings():
    """Let ``FABRIC_CONTINUITY_*`` variables arrive as strings we validate.

    Invoke casts an environment variable to the type of the value already
    configured: a list (``checks:`` in fabric.yaml) makes ``fab`` crash with
    UncastableEnvVar and a bad number with a ValueError, both before any task
    runs and with a traceback. Under ``continuity`` only, we keep the string
    and `parse` checks it like any other value, with a one-line error.
    """
    from invoke.env import Environment

    original = Environment._path_set
    if getattr(original, "_continuity", False):
        return

    def _path_set(self, key_path, value):
        if key_path and key_path[0] == "continuity":
            target = self.data
            for key in key_path[:-1]:
                target = target.setdefault(key, {})
            target[key_path[-1]] = value
            return
        original(self, key_path, value)

    _path_set._continuity = True
    Environment._path_set = _path_set


def _accept_null_mappings():
    """``hotfix:`` with nothing under it (YAML null) means "the defaults".

    Invoke refuses to merge None over a mapping default (AmbiguousMergeError,
    with a traceback, before any task runs). A null over a mapping now leaves
    the mapping as it was.
    """
    import invoke.config as invoke_config

    original = invoke_config.merge_dicts
    if getattr(original, "_continuity", False):
        return

    def merge_dicts(base, updates):
        if updates and any(v is None and isinstance(base.get(k), dict) for k, v in updates.items()):
            updates = {k: v for k, v in updates.items() if not (v is None and isinstance(base.get(k), dict))}
        ours = updates.get("continuity") if updates else None
        if ours is not None and isinstance(base.get("continuity"), dict):
            if isinstance(ours, dict):
                updates = dict(updates, continuity=_string_keys(ours))
                _replace_mismatched(base["continuity"], updates["continuity"])
            else:
                del base["continuity"]  # `continuity: []`: parse() says it must be a mapping
        return original(base, updates)

    merge_dicts._continuity = True
    invoke_config.merge_dicts = merge_dicts


def _string_keys(value):
    """Keys as strings (``lines: {5: ...}``): Invoke's env var crawl joins them."""
    if isinstance(value, dict):
        return {str(k): _string_keys(v) for k, v in value.items()}
    return value


def _replace_mismatched(base, updates):
    """Under ``continuity``, a list where a mapping was (or the reverse) replaces it.

    Invoke would raise AmbiguousMergeError with a traceback; `parse` then
    says which key has the wrong type, in one line.
    """
    for key, value in updates.items():
        if key not in base or value is None:
            continue
        if isinstance(value, dict) and isinstance(base[key], dict):
            _replace_mismatched(base[key], value)
        elif isinstance(value, dict) != isinstance(base[key], dict):
            del base[key]


_accept_env_strings()
_accept_null_mappings()


def settings(c, line=None):
    """Return the validated `Settings` for context ``c`` (and ``--line``)."""
    raw = c.config.get("continuity") if hasattr(c, "config") else None
    return parse({} if raw is None else _plain(raw), line=line)


def parse(raw, line=None):
    """Validate a plain ``continuity:`` mapping and return `Settings`.

    ``line`` (or the ``line`` setting) selects one of ``lines``: its keys
    override the top-level ones, and its locks and ledger are kept apart.
    """
    if not isinstance(raw, dict):
        raise ConfigError("continuity: the 'continuity' setting must be a mapping of keys, got {}".format(_kind(raw)))
    _reject_unknown(raw, DEFAULTS, "continuity")
    raw, line = _select_line(raw, line)
    merged = _merge(copy.deepcopy(DEFAULTS), {k: v for k, v in raw.items() if v is not None})
    if isinstance(raw.get("branches"), dict):
        _reject_unknown(raw["branches"], DEFAULTS["branches"], "continuity.branches")
    branches = merged["branches"]
    if not isinstance(branches, dict):
        raise ConfigError("continuity.branches must be a mapping with development, master and production")
    timeout = _seconds(merged["check_timeout"], "continuity.check_timeout")
    return Settings(
        remote=_remote(merged["remote"]),
        branches=Branches(**{k: _branch(branches[k], "continuity.branches." + k) for k in DEFAULTS["branches"]}),
        checks=_checks(merged["checks"], timeout),
        build=_build(merged["build"]),
        auto_deploy=_environments(merged["auto_deploy"]),
        deploy_task=_name(merged["deploy_task"], "continuity.deploy_task"),
        max_attempts=_count(merged["max_attempts"], "continuity.max_attempts"),
        lock_timeout=_seconds(merged["lock_timeout"], "continuity.lock_timeout", allow_none=False),
        git_timeout=_seconds(merged["git_timeout"], "continuity.git_timeout", allow_none=False),
        environments=_environment_table(merged["environments"]),
        junit=_optional_path(merged["junit"], "continuity.junit"),
        line=line,
        lock_stale_after=_seconds(merged["lock_stale_after"], "continuity.lock_stale_after", allow_none=False),
        lock_lease=_lease(merged["lock_lease"]),
        production_environment=environment_name(merged["production_environment"], "continuity.production_environment"),
        hotfix=_hotfix(raw.get("hotfix"), merged["hotfix"]),
        sync_development=_boolean(merged["sync_development"], "continuity.sync_development"),
        **{name: _section(name, merged[name]) for name in _SECTIONS},
    )


def _select_line(raw, line):
    lines = raw.get("lines")
    lines = {} if lines is None else lines
    if not isinstance(lines, dict):
        raise ConfigError("continuity.lines must be a mapping of line names to settings")
    for name, overrides in lines.items():
        where = "continuity.lines.{}".format(name)
        environment_name(str(name), "continuity.lines")
        if name == "main":
            raise ConfigError("continuity.lines.main: 'main' is the name of the default line; pick another name")
        if not isinstance(overrides, dict):
            raise ConfigError("{} must be a mapping of settings, got {}".format(where, _kind(overrides)))
        _reject_unknown(overrides, {k: 0 for k in DEFAULTS if k not in ("line", "lines")}, where)
    chosen = line or raw.get("line")
    if chosen is not None and not isinstance(chosen, str):
        raise ConfigError("continuity.line must be the name of a line under continuity.lines, got {}".format(_kind(chosen)))
    base = {k: v for k, v in raw.items() if k not in ("line", "lines")}
    _keep_lines_apart(base, lines)
    if not chosen or (chosen == "main" and "main" not in lines):
        return base, "main"
    if chosen not in lines:
        known = ", ".join(sorted(lines)) or "none are configured"
        raise ConfigError("unknown line {!r}; lines under continuity.lines: {}".format(chosen, known))
    environment_name(chosen, "continuity.lines")
    return _line_raw(base, lines[chosen], chosen), chosen


def _line_raw(base, overrides, name):
    """The raw settings of line ``name``: its own keys over the top-level ones.

    Names are where two lines would step on each other (one branch pushed
    by two pipelines, one environment deployed under two locks and two
    ledgers), so a line does not inherit them as they are: a branch or
    environment name it does not set is the main line's with ``-NAME``
    appended (``master-1.x``, ``staging-1.x``), and the top-level
    ``environments`` entries (where the main line's environments run) are
    not the line's.
    """
    merged = _merge(copy.deepcopy(base), copy.deepcopy(overrides))
    merged["environments"] = copy.deepcopy(overrides.get("environments"))
    main = _merge(copy.deepcopy({k: DEFAULTS[k] for k in _NAMED}), {k: v for k, v in base.items() if v is not None})
    suffix = "-" + name
    given = overrides.get("branches") if isinstance(overrides.get("branches"), dict) else {}
    if isinstance(merged.get("branches") or {}, dict) and isinstance(main["branches"], dict):
        merged["branches"] = dict(merged.get("branches") or {})
        for role in DEFAULTS["branches"]:
            if given.get(role) is None and isinstance(main["branches"].get(role), str):
                merged["branches"][role] = main["branches"][role] + suffix
    if overrides.get("auto_deploy") is None and _names_in(main["auto_deploy"]) is not None:
        merged["auto_deploy"] = [env + suffix for env in _names_in(main["auto_deploy"])]
    if overrides.get("production_environment") is None and isinstance(main["production_environment"], str):
        merged["production_environment"] = main["production_environment"] + suffix
    return merged


#: The keys that name branches and environments (see `_line_raw`).
_NAMED = ("branches", "auto_deploy", "production_environment", "environments")


def _names_in(value):
    """The names of an ``auto_deploy`` value (a list, or a string from the environment); None if neither."""
    if isinstance(value, str):
        return [part for part in re.split(r"[,\s]+", value) if part]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    return None


def _keep_lines_apart(base, lines):
    """No branch plays two roles, and no two lines share a branch or an environment.

    Checked for every line, selected or not: a line whose pipeline pushed
    the main line's master, or deployed to its staging under a lock and a
    ledger of its own, would undo the other line's work. Values of the wrong
    type are left to `parse`, which names them when their line is selected.
    """
    branch_keys, environment_keys = {}, {}
    for line, raw in [("main", base)] + [(name, _line_raw(base, lines[name], name)) for name in lines]:
        where = "continuity." if line == "main" else "continuity.lines.{}.".format(line)
        _claim_branches(raw, where, branch_keys)
        _claim_environments(raw, where, line, environment_keys)


def _claim_branches(raw, where, claimed):
    given = raw.get("branches") or {}
    if not isinstance(given, dict):
        return
    branches = dict(DEFAULTS["branches"], **{k: v for k, v in given.items() if v is not None})
    ours = {}
    for role in DEFAULTS["branches"]:
        name, key = branches.get(role), "{}branches.{}".format(where, role)
        if not isinstance(name, str):
            continue
        if name in ours:
            raise ConfigError("{} and {} are both {!r}: each of development, master and production needs a branch "
                              "of its own".format(ours[name], key, name))
        if name in claimed:
            raise ConfigError("{} is {!r}, which is also {}: two lines cannot share a branch; give each line "
                              "branches of its own".format(key, name, claimed[name]))
        ours[name] = key
    claimed.update(ours)


def _claim_environments(raw, where, line, claimed):
    names = {}
    auto_deploy = raw.get("auto_deploy")
    for name in _names_in(DEFAULTS["auto_deploy"] if auto_deploy is None else auto_deploy) or []:
        names.setdefault(name, where + "auto_deploy")
    production = raw.get("production_environment") or DEFAULTS["production_environment"]
    if isinstance(production, str):
        names.setdefault(production, where + "production_environment")
    if isinstance(raw.get("environments"), dict):
        for name in raw["environments"]:
            names.setdefault(str(name), "{}environments.{}".format(where, name))
    for name, key in names.items():
        if name in claimed and claimed[name][0] != line:
            raise ConfigError(
                "{}: {!r} is also an environment of {} ({}); each line deploys under its own locks and "
                "ledger, so two lines cannot share an environment: give {} one of its own".format(
                    key, name, _line_label(claimed[name][0]), claimed[name][1], _line_label(line)))
        claimed.setdefault(name, (line, key))


def _line_label(line):
    return "the main line" if line == "main" else "line {!r}".format(line)


def _hotfix(raw, merged):
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError("continuity.hotfix must be a mapping (prefix, tag, deploy)")
    _reject_unknown(raw or {}, DEFAULTS["hotfix"], "continuity.hotfix")
    prefix = merged.get("prefix") or ""
    if not isinstance(prefix, str):
        raise ConfigError("continuity.hotfix.prefix must be a string such as 'hotfix/'")
    tag = merged.get("tag") or ""
    if not isinstance(tag, str):
        raise ConfigError("continuity.hotfix.tag must be a string such as 'hotfix-{name}', or empty")
    if "{" in tag.replace("{name}", "") or "}" in tag.replace("{name}", ""):
        raise ConfigError("continuity.hotfix.tag: {!r} may only use the placeholder {{name}}".format(tag))
    return Hotfix(prefix, tag, _boolean(merged.get("deploy", False), "continuity.hotfix.deploy"))


def _plain(value):
    """Invoke's DataProxy (and nested ones) as plain dicts and lists."""
    if hasattr(value, "items") and not isinstance(value, (str, bytes)):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _merge(base, extra):
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = _merge(base[key], {k: v for k, v in value.items() if v is not None})
        else:
            base[key] = value
    return base


def _reject_unknown(raw, known, where):
    for key in raw:
        if key in known:
            continue
        guess = difflib.get_close_matches(str(key), list(known), n=1)
        hint = "did you mean '{}'?".format(guess[0]) if guess else "known keys: " + ", ".join(sorted(known))
        raise ConfigError("{}.{}: unknown setting; {}".format(where, key, hint))


def _kind(value):
    return "nothing" if value is None else type(value).__name__


def _name(value, where):
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("{} must be a non-empty string, got {!r}".format(where, value))
    return value


def _remote(value):
    name = _name(value, "continuity.remote")
    if name.startswith("-") or any(ch.isspace() for ch in name):
        raise ConfigError("continuity.remote: {!r} is not a remote name (see `git remote`)".format(name))
    return name


def _branch(value, where):
    name = _name(value, where)
    if name.startswith("refs/"):
        raise ConfigError("{}: write the short branch name ({!r}), not a full ref".format(where, name.split("/", 2)[-1]))
    return name


def _seconds(value, where, allow_none=True):
    if value is None or value == "":
        if allow_none:
            return None
        raise ConfigError("{} must be a number of seconds".format(where))
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError("{} must be a number of seconds, got {!r}".format(where, value)) from None
    if not number > 0 or number > _MAX_SECONDS or isinstance(value, bool):
        raise ConfigError("{} must be a positive number of seconds up to a week, got {!r}".format(where, value))
    return number


def _lease(value):
    """A lock's lease: renewed every third of it, so not below a second (a push every few ms)."""
    lease = _seconds(value, "continuity.lock_lease", allow_none=False)
    if lease < 1:
        raise ConfigError("continuity.lock_lease must be at least 1 second, got {!r}".format(value))
    return lease


def _count(value, where, maximum=None):
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError("{} must be a whole number, got {!r}".format(where, value)) from None
    maximum = maximum or _MAX_COUNT
    if number < 1 or number > maximum or isinstance(value, bool) or (isinstance(value, float) and value != number):
        raise ConfigError("{} must be a whole number from 1 to {}, got {!r}".format(where, maximum, value))
    return number


def _string_list(value, where, split):
    """A list from YAML, or a string from an environment variable."""
    if isinstance(value, str):
        value = [part for part in split(value) if part.strip()]
    if not isinstance(value, list):
        raise ConfigError("{} must be a list, got {}".format(where, _kind(value)))
    return value


def _checks(value, default_timeout):
    items = _string_list(value, "continuity.checks", str.splitlines)
    checks = []
    for index, item in enumerate(items, 1):
        where = "continuity.checks[{}]".format(index)
        if isinstance(item, str):
            item = {"command": item}
        if not isinstance(item, dict):
            raise ConfigError("{} must be a shell command or a mapping with 'command', got {}".format(where, _kind(item)))
        _reject_unknown(item, {"name": 0, "command": 0, "timeout": 0}, where)
        command = _name(item.get("command"), where + ".command")
        timeout = _seconds(item.get("timeout"), where + ".timeout")
        name = _name(item.get("name") or command, where + ".name")
        checks.append(Command(name, command, timeout if timeout is not None else default_timeout))
    return tuple(checks)


def _build(value):
    if isinstance(value, str):
        raise ConfigError("continuity.build must be a list of steps with name, command and paths; set it in fabric.yaml")
    if not isinstance(value, list):
        raise ConfigError("continuity.build must be a list of steps, got {}".format(_kind(value)))
    steps, seen = [], set()
    for index, item in enumerate(value, 1):
        where = "continuity.build[{}]".format(index)
        if not isinstance(item, dict):
            raise ConfigError("{} must be a mapping with name, command and paths, got {}".format(where, _kind(item)))
        _reject_unknown(item, {"name": 0, "command": 0, "paths": 0, "timeout": 0}, where)
        name = _name(item.get("name"), where + ".name")
        if not _STEP_NAME.match(name) or name in seen:
            raise ConfigError("{}.name {!r} must be unique and use only letters, digits, '.', '_' and '-'".format(where, name))
        seen.add(name)
        paths = item.get("paths", ["*"])
        paths = [paths] if isinstance(paths, str) else paths
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
            raise ConfigError("{}.paths must be a non-empty list of path patterns".format(where))
        command = _name(item.get("command"), where + ".command")
        steps.append(BuildStep(name, command, tuple(paths), _seconds(item.get("timeout"), where + ".timeout")))
    return tuple(steps)


def _environments(value, where="continuity.auto_deploy"):
    names = _string_list(value, where, lambda s: re.split(r"[,\s]+", s))
    for name in names:
        if not isinstance(name, str) or not _ENV_NAME.match(name) or ".." in name or name.endswith(".lock"):
            raise ConfigError(
                "{}: {!r} is not an environment name (letters, digits, '.', '_' and '-')".format(where, name)
            )
    return tuple(dict.fromkeys(names))


def _optional_path(value, where):
    if value is None or value == "":
        return None
    return absolute_path(_name(value, where))


def absolute_path(path):
    """``path`` against the directory fab started in, resolved now: a deploy task that calls
    ``os.chdir`` later cannot move where a report lands or which key is read."""
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def _section(name, raw):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("continuity.{} must be a mapping of settings, got {}".format(name, _kind(raw)))
    return _section_module(name).parse_settings(raw)


_ENVIRONMENT_KEYS = {"hosts": 0, "user": 0, "port": 0, "key_filename": 0, "connect_timeout": 0, "parallel": 0, "fail_fast": 0}


def _environment_table(value):
    if not isinstance(value, dict):
        raise ConfigError("continuity.environments must be a mapping of environment names to settings")
    return {
        environment_name(name, "continuity.environments"): _environment(name, spec) for name, spec in value.items()
    }


def _environment(name, spec):
    where = "continuity.environments.{}".format(name)
    spec = {} if spec is None else spec
    if not isinstance(spec, dict):
        raise ConfigError("{} must be a mapping (hosts, user, port, ...), got {}".format(where, _kind(spec)))
    _reject_unknown(spec, _ENVIRONMENT_KEYS, where)
    hosts = _string_list(spec.get("hosts", []), where + ".hosts", lambda s: re.split(r"[,\s]+", s))
    if not all(isinstance(h, str) and h and not h.startswith("-") and " " not in h for h in hosts):
        raise ConfigError("{}.hosts must be a list of host names (host, user@host or user@host:port)".format(where))
    port = spec.get("port")
    return Environment(
        name=name,
        hosts=tuple(dict.fromkeys(hosts)),
        user=_name(spec["user"], where + ".user") if spec.get("user") is not None else None,
        port=_count(port, where + ".port", maximum=65535) if port is not None else None,
        key_filename=_optional_path(spec.get("key_filename") or None, where + ".key_filename"),
        connect_timeout=_seconds(spec.get("connect_timeout"), where + ".connect_timeout"),
        parallel=_count(spec.get("parallel", 4), where + ".parallel"),
        fail_fast=_boolean(spec.get("fail_fast", False), where + ".fail_fast"),
    )


def _boolean(value, where):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
        return value.lower() in ("1", "true", "yes", "on")
    raise ConfigError("{} must be true or false, got {!r}".format(where, value))


def environment_name(name, where="environment"):
    """Validate an environment name (from the command line or a setting)."""
    return _environments([name], where)[0]
