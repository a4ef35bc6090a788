"""What a channel is, for `send` and for the settings parser.

A channel is a module with a `Channel`: the key it owns under
``continuity.notify``, what Invoke may map its environment variables onto,
how its raw settings become an object, and, when a run ends, the `Outlet` s
it sends through (one mail server; one per webhook URL). `send` knows
nothing else about it: it gives each outlet the deadline, turns what it
raises into a warning line, and scrubs the outlet's secrets from that line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from .._dataclass import dataclass
from .message import Run

__all__ = ["Channel", "Outlet", "NotSent", "drop_none"]


class NotSent(Exception):
    """An outlet cannot be used (a variable is not set, the server said no...): the reason is the message."""


@dataclass(frozen=True)
class Outlet:
    """One place a message goes, as it stands when the run ends."""

    label: str  # "email via HOST:PORT", "webhook https://HOST (json)": never a secret
    deliver: Callable[[Run, float], str]  # (record, seconds left) -> what was sent, in a sentence
    secrets: tuple[str, ...] = ()  # values that must not appear in a warning about it
    probe: Callable[[float], str] | None = None  # (seconds) -> what answered, sending nothing (`fab continuity.doctor`)


class Channel(NamedTuple):  # made at import, by each channel's module: a dataclass would cost more (`stage.Stage`)
    key: str  # its key under continuity.notify
    collection_defaults: Mapping[str, Any] | None  # None, or its keys with None (env vars arrive as strings)
    parse: Callable[[Any, str], Any]  # (raw value, "continuity.notify.KEY") -> its settings; falsy when unset
    outlets: Callable[[Any], list[Outlet]]  # its settings -> where to send, read when the run ends


def drop_none(value: Any) -> Any:
    """Unset keys removed: ``None``, and mappings left empty (the collection defaults)."""
    if not isinstance(value, dict):
        return value
    kept = {key: drop_none(item) for key, item in value.items()}
    return {key: item for key, item in kept.items() if item is not None and item != {}}
