"""``continuity.notify``: when to send, how long to wait, and the channels.

`CHANNELS` is the registry: each channel owns one key under
``continuity.notify`` and parses it; this module adds the keys every channel
shares (``events``, ``timeout``) and says notifications are off (None) when
no channel is configured, so a run that sends nothing pays nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._dataclass import dataclass
from ..config.fields import reject_unknown, seconds, string_list, words
from ..errors import ConfigError
from . import email, webhook
from .channel import Channel, drop_none
from .email import EmailSettings
from .webhook import Webhook

__all__ = ["EVENTS", "CHANNELS", "COLLECTION_DEFAULTS", "NotifySettings", "parse_settings"]

EVENTS = ("failure", "success", "deploy")

#: The channels, in the order a run's messages go out. A new channel is a
#: module with a `Channel` and its name on this line.
CHANNELS: dict[str, Channel] = {channel.key: channel for channel in (email.CHANNEL, webhook.CHANNEL)}

_WHERE = "continuity.notify"
_SHARED = ("events", "timeout")

#: What Invoke may map ``FABRIC_CONTINUITY_NOTIFY_*`` variables onto. Only
#: ``None``: a list default would crash ``fab`` on such a variable, and a
#: boolean one would read "false" as true. We parse the strings ourselves.
COLLECTION_DEFAULTS: dict[str, Any] = dict(
    {key: None for key in _SHARED}, **{key: channel.collection_defaults for key, channel in CHANNELS.items()})


@dataclass(frozen=True)
class NotifySettings:
    events: tuple[str, ...]  # of EVENTS
    timeout: float  # seconds per outlet, in all: connect, send and answer
    channels: Mapping[str, Any]  # key of CHANNELS -> its settings, for the configured channels only

    # The two channels that came before the registry, as attributes.
    @property
    def email(self) -> EmailSettings | None:
        value: EmailSettings | None = self.channels.get("email")
        return value

    @property
    def webhooks(self) -> tuple[Webhook, ...]:
        value: tuple[Webhook, ...] = self.channels.get("webhooks", ())
        return value


def parse_settings(raw: Mapping[str, Any]) -> NotifySettings | None:
    """`NotifySettings` from the ``continuity.notify`` mapping; None when no channel is set."""
    reject_unknown(raw, _SHARED + tuple(CHANNELS), _WHERE)
    parsed = {key: channel.parse(raw.get(key), "{}.{}".format(_WHERE, key)) for key, channel in CHANNELS.items()}
    configured = {key: value for key, value in parsed.items() if value}
    shared = drop_none({key: raw.get(key) for key in _SHARED})
    events = _events(shared.get("events", ["failure"]))
    timeout = seconds(shared.get("timeout", 10), _WHERE + ".timeout", allow_none=False)
    if not configured or not events:
        return None
    return NotifySettings(events, timeout, configured)


def _events(value: object) -> tuple[str, ...]:
    where = _WHERE + ".events"
    events = string_list(value, where, words)
    for event in events:
        if event not in EVENTS:
            raise ConfigError("{}: {!r} is not an event; use {}".format(where, event, ", ".join(EVENTS)))
    return tuple(dict.fromkeys(events))
