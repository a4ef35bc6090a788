"""The one error hierarchy of continuity.

Every error a user can cause or meet is a `ContinuityError` with a message
that says what happened and what to change. `continuity.boundary.boundary` turns
them into `invoke.Exit`, so ``fab`` prints one line and exits non-zero; any
other exception is our bug and keeps its traceback.

A message goes to the console, the JUnit report, the notifications and the
ledger: the user-info of any URL in it (a remote's token, credentials in
``BUILD_URL``) is removed when the error is made, so no copy carries it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ._text import redact

__all__ = [
    "ContinuityError",
    "UsageError",
    "ConfigError",
    "GitError",
    "MergeConflict",
    "CommandFailed",
    "DeployError",
    "LockError",
    "RegistryError",
]


class ContinuityError(Exception):
    """Base class: a failure of the run, reported as one message."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(ContinuityError):
    """The user asked for something that cannot work (exit code 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """A setting under ``continuity:`` is unknown or has a wrong value."""


class GitError(ContinuityError):
    """A git command failed."""

    def __init__(self, message: str, args: Sequence[str] = (), stderr: str = "") -> None:
        super().__init__(message)
        self.git_args = tuple(args)
        self.stderr = stderr


class MergeConflict(ContinuityError):
    """Development does not merge cleanly into master."""

    def __init__(self, message: str, files: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.files = tuple(files)


class CommandFailed(ContinuityError):
    """A build step or a check exited non-zero or timed out."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class DeployError(ContinuityError):
    """The user's deploy task failed for an environment."""


class LockError(ContinuityError):
    """A lock on the remote could not be taken in time."""


class RegistryError(ContinuityError):
    """The Docker registry could not be reached or refused a pull or a push."""
