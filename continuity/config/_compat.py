"""Two places where stock Invoke stops ``fab`` before continuity can speak.

Both end in a traceback before any task runs, for settings a person
reasonably writes:

* ``FABRIC_CONTINUITY_CHECKS="make test"`` when ``checks:`` is a list in
  fabric.yaml: Invoke casts an environment variable to the type of the value
  it replaces, cannot make a list of a string (UncastableEnvVar), and turns
  ``MAX_ATTEMPTS=five`` into a ValueError;
* ``hotfix:`` with nothing under it (a YAML null over a mapping default), or
  a list where a mapping was: Invoke refuses to merge them
  (AmbiguousMergeError).

Under the ``continuity`` key only, the shims keep an environment variable
as the string it is, let a null leave a mapping as it was, and let a value
of another type replace the old one; the parser then reads the string or
names the key whose type is wrong, in one line. Every other key of every
config in the process behaves as stock Invoke: a fabfile's own settings are
not ours to reinterpret.

Invoke offers no hook for either, so we wrap ``Environment._path_set`` and
``invoke.config.merge_dicts``. ``merge_dicts`` recurses through its module
global (our wrapper) at every depth, where the key path is unknown; a
per-thread depth count tells the top-level call (whose ``continuity`` key is
ours) from the nested ones, which go straight to Invoke. `install` is
idempotent, and ``tests/test_invoke_compat.py`` pins both shims to the Invoke
versions pyproject.toml allows.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import invoke.config as invoke_config
from invoke.env import Environment

__all__ = ["KEY", "install", "installed"]

#: The one top-level key the shims apply to.
KEY = "continuity"

_MARK = "_continuity_shim"
_calls = threading.local()  # .depth: how deep we are in one merge_dicts call


def install() -> None:
    """Install both shims, once: a second call (or a reload of this module) changes nothing."""
    if not getattr(Environment._path_set, _MARK, False):
        Environment._path_set = _env_strings(Environment._path_set)  # type: ignore[method-assign]
    if not getattr(invoke_config.merge_dicts, _MARK, False):
        invoke_config.merge_dicts = _null_mappings(invoke_config.merge_dicts)


def installed() -> bool:
    """Whether both shims are in place (the compatibility test asks)."""
    return bool(getattr(Environment._path_set, _MARK, False) and getattr(invoke_config.merge_dicts, _MARK, False))


def _env_strings(original: Any) -> Any:
    """``Environment._path_set`` that stores ``continuity.*`` variables uncast."""

    def _path_set(self: Environment, key_path: Sequence[str], value: str) -> None:
        if not key_path or key_path[0] != KEY:
            original(self, key_path, value)
            return
        target = self.data
        for key in key_path[:-1]:
            target = target.setdefault(key, {})
        target[key_path[-1]] = value

    setattr(_path_set, _MARK, True)
    return _path_set


def _null_mappings(original: Any) -> Any:
    """``merge_dicts`` that reconciles the top-level ``continuity`` key, and only it, before merging."""

    def merge_dicts(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
        if not getattr(_calls, "depth", 0) and updates and KEY in updates:
            ours = {KEY: _string_keys(updates[KEY])}
            if KEY in base:
                ours = _reconcile(base, ours)
            updates = {key: ours[key] if key == KEY else value for key, value in updates.items()
                       if key != KEY or KEY in ours}
        # Depth by hand, not a context manager: Invoke merges a few hundred times per `fab` start.
        _calls.depth = getattr(_calls, "depth", 0) + 1
        try:
            result: dict[str, Any] = original(base, updates)
        finally:
            _calls.depth -= 1
        return result

    setattr(merge_dicts, _MARK, True)
    return merge_dicts


def _reconcile(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """``updates`` that Invoke can merge onto ``base`` without AmbiguousMergeError.

    A null over a mapping is dropped (the mapping stays, as if unset); a
    value whose type differs from the old one (list over mapping, mapping
    over a string) replaces it: the old one is removed from ``base``, which
    is the merged config Invoke rebuilds on every merge, never a source.
    """
    kept: dict[str, Any] = {}
    for key, value in updates.items():
        old = base.get(key)
        if key in base and isinstance(old, dict):
            if value is None:
                continue
            if isinstance(value, dict):
                value = _reconcile(old, value)
            else:
                del base[key]
        elif key in base and isinstance(value, dict):
            del base[key]
        kept[key] = value
    return kept


def _string_keys(value: Any) -> Any:
    """Keys as strings (``lines: {5: ...}``): Invoke's env var crawl joins them with ``_``."""
    if isinstance(value, dict):
        return {str(k): _string_keys(v) for k, v in value.items()}
    return value
