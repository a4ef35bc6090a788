"""The ``continuity.docker`` settings, read once into a `DockerSettings`.

Every key defaults to ``None`` in the collection config: Invoke maps a
``FABRIC_CONTINUITY_DOCKER_*`` variable only onto a key that exists, and
continuity keeps such values as strings, so lists, numbers and booleans are
parsed here from either YAML values or strings.
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any, Optional, cast

from .._dataclass import dataclass
from ..config import _boolean, _reject_unknown, _seconds, register_section
from ..errors import ConfigError
from ..results import Unit, definition, register_checks

__all__ = ["COLLECTION_DEFAULTS", "DockerSettings", "DockerCheck", "parse_settings", "docker_of", "image_key",
           "check_units"]

_KEYS = (
    "enabled", "image", "context", "dockerfile", "build_args", "network", "checks", "timeout",
    "push", "registry", "username_env", "password_env", "production_tag",
)

COLLECTION_DEFAULTS = {key: None for key in _KEYS}

_WHERE = "continuity.docker"

# The reference grammar of distribution/reference: [HOST[:PORT]/]PATH, lowercase path.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = r"(?:{l}(?:\.{l})*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?".format(l=_LABEL)
# A string, compiled on first use (and cached by `re`): compiled here it cost
# every ``import continuity`` a millisecond.
_REPOSITORY = r"^(?:{h}/)?{c}(?:/{c})*$".format(h=_HOST, c=_COMPONENT)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NETWORK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")


@dataclass(frozen=True)
class DockerCheck:
    """A check run in a container of the candidate image."""

    name: str
    command: str | tuple[str, ...]  # str: run with ``sh -c``; tuple: the exact argv
    environment: tuple[tuple[str, str], ...] = ()  # ((NAME, value), ...)
    timeout: float | None = None  # seconds, or None
    reuse: bool = True  # false: run again even on a tree it passed on (it depends on the outside world)

    @property
    def display(self) -> str:
        """The command as the user wrote it, for logs and reports."""
        return self.command if isinstance(self.command, str) else " ".join(self.command)


@dataclass(frozen=True)
class DockerSettings:
    image: str  # repository, without tag: 127.0.0.1:5000/app
    context: str = "."  # relative to the checkout root
    dockerfile: str = "Dockerfile"  # relative to the context
    build_args: tuple[tuple[str, str], ...] = ()  # ((NAME, value), ...), sorted
    network: str | None = None  # network mode of RUN steps and check containers
    checks: tuple[DockerCheck, ...] = ()
    timeout: float | None = None  # default time limit of each check, seconds
    push: bool = True  # push the tested image when master advances
    registry: str = ""  # the registry the credentials are for
    username_env: str | None = None  # names of environment variables, never values
    password_env: str | None = None
    production_tag: str = "production"

    @property
    def registry_host(self) -> str:
        """Where the image lives: the host part of ``image``, or Docker Hub."""
        return self.registry or registry_of(self.image)


def docker_of(settings: Any) -> DockerSettings | None:
    """``settings.docker`` (a `config.Settings`), typed: None when Docker is off."""
    return cast(Optional[DockerSettings], settings.docker)


def registry_of(repository: str) -> str:
    """The registry host of a repository name (``docker.io`` when it has none)."""
    first, sep, _ = repository.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def parse_settings(raw: dict[str, Any]) -> DockerSettings | None:
    """`DockerSettings`, or None when Docker is not configured or is disabled."""
    raw = {key: value for key, value in raw.items() if value is not None}
    _reject_unknown(raw, COLLECTION_DEFAULTS, _WHERE)
    if not raw or not _boolean(raw.get("enabled", True), _WHERE + ".enabled"):
        return None
    timeout = _seconds(raw.get("timeout"), _WHERE + ".timeout")
    username_env, password_env = _credentials(raw)
    return DockerSettings(
        image=_image(raw.get("image")),
        context=_relative(raw.get("context", "."), _WHERE + ".context"),
        dockerfile=_relative(raw.get("dockerfile", "Dockerfile"), _WHERE + ".dockerfile", parent_ok=True),
        build_args=_build_args(raw.get("build_args", {})),
        network=_optional(raw.get("network"), _NETWORK, _WHERE + ".network", "a network mode such as none or host"),
        checks=_checks(raw.get("checks", []), timeout),
        timeout=timeout,
        push=_boolean(raw.get("push", True), _WHERE + ".push"),
        registry=_optional(raw.get("registry"), re.compile("^" + _HOST + "$"), _WHERE + ".registry",
                           "a registry host such as registry.example.com:5000") or "",
        username_env=username_env,
        password_env=password_env,
        production_tag=_tag(raw.get("production_tag", "production"), _WHERE + ".production_tag"),
    )


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("{} must be a non-empty string, got {!r}".format(where, value))
    return value.strip()


def _image(value: Any) -> str:
    where = _WHERE + ".image"
    if value is None:
        raise ConfigError("{}: set the repository to build and push, e.g. registry.example.com:5000/app".format(where))
    value = _text(value, where)
    if "@" in value or ":" in value.rsplit("/", 1)[-1]:
        raise ConfigError(
            "{} must be a repository without a tag or digest (continuity adds the tags), got {!r}".format(where, value)
        )
    if not re.match(_REPOSITORY, value):
        raise ConfigError("{}: {!r} is not a valid repository name (lowercase letters, digits, '.', '_', '-', '/', "
                          "optionally after a registry host such as registry.example.com:5000/)".format(where, value))
    return value


def _relative(value: Any, where: str, parent_ok: bool = False) -> str:
    """A path relative to the checkout (or context) that stays inside the checkout."""
    value = _text(value, where)
    clean = posixpath.normpath(value)
    escapes = clean == ".." or clean.startswith("../")
    if value.startswith("/") or (escapes and not parent_ok):
        raise ConfigError("{} must be a relative path inside the checkout, got {!r}".format(where, value))
    return clean


def _optional(value: Any, pattern: re.Pattern[str], where: str, what: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not pattern.match(value):
        raise ConfigError("{} must be {}, got {!r}".format(where, what, value))
    return value


def _tag(value: Any, where: str) -> str:
    value = _text(value, where)
    if not _TAG.match(value):
        raise ConfigError(
            "{}: {!r} is not a valid image tag (letters, digits, '_', '.', '-'; at most 128)".format(where, value)
        )
    return value


def _lines(value: str) -> list[str]:
    """An environment variable's string: one item per line, blank lines ignored."""
    return [line.strip() for line in value.splitlines() if line.strip()]


def _build_args(value: Any) -> tuple[tuple[str, str], ...]:
    where = _WHERE + ".build_args"
    if isinstance(value, str):  # FABRIC_CONTINUITY_DOCKER_BUILD_ARGS: NAME=value per line
        pairs = [line.partition("=") for line in _lines(value)]
        if any(not sep for _, sep, _ in pairs):
            raise ConfigError("{}: write one NAME=value per line, got {!r}".format(where, value))
        value = {name.strip(): text for name, _, text in pairs}
    if not isinstance(value, dict):
        raise ConfigError("{} must be a mapping of NAME: value".format(where))
    return tuple(sorted(_environment_pair(k, v, where) for k, v in value.items()))


def _environment_pair(name: Any, value: Any, where: str) -> tuple[str, str]:
    if not isinstance(name, str) or not _ENV_VAR.match(name):
        raise ConfigError("{}: {!r} is not a variable name (letters, digits and '_')".format(where, name))
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError("{}.{} must be a string or a number, got {!r}".format(where, name, value))
    return name, str(value)


def _checks(value: Any, default_timeout: float | None) -> tuple[DockerCheck, ...]:
    where = _WHERE + ".checks"
    if isinstance(value, str):  # FABRIC_CONTINUITY_DOCKER_CHECKS: one shell command per line
        value = _lines(value)
    if not isinstance(value, list):
        raise ConfigError("{} must be a list of commands or of mappings with name and command".format(where))
    checks = [_check(item, "{}[{}]".format(where, index), default_timeout) for index, item in enumerate(value, 1)]
    names = [check.name for check in checks]
    duplicate = next((name for name in names if names.count(name) > 1), None)
    if duplicate:
        raise ConfigError("{}: two checks are named {!r}; give each a unique name".format(where, duplicate))
    return tuple(checks)


def _check(item: Any, where: str, default_timeout: float | None) -> DockerCheck:
    if isinstance(item, (str, list)):
        item = {"command": item}
    if not isinstance(item, dict):
        raise ConfigError("{} must be a command or a mapping with name, command, environment, timeout".format(where))
    _reject_unknown(item, {"name": 0, "command": 0, "environment": 0, "timeout": 0, "reuse": 0}, where)
    command = _command(item.get("command"), where + ".command")
    name = _text(item.get("name") or (command if isinstance(command, str) else " ".join(command)), where + ".name")
    environment = item.get("environment") or {}
    if not isinstance(environment, dict):
        raise ConfigError("{}.environment must be a mapping of NAME: value".format(where))
    timeout = _seconds(item.get("timeout"), where + ".timeout")
    return DockerCheck(
        name=name,
        command=command,
        environment=tuple(sorted(_environment_pair(k, v, where + ".environment") for k, v in environment.items())),
        timeout=timeout if timeout is not None else default_timeout,
        reuse=_boolean(item.get("reuse", True), where + ".reuse"),
    )


def _command(value: Any, where: str) -> str | tuple[str, ...]:
    if isinstance(value, list):
        if not value or not all(isinstance(part, str) and part for part in value):
            raise ConfigError("{} as a list must hold the program and its arguments, all non-empty strings".format(
                where))
        return tuple(value)
    return _text(value, where)


def _credentials(raw: dict[str, Any]) -> tuple[str | None, str | None]:
    names = {}
    for key in ("username_env", "password_env"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not _ENV_VAR.match(value)):
            raise ConfigError(
                "{}.{} must be the NAME of an environment variable holding the secret (never the secret itself), "
                "got a value that is not a variable name".format(_WHERE, key)
            )
        names[key] = value or None
    if bool(names["username_env"]) != bool(names["password_env"]):
        missing = "password_env" if names["username_env"] else "username_env"
        raise ConfigError("{}.{}: set both username_env and password_env, or neither".format(_WHERE, missing))
    return names["username_env"], names["password_env"]


# -- what a result is recorded for --------------------------------------------------


def image_key(docker_settings: DockerSettings) -> str:
    """The settings that make the image, apart from the tree: part of a Docker check's definition.

    The tree is the result's own key, and the content key is a function of
    the tree and of these, so a result counts only for the same image.
    """
    return json.dumps({"image": docker_settings.image, "context": docker_settings.context,
                       "dockerfile": docker_settings.dockerfile, "build_args": [list(arg) for arg in
                                                                               docker_settings.build_args],
                       "network": docker_settings.network}, sort_keys=True)


def check_units(settings: Any) -> list[Unit]:
    """The Docker checks as `results.Unit` s (none when Docker is off): recorded, reused and required as the
    configured checks are, keyed by their command, environment and `image_key`."""
    docker_settings = docker_of(settings)
    if docker_settings is None:
        return []
    image = image_key(docker_settings)
    return [Unit("check", check.name, check.display, _definition(check, image), reuse=check.reuse,
                 timeout=check.timeout, docker=True) for check in docker_settings.checks]


def _definition(check: DockerCheck, image: str) -> str:
    # JSON keeps a shell string and an argv apart; the image key keeps them apart from a shell check's.
    command = json.dumps({"command": check.command, "environment": [list(pair) for pair in check.environment]},
                         sort_keys=True)
    return definition("check", command, image=image)


register_section("docker", COLLECTION_DEFAULTS, parse_settings)
register_checks(check_units)
