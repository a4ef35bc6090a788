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

import re
import unicodedata

__all__ = ["redact", "one_line", "safe"]

# scheme://userinfo@ — userinfo is everything up to the last '@' before the
# host part ends (no '/', whitespace, quote or '@'-free run); credentials may
# hold ':' and percent-escapes.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@'\"<>]+@")


def redact(text):
    """``text`` with the user-info of every URL in it replaced by ``***``."""
    if not text:
        return text
    return _USERINFO.sub(r"\1***@", str(text))


def _is_control(char):
    return unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") and char not in "\t\n"


def safe(text):
    """``text`` (redacted) with control characters other than tab and newline made spaces."""
    text = redact(text)
    if not text:
        return text
    return "".join(" " if _is_control(char) else char for char in text)


def one_line(text):
    """``text`` redacted, on one line: every control character and newline becomes a space."""
    return " ".join(safe(text).split()) if text else ""
