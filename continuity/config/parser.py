"""``continuity:`` as a user wrote it -> one checked `Settings`.

The parser reads a plain mapping (Invoke's proxies already unwrapped), so a
test can hand it a dict and a task hands it whatever the config layers
merged. It accepts what YAML gives and what an environment variable gives
(``checks`` as a list or as lines of a string), fills in `DEFAULTS`, and
stops at the first wrong value with a sentence naming its key: a run that
would go wrong halfway because of a typo never starts.
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import ConfigError
from .fields import (
    ENV_NAME,
    MAX_SECONDS,
    boolean,
    count,
    environment_name,
    environment_names,
    kind,
    name,
    optional_path,
    reject_unknown,
    seconds,
    string_list,
    words,
)
from .lines import merge, select_line
from .model import DEFAULTS, SECTIONS, Branches, BuildStep, Command, Environment, Hotfix, Settings
from .sections import parse_section

__all__ = ["parse"]

_CHECK_KEYS = ("name", "command", "timeout", "reuse", "shards", "retries")
_MAX_SHARDS = 256
_MAX_RETRIES = 10
_ENVIRONMENT_KEYS = ("hosts", "user", "port", "key_filename", "connect_timeout", "parallel", "fail_fast")


def parse(raw: object, line: str | None = None) -> Settings:
    """Validate a plain ``continuity:`` mapping and return `Settings`.

    ``line`` (or the ``line`` setting) selects one of ``lines``: its keys
    override the top-level ones, and its locks and ledger are kept apart.
    """
    if not isinstance(raw, dict):
        raise ConfigError("continuity: the 'continuity' setting must be a mapping of keys, got {}".format(kind(raw)))
    reject_unknown(raw, DEFAULTS, "continuity")
    raw, line = select_line(raw, line)
    merged = merge(copy.deepcopy(DEFAULTS), {k: v for k, v in raw.items() if v is not None})
    if isinstance(raw.get("branches"), dict):
        reject_unknown(raw["branches"], DEFAULTS["branches"], "continuity.branches")
    branches = merged["branches"]
    if not isinstance(branches, dict):
        raise ConfigError("continuity.branches must be a mapping with development, master and production")
    timeout = seconds(merged["check_timeout"], "continuity.check_timeout")
    beat = _heartbeat(merged["heartbeat"])
    return Settings(
        remote=_remote(merged["remote"]),
        branches=Branches(**{k: _branch(branches[k], "continuity.branches." + k) for k in DEFAULTS["branches"]}),
        checks=_checks(merged["checks"], timeout, beat),
        build=_build(merged["build"], beat),
        auto_deploy=environment_names(merged["auto_deploy"]),
        deploy_task=name(merged["deploy_task"], "continuity.deploy_task"),
        max_attempts=count(merged["max_attempts"], "continuity.max_attempts"),
        lock_timeout=seconds(merged["lock_timeout"], "continuity.lock_timeout", allow_none=False),
        git_timeout=seconds(merged["git_timeout"], "continuity.git_timeout", allow_none=False),
        environments=_environment_table(merged["environments"]),
        junit=optional_path(merged["junit"], "continuity.junit"),
        line=line,
        lock_stale_after=seconds(merged["lock_stale_after"], "continuity.lock_stale_after", allow_none=False),
        lock_lease=_lease(merged["lock_lease"]),
        production_environment=environment_name(merged["production_environment"], "continuity.production_environment"),
        hotfix=_hotfix(raw.get("hotfix"), merged["hotfix"]),
        sync_development=boolean(merged["sync_development"], "continuity.sync_development"),
        heartbeat=beat,
        reuse_results=boolean(merged["reuse_results"], "continuity.reuse_results"),
        jobs=count(merged["jobs"], "continuity.jobs", maximum=64),
        culprit_finding=boolean(merged["culprit_finding"], "continuity.culprit_finding"),
        culprit_max_runs=None if merged["culprit_max_runs"] is None else count(
            merged["culprit_max_runs"], "continuity.culprit_max_runs", maximum=100),
        **{section: parse_section(section, merged[section]) for section in SECTIONS},
    )


def _remote(value: object) -> str:
    remote = name(value, "continuity.remote")
    if remote.startswith("-") or any(ch.isspace() for ch in remote):
        raise ConfigError("continuity.remote: {!r} is not a remote name (see `git remote`)".format(remote))
    return remote


def _branch(value: object, where: str) -> str:
    branch = name(value, where)
    if branch.startswith("refs/"):
        raise ConfigError("{}: write the short branch name ({!r}), not a full ref".format(
            where, branch.split("/", 2)[-1]))
    return branch


def _lease(value: object) -> float:
    """A lock's lease: renewed every third of it, so not below a second (a push every few ms)."""
    lease = seconds(value, "continuity.lock_lease", allow_none=False)
    if lease < 1:
        raise ConfigError("continuity.lock_lease must be at least 1 second, got {!r}".format(value))
    return lease


def _heartbeat(value: object) -> float:
    """Seconds between "still running" lines: 0 turns them off; else at least a second (no flood)."""
    try:
        beat = float(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else -1.0
    except ValueError:
        beat = -1.0
    if beat == 0:
        return 0.0
    if not 1 <= beat <= MAX_SECONDS:  # NaN too
        raise ConfigError("continuity.heartbeat must be a number of seconds from 1 to a week, or 0 for no heartbeat "
                          "lines, got {!r}".format(value))
    return beat


def _hotfix(raw: object, merged: dict[str, Any]) -> Hotfix:
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError("continuity.hotfix must be a mapping (prefix, tag, deploy)")
    reject_unknown(raw or {}, DEFAULTS["hotfix"], "continuity.hotfix")
    prefix = merged.get("prefix") or ""
    if not isinstance(prefix, str):
        raise ConfigError("continuity.hotfix.prefix must be a string such as 'hotfix/'")
    tag = merged.get("tag") or ""
    if not isinstance(tag, str):
        raise ConfigError("continuity.hotfix.tag must be a string such as 'hotfix-{name}', or empty")
    if "{" in tag.replace("{name}", "") or "}" in tag.replace("{name}", ""):
        raise ConfigError("continuity.hotfix.tag: {!r} may only use the placeholder {{name}}".format(tag))
    return Hotfix(prefix, tag, boolean(merged.get("deploy", False), "continuity.hotfix.deploy"))


def _checks(value: object, default_timeout: float | None, heartbeat: float) -> tuple[Command, ...]:
    items = string_list(value, "continuity.checks", str.splitlines)
    checks = []
    for index, item in enumerate(items, 1):
        where = "continuity.checks[{}]".format(index)
        if isinstance(item, str):
            item = {"command": item}
        if not isinstance(item, dict):
            raise ConfigError("{} must be a shell command or a mapping with 'command', got {}".format(
                where, kind(item)))
        reject_unknown(item, _CHECK_KEYS, where)
        command = name(item.get("command"), where + ".command")
        timeout = seconds(item.get("timeout"), where + ".timeout")
        label = name(item.get("name") or command, where + ".name")
        reuse = boolean(item.get("reuse", True), where + ".reuse")
        shards = count(item.get("shards", 1), where + ".shards", maximum=_MAX_SHARDS)
        retries = _retries(item.get("retries", 0), where + ".retries")
        checks.append(Command(label, command, timeout if timeout is not None else default_timeout, heartbeat,
                              reuse=reuse, shards=shards, retries=retries))
    return tuple(checks)


def _retries(value: object, where: str) -> int:
    """How many times a failed check runs again: 0 (the default: a failure blocks) to `_MAX_RETRIES`."""
    if not isinstance(value, bool) and value in (0, "0"):
        return 0
    try:
        return count(value, where, maximum=_MAX_RETRIES)
    except ConfigError:
        raise ConfigError("{} must be a whole number from 0 to {} (how many times a failed check runs again), "
                          "got {!r}".format(where, _MAX_RETRIES, value)) from None


def _build(value: object, heartbeat: float) -> tuple[BuildStep, ...]:
    if isinstance(value, str):
        raise ConfigError("continuity.build must be a list of steps with name, command and paths; set it in "
                          "fabric.yaml")
    if not isinstance(value, list):
        raise ConfigError("continuity.build must be a list of steps, got {}".format(kind(value)))
    steps: list[BuildStep] = []
    seen: set[str] = set()
    for index, item in enumerate(value, 1):
        where = "continuity.build[{}]".format(index)
        if not isinstance(item, dict):
            raise ConfigError("{} must be a mapping with name, command and paths, got {}".format(where, kind(item)))
        reject_unknown(item, ("name", "command", "paths", "timeout"), where)
        label = name(item.get("name"), where + ".name")
        if not ENV_NAME.match(label) or label in seen:
            raise ConfigError("{}.name {!r} must be unique and use only letters, digits, '.', '_' and '-'".format(
                where, label))
        seen.add(label)
        paths = item.get("paths", ["*"])
        paths = [paths] if isinstance(paths, str) else paths
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
            raise ConfigError("{}.paths must be a non-empty list of path patterns".format(where))
        command = name(item.get("command"), where + ".command")
        steps.append(BuildStep(label, command, tuple(paths), seconds(item.get("timeout"), where + ".timeout"),
                               heartbeat))
    return tuple(steps)


def _environment_table(value: object) -> dict[str, Environment]:
    if not isinstance(value, dict):
        raise ConfigError("continuity.environments must be a mapping of environment names to settings")
    return {
        environment_name(key, "continuity.environments"): _environment(key, spec) for key, spec in value.items()
    }


def _environment(env: str, spec: object) -> Environment:
    where = "continuity.environments.{}".format(env)
    spec = {} if spec is None else spec
    if not isinstance(spec, dict):
        raise ConfigError("{} must be a mapping (hosts, user, port, ...), got {}".format(where, kind(spec)))
    reject_unknown(spec, _ENVIRONMENT_KEYS, where)
    hosts = string_list(spec.get("hosts", []), where + ".hosts", words)
    if not all(isinstance(h, str) and h and not h.startswith("-") and " " not in h for h in hosts):
        raise ConfigError("{}.hosts must be a list of host names (host, user@host or user@host:port)".format(where))
    port = spec.get("port")
    return Environment(
        name=env,
        hosts=tuple(dict.fromkeys(hosts)),
        user=name(spec["user"], where + ".user") if spec.get("user") is not None else None,
        port=count(port, where + ".port", maximum=65535) if port is not None else None,
        key_filename=optional_path(spec.get("key_filename") or None, where + ".key_filename"),
        connect_timeout=seconds(spec.get("connect_timeout"), where + ".connect_timeout"),
        parallel=count(spec.get("parallel", 4), where + ".parallel"),
        fail_fast=boolean(spec.get("fail_fast", False), where + ".fail_fast"),
    )
