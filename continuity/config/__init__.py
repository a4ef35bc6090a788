"""Settings: read once from the Fabric config, validated, typed.

Fabric 3's config is Fabric 1's ``env``. Everything continuity reads lives
under the ``continuity:`` key. Sources, lowest precedence first:

1. the defaults (`DEFAULTS`);
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

The package, bottom up: `.fields` (the validators every section shares),
`.model` (the defaults and the dataclasses), `.sections` (where ``notify``
and ``docker`` plug in their own parsers), `.lines` (development lines),
`.parser` (`parse`), and `._compat`, the two Invoke shims that let the
parser, rather than a traceback, answer a wrong value. They are installed
when this package is imported, for the ``continuity`` key only.
"""

from __future__ import annotations

from typing import Any

from . import _compat, fields
from .fields import absolute_path, environment_name
from .model import COLLECTION_DEFAULTS, DEFAULTS, Branches, BuildStep, Command, Environment, Hotfix, Settings
from .parser import parse
from .sections import register_section

# The names sections and modules imported before the package split; kept
# until every caller uses `continuity.config.fields`.
_boolean = fields.boolean
_count = fields.count
_environments = fields.environment_names
_kind = fields.kind
_name = fields.name
_optional_path = fields.optional_path
_plain = fields.plain
_reject_unknown = fields.reject_unknown
_seconds = fields.seconds
_string_list = fields.string_list

__all__ = ["DEFAULTS", "COLLECTION_DEFAULTS", "Settings", "Environment", "Command", "BuildStep", "Branches",
           "Hotfix", "settings", "parse", "register_section", "absolute_path", "environment_name"]

_compat.install()


def settings(c: Any, line: str | None = None) -> Settings:
    """Return the validated `Settings` for context ``c`` (and ``--line``)."""
    raw = c.config.get("continuity") if hasattr(c, "config") else None
    return parse({} if raw is None else _plain(raw), line=line)


def _collection_defaults() -> dict[str, dict[str, Any]]:
    """`COLLECTION_DEFAULTS`, with the sections registered so far (for ``ns.configure``)."""
    return COLLECTION_DEFAULTS
