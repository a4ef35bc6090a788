"""The checks every setting goes through, shared by every section.

A value reaches continuity from YAML (a number, a list, a mapping) or from a
``FABRIC_CONTINUITY_*`` variable (always a string: see `._compat`), so each
validator accepts both spellings of the same value and answers with one
`ConfigError` sentence that names the key (``where``) and says what would be
right. Sections above this package (``notify``, ``docker``) use the same
functions, so a setting reads and fails the same way wherever it lives.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal, overload

from ..errors import ConfigError

__all__ = [
    "MAX_SECONDS", "MAX_COUNT", "ENV_NAME",
    "kind", "reject_unknown", "name", "boolean", "seconds", "count", "words", "string_list",
    "environment_names", "environment_name", "env_var_name", "optional_path", "absolute_path", "plain",
]

#: Time limits beyond a week are typing mistakes, not plans.
MAX_SECONDS = 7 * 24 * 3600
MAX_COUNT = 10000
#: Environment, line and build step names end up in ref names and file names.
ENV_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9_-])?$")
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WORDS = re.compile(r"[,\s]+")


def kind(value: object) -> str:
    """What a wrong value is, in an error message ("nothing" for a YAML null)."""
    return "nothing" if value is None else type(value).__name__


def reject_unknown(raw: Mapping[Any, object], known: Collection[str], where: str) -> None:
    """A misspelt key is an error with the closest known one, never silently ignored."""
    for key in raw:
        if key in known:
            continue
        guess = difflib.get_close_matches(str(key), list(known), n=1)
        hint = "did you mean '{}'?".format(guess[0]) if guess else "known keys: " + ", ".join(sorted(known))
        raise ConfigError("{}.{}: unknown setting; {}".format(where, key, hint))


def name(value: object, where: str) -> str:
    """A non-empty string: a command, a user, a branch..."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("{} must be a non-empty string, got {!r}".format(where, value))
    return value


def boolean(value: object, where: str) -> bool:
    """A YAML boolean, or the words a person writes in an environment variable."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
        return value.lower() in ("1", "true", "yes", "on")
    raise ConfigError("{} must be true or false, got {!r}".format(where, value))


@overload
def seconds(value: object, where: str, allow_none: Literal[False]) -> float: ...


@overload
def seconds(value: object, where: str, allow_none: bool = ...) -> float | None: ...


def seconds(value: object, where: str, allow_none: bool = True) -> float | None:
    """A positive number of seconds up to a week; empty means no limit where that is allowed."""
    if value is None or value == "":
        if allow_none:
            return None
        raise ConfigError("{} must be a number of seconds".format(where))
    if not isinstance(value, (int, float, str)):
        raise ConfigError("{} must be a number of seconds, got {!r}".format(where, value))
    try:
        number = float(value)
    except ValueError:
        raise ConfigError("{} must be a number of seconds, got {!r}".format(where, value)) from None
    if not number > 0 or number > MAX_SECONDS or isinstance(value, bool):
        raise ConfigError("{} must be a positive number of seconds up to a week, got {!r}".format(where, value))
    return number


def count(value: object, where: str, maximum: int | None = None) -> int:
    """A whole number from 1 to ``maximum``: ``5`` or ``"5"``, never ``5.5``, ``"5.0"`` or ``true``."""
    if not isinstance(value, (int, float, str)):
        raise ConfigError("{} must be a whole number, got {!r}".format(where, value))
    try:
        number = int(value)
    except (ValueError, OverflowError):
        raise ConfigError("{} must be a whole number, got {!r}".format(where, value)) from None
    maximum = maximum or MAX_COUNT
    if number < 1 or number > maximum or isinstance(value, bool) or (isinstance(value, float) and value != number):
        raise ConfigError("{} must be a whole number from 1 to {}, got {!r}".format(where, maximum, value))
    return number


def words(text: str) -> list[str]:
    """``"a, b  c"`` -> ``["a", "b", "c"]``: how a list is written in an environment variable."""
    return [part for part in _WORDS.split(text) if part]


def string_list(value: object, where: str, split: Callable[[str], list[str]]) -> list[Any]:
    """A list from YAML, or a string from an environment variable cut by ``split``.

    The items are not checked: each caller knows what its items may be.
    """
    if isinstance(value, str):
        value = [part for part in split(value) if part.strip()]
    if not isinstance(value, list):
        raise ConfigError("{} must be a list, got {}".format(where, kind(value)))
    return value


def environment_names(value: object, where: str = "continuity.auto_deploy") -> tuple[str, ...]:
    """Environment names, each once: they become parts of ref names on the remote."""
    names = string_list(value, where, words)
    for item in names:
        if not isinstance(item, str) or not ENV_NAME.match(item) or ".." in item or item.endswith(".lock"):
            raise ConfigError(
                "{}: {!r} is not an environment name (letters, digits, '.', '_' and '-')".format(where, item)
            )
    return tuple(dict.fromkeys(names))


def environment_name(value: object, where: str = "environment") -> str:
    """Validate an environment name (from the command line or a setting)."""
    return environment_names([value], where)[0]


def env_var_name(value: object, where: str) -> str | None:
    """The name of an environment variable that holds a secret; the secret itself never sits in a file."""
    if value is None:
        return None
    if not isinstance(value, str) or not _ENV_VAR.match(value):
        raise ConfigError("{} must be the name of an environment variable (like SMTP_PASSWORD), got {!r}".format(
            where, value))
    return value


def optional_path(value: object, where: str) -> str | None:
    """A path, made absolute now (see `absolute_path`); empty means none."""
    if value is None or value == "":
        return None
    return absolute_path(name(value, where))


def absolute_path(path: str | os.PathLike[str]) -> str:
    """``path`` against the directory fab started in, resolved now: a deploy task that calls
    ``os.chdir`` later cannot move where a report lands or which key is read."""
    return os.path.abspath(os.path.expanduser(os.fspath(path)))


def plain(value: object) -> object:
    """Invoke's DataProxy (and nested ones) as plain dicts and lists, which the parsers expect."""
    if hasattr(value, "items") and not isinstance(value, (str, bytes)):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
