"""Notifications (email, webhooks): settings section ``continuity.notify``."""

from .errors import ConfigError

COLLECTION_DEFAULTS = {}


def parse_settings(raw):
    if raw:
        raise ConfigError("continuity.notify: notifications are not available in this version")
    return None
