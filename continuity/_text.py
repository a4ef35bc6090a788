"""Text that leaves continuity: redacted and safe to print.

Everything continuity prints, writes (commit messages, JUnit, the ledger,
lock tokens) or sends (mail, webhooks) may carry values from the outside:
remote URLs, ``BUILD_URL``, commit subjects and author names. Two rules hold
for all of them:

* the user-info part of a URL (``https://user:TOKEN@host``) never leaves:
  it becomes ``https://***@host``, as git itself shows it;
* control characters (``\\r``, ``\\f``, U+2028, escape sequences...) never
  reach a terminal, a mail header or a one-line field: they become a space.
"""

from __future__ import annotations

import re
import unicodedata
from typing import overload

__all__ = ["redact", "one_line", "safe"]

# scheme://userinfo@ — userinfo is everything up to the LAST '@' before the
# authority ends (at '/', '?', '#', whitespace or a quote). A password may hold
# ':', percent-escapes and even a raw '@' (invalid, but people write it).
# A string, compiled on first use (and cached by `re`): compiled here it cost
# every ``import continuity`` half a millisecond.
_USERINFO = r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s'\"<>]*@"


@overload
def redact(text: str) -> str: ...


@overload
def redact(text: None) -> None: ...


def redact(text: str | None) -> str | None:
    """``text`` with the user-info of every URL in it replaced by ``***``."""
    if not text:
        return text
    return re.sub(_USERINFO, r"\1***@", str(text))


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") and char not in "\t\n"


@overload
def safe(text: str) -> str: ...


@overload
def safe(text: None) -> None: ...


def safe(text: str | None) -> str | None:
    """``text`` (redacted) with control characters other than tab and newline made spaces."""
    text = redact(text)
    if not text:
        return text
    return "".join(" " if _is_control(char) else char for char in text)


def one_line(text: str | None) -> str:
    """``text`` redacted, on one line: every control character and newline becomes a space."""
    return " ".join((safe(text) or "").split())
