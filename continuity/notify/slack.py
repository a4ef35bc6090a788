"""The ``slack`` webhook format: a message a Slack incoming webhook accepts.

Slack wants ``{"text": ...}`` in its own markup (mrkdwn), short: the headline
in bold, the failing command, the revisions, who wrote the commits (ten
names, the rest counted), a link to the build and the end of the output.
Mattermost and Rocket.Chat read the same format.
"""

from __future__ import annotations

from typing import Any

from .._text import safe
from .message import Run, headline, revision_rows, trim

__all__ = ["payload"]

_AUTHORS_NAMED = 10
_TAIL_CHARS = 2500


def payload(record: Run) -> dict[str, Any]:
    """Slack's incoming-webhook body about ``record``."""
    lines = ["*continuity: {}*".format(_escape(headline(record))), _escape(trim(record.summary))]
    if record.failed_command:
        lines.append("Command: `{}`".format(_escape(record.failed_command)))
    revisions = ", ".join("{} `{}`".format(_escape(label), sha[:12]) for label, sha in revision_rows(record))
    if revisions:
        lines.append("Revisions: " + revisions)
    authors = list(dict.fromkeys(name for _sha, _subject, name, _address in record.commits))
    if authors:
        named = ", ".join(authors[:_AUTHORS_NAMED])
        if len(authors) > _AUTHORS_NAMED:
            named += " and {} others".format(len(authors) - _AUTHORS_NAMED)
        lines.append("Commits: {} by {}".format(len(record.commits), _escape(named)))
    if record.build_url:
        lines.append("<{}|Build>".format(record.build_url.replace("|", "%7C").replace(">", "%3E")))
    tail = record.output_tail.rstrip()[-_TAIL_CHARS:]
    if tail:
        lines.append("```\n{}\n```".format(_escape(tail)))
    return {"text": safe("\n".join(lines))}


def _escape(text: str) -> str:
    """Slack reads ``<``, ``>`` and ``&`` as markup: a commit subject must not make a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
