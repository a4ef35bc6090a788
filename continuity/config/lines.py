"""Development lines: ``continuity.lines`` and the one selected with ``--line``.

A line is a second pipeline in the same repository (a maintenance branch
``1.x`` next to the main one). Its keys override the top-level ones, and
its locks and ledger live under a prefix of their own. What makes lines
dangerous is what they share: this module turns a line's overrides into its
raw settings, and refuses any configuration where two lines would push the
same branch or deploy the same environment, selected or not.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from ..errors import ConfigError
from .fields import environment_name, kind, reject_unknown
from .model import DEFAULTS

__all__ = ["select_line", "merge"]

Raw = dict[str, Any]

#: The keys that name branches and environments (see `_line_raw`).
_NAMED = ("branches", "auto_deploy", "production_environment", "environments")


def merge(base: Raw, extra: Raw) -> Raw:
    """``extra`` over ``base``, mappings key by key; a null in ``extra`` leaves the value under it."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = merge(base[key], {k: v for k, v in value.items() if v is not None})
        else:
            base[key] = value
    return base


def select_line(raw: Raw, line: str | None) -> tuple[Raw, str]:
    """(the raw settings of the selected line, its name): ``line``, else the ``line`` setting, else "main"."""
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
            raise ConfigError("{} must be a mapping of settings, got {}".format(where, kind(overrides)))
        reject_unknown(overrides, [k for k in DEFAULTS if k not in ("line", "lines")], where)
    chosen = line or raw.get("line")
    if chosen is not None and not isinstance(chosen, str):
        raise ConfigError("continuity.line must be the name of a line under continuity.lines, got {}".format(
            kind(chosen)))
    base = {k: v for k, v in raw.items() if k not in ("line", "lines")}
    _keep_lines_apart(base, lines)
    if not chosen or (chosen == "main" and "main" not in lines):
        return base, "main"
    if chosen not in lines:
        known = ", ".join(sorted(lines)) or "none are configured"
        raise ConfigError("unknown line {!r}; lines under continuity.lines: {}".format(chosen, known))
    environment_name(chosen, "continuity.lines")
    return _line_raw(base, lines[chosen], chosen), chosen


def _line_raw(base: Raw, overrides: Raw, name: str) -> Raw:
    """The raw settings of line ``name``: its own keys over the top-level ones.

    Names are where two lines would step on each other (one branch pushed
    by two pipelines, one environment deployed under two locks and two
    ledgers), so a line does not inherit them as they are: a branch or
    environment name it does not set is the main line's with ``-NAME``
    appended (``master-1.x``, ``staging-1.x``), and the top-level
    ``environments`` entries (where the main line's environments run) are
    not the line's.
    """
    merged = merge(copy.deepcopy(base), copy.deepcopy(overrides))
    merged["environments"] = copy.deepcopy(overrides.get("environments"))
    main = merge(copy.deepcopy({k: DEFAULTS[k] for k in _NAMED}), {k: v for k, v in base.items() if v is not None})
    suffix = "-" + name
    given_branches = overrides.get("branches")
    given: Raw = given_branches if isinstance(given_branches, dict) else {}
    if isinstance(merged.get("branches") or {}, dict) and isinstance(main["branches"], dict):
        merged["branches"] = dict(merged.get("branches") or {})
        for role in DEFAULTS["branches"]:
            if given.get(role) is None and isinstance(main["branches"].get(role), str):
                merged["branches"][role] = main["branches"][role] + suffix
    main_auto_deploy = _names_in(main["auto_deploy"])
    if overrides.get("auto_deploy") is None and main_auto_deploy is not None:
        merged["auto_deploy"] = [env + suffix for env in main_auto_deploy]
    if overrides.get("production_environment") is None and isinstance(main["production_environment"], str):
        merged["production_environment"] = main["production_environment"] + suffix
    return merged


def _names_in(value: object) -> list[str] | None:
    """The names of an ``auto_deploy`` value (a list, or a string from the environment); None if neither."""
    if isinstance(value, str):
        return [part for part in re.split(r"[,\s]+", value) if part]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    return None


def _keep_lines_apart(base: Raw, lines: dict[str, Raw]) -> None:
    """No branch plays two roles, and no two lines share a branch or an environment.

    Checked for every line, selected or not: a line whose pipeline pushed
    the main line's master, or deployed to its staging under a lock and a
    ledger of its own, would undo the other line's work. Values of the wrong
    type are left to the parser, which names them when their line is selected.
    """
    branch_keys: dict[str, str] = {}
    environment_keys: dict[str, tuple[str, str]] = {}
    for line, raw in [("main", base)] + [(name, _line_raw(base, lines[name], name)) for name in lines]:
        where = "continuity." if line == "main" else "continuity.lines.{}.".format(line)
        _claim_branches(raw, where, branch_keys)
        _claim_environments(raw, where, line, environment_keys)


def _claim_branches(raw: Raw, where: str, claimed: dict[str, str]) -> None:
    given = raw.get("branches") or {}
    if not isinstance(given, dict):
        return
    branches = dict(DEFAULTS["branches"], **{k: v for k, v in given.items() if v is not None})
    ours: dict[str, str] = {}
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


def _claim_environments(raw: Raw, where: str, line: str, claimed: dict[str, tuple[str, str]]) -> None:
    names: dict[str, str] = {}
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


def _line_label(line: str) -> str:
    return "the main line" if line == "main" else "line {!r}".format(line)
