"""Sections: settings whose parsing lives in the package that uses them.

``continuity.notify`` and ``continuity.docker`` have keys of their own and
objects of their own (`NotifySettings`, `DockerSettings`). Those packages sit
above this one: they use its validators, and this package must not import
them back. So each registers its section when it is imported, with what
Invoke may map its ``FABRIC_CONTINUITY_<SECTION>_*`` variables onto and the
function that turns the raw mapping into its object. ``import continuity``
imports both before any task (or test) can ask for settings.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ..errors import ConfigError
from .fields import kind
from .model import COLLECTION_DEFAULTS, SECTIONS

__all__ = ["Section", "register_section", "parse_section"]


class Section(NamedTuple):  # made at import, by each section's package: a dataclass would cost more (`stage.Stage`)
    name: str
    collection_defaults: Mapping[str, Any]  # every key, None or a mapping of Nones: env vars land as strings
    parse: Callable[[dict[str, Any]], Any]  # the raw mapping -> the section's object, or None when off


_registered: dict[str, Section] = {}


def register_section(name: str, collection_defaults: Mapping[str, Any], parse: Callable[[dict[str, Any]], Any]) -> None:
    """Make ``continuity.NAME`` parse with ``parse``; registering again replaces (a module reload)."""
    if name not in SECTIONS:
        raise ValueError("{!r} is not a section of Settings (sections: {})".format(name, ", ".join(SECTIONS)))
    _registered[name] = Section(name, collection_defaults, parse)
    COLLECTION_DEFAULTS["continuity"][name] = copy.deepcopy(dict(collection_defaults))


def parse_section(name: str, raw: object) -> Any:
    """The object of section ``name`` from its raw value (None: not set)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("continuity.{} must be a mapping of settings, got {}".format(name, kind(raw)))
    if name not in _registered:  # a packaging bug, not a user's mistake: say so loudly
        raise RuntimeError("continuity.{0} was never registered: import continuity.{0} first".format(name))
    return _registered[name].parse(raw)
