"""Docker builds, checks and deploys: settings section ``continuity.docker``."""

from .errors import ConfigError

COLLECTION_DEFAULTS = {}


def parse_settings(raw):
    if raw:
        raise ConfigError("continuity.docker: Docker support is not available in this version")
    return None
