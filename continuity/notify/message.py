"""What a run says: one headline, a plain-text body, a JSON document.

Every channel tells the same story, built here from the run's record: the
mail's subject and body, the webhook's JSON document, the lines Slack shows
(`.slack`) all start from the same headline ("pipeline FAILED on main at
stage check") and the same rows. Whatever comes from git or the environment
is redacted and freed of control characters before it leaves, and the
commit list is bounded: a run that brings in thousands of commits still
sends a message a person (and a mail server) can take.

`Run` spells out what notify reads from a run record: the record's other
fields may change without notify noticing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from .._text import one_line, redact, safe

__all__ = ["Run", "Stage", "COMMITS_LISTED", "events_of", "status", "headline", "trim", "revision_rows",
           "compose", "document", "redacted"]

COMMITS_LISTED = 50  # in the mail body and the JSON document; the others are counted
_SUBJECT_CHARS = 150


class Stage(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def status(self) -> str: ...  # ok | FAILED | skipped
    @property
    def seconds(self) -> float: ...
    @property
    def detail(self) -> str: ...


class Run(Protocol):
    """The fields of a run record a notification is made of."""

    @property
    def task(self) -> str: ...
    @property
    def line(self) -> str: ...
    @property
    def ok(self) -> bool: ...
    @property
    def state(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def stages(self) -> Sequence[Stage]: ...
    @property
    def error(self) -> str: ...
    @property
    def failed_stage(self) -> str: ...
    @property
    def failed_command(self) -> str: ...
    @property
    def output_tail(self) -> str: ...
    @property
    def revisions(self) -> Mapping[str, str]: ...  # base, development, candidate -> sha
    @property
    def commits(self) -> Sequence[tuple[str, str, str, str]]: ...  # (sha, subject, author, email), newest first
    @property
    def deployed(self) -> Mapping[str, str]: ...  # environment -> result sentence
    @property
    def build_url(self) -> str: ...
    @property
    def remote(self) -> str: ...
    @property
    def branches(self) -> Mapping[str, str]: ...  # role -> branch name
    @property
    def bisection(self) -> Sequence[str]: ...  # what a bisection tried, when one ran
    @property
    def flaky(self) -> Sequence[str]: ...  # "'unit tests' (passed on attempt 2 of 3)": failed, then passed


def events_of(record: Run) -> set[str]:
    """The events a run is: {"failure"}, or some of {"success", "deploy"}, or none.

    A run that found nothing to do, or a dry run, is no event: a job that
    polls every few minutes must not write every few minutes.
    """
    if not record.ok:
        return {"failure"}
    events = set()
    if record.state not in ("nothing-to-do", "planned"):
        events.add("success")
    if any(str(result).startswith("deployed") for result in record.deployed.values()):
        events.add("deploy")
    return events


def status(record: Run) -> str:
    if record.ok:
        return "ok"
    return "stopped" if record.summary == "stopped" else "FAILED"


def headline(record: Run) -> str:
    """"pipeline FAILED on main at stage check"."""
    text = "{} {} on {}".format(record.task, status(record), record.line)
    if not record.ok and record.failed_stage:
        text += " at stage " + record.failed_stage
    return text


def trim(text: str) -> str:
    """``text`` without the "; last output:" that announces a tail we show elsewhere."""
    return re.sub(r"[;:,\s]*last output:?$", "", text or "").rstrip(":; ")


def _first_line(text: str) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def _short_error(record: Run) -> str:
    return trim(_first_line(record.error)) or trim(record.summary)


def revision_rows(record: Run) -> list[tuple[str, str]]:
    """[(label, sha)]: "base (master)", the development branch, "candidate"."""
    labels = {
        "base": "base ({})".format(record.branches.get("master", "master")),
        "development": record.branches.get("development", "development"),
        "candidate": "candidate",
    }
    return [(labels.get(key, key), sha) for key, sha in record.revisions.items() if sha]


def compose(record: Run) -> tuple[str, str]:
    """(subject, plain-text body) of the message about ``record``: redacted, no control characters."""
    detail = record.summary if record.ok else _short_error(record)
    subject = one_line("[continuity] {}: {}".format(headline(record), detail))
    if len(subject) > _SUBJECT_CHARS:
        subject = subject[: _SUBJECT_CHARS - 3] + "..."
    return subject, safe("\n".join(_body_lines(record)) + "\n")


def _body_lines(record: Run) -> list[str]:
    lines = ["continuity: " + headline(record), "", "Result:  " + trim(record.summary)]
    if record.failed_stage:
        lines.append("Stage:   " + record.failed_stage)
    if record.failed_command:
        lines.append("Command: " + record.failed_command)
    if record.build_url:
        lines.append("Build:   " + record.build_url)
    lines += _section("Revisions", ["{:<24} {}".format(label, sha) for label, sha in revision_rows(record)])
    lines += _section("Commits brought in ({})".format(len(record.commits)), _commit_rows(record.commits))
    lines += _section("Deploys", ["{}: {}".format(env, result) for env, result in record.deployed.items()])
    lines += _section("Flaky checks (failed, then passed when run again: they did not block)", list(record.flaky))
    lines += _failure_lines(record)
    lines += _section("Bisection", list(record.bisection))
    lines += _section("Stages", ["{:<9} {:<8} {:>7.2f}s  {}".format(
        s.name, s.status, s.seconds, s.detail).rstrip() for s in record.stages])
    return lines


def _commit_rows(commits: Sequence[tuple[str, str, str, str]]) -> list[str]:
    rows = ["{}  {}  ({} <{}>)".format(sha[:12], *map(one_line, (subject, name, address)))
            for sha, subject, name, address in commits[:COMMITS_LISTED]]
    if len(commits) > COMMITS_LISTED:
        rows.append("... and {} more".format(len(commits) - COMMITS_LISTED))
    return rows


def _failure_lines(record: Run) -> list[str]:
    if record.output_tail.strip():
        title = "Last output of `{}`".format(record.failed_command) if record.failed_command else "Last output"
        return _section(title, ["| " + line for line in record.output_tail.rstrip().splitlines()])
    if record.error.strip():
        return _section("Error", record.error.strip().splitlines())
    return []


def _section(title: str, rows: list[str]) -> list[str]:
    return ["", title + ":"] + ["  " + row for row in rows] if rows else []


def document(record: Run) -> dict[str, Any]:
    """Our own JSON document about ``record`` (the ``json`` webhook format)."""
    subject, body = compose(record)
    return {
        "source": "continuity",
        "event": sorted(events_of(record)),
        "status": status(record),
        "task": record.task,
        "line": record.line,
        "ok": record.ok,
        "state": record.state,
        "summary": record.summary,
        "failed_stage": record.failed_stage,
        "failed_command": record.failed_command,
        "output_tail": record.output_tail,
        "error": record.error,
        "revisions": dict(record.revisions),
        "branches": dict(record.branches),
        "commits": [dict(zip(("sha", "subject", "author", "email"), c)) for c in record.commits[:COMMITS_LISTED]],
        "commits_total": len(record.commits),
        "deployed": dict(record.deployed),
        "flaky": list(record.flaky),
        "build_url": record.build_url,
        "remote": record.remote,
        "stages": [{"name": s.name, "status": s.status, "seconds": round(s.seconds, 3), "detail": s.detail}
                   for s in record.stages],
        "title": subject,
        "text": body,
    }


def redacted(value: Any) -> Any:
    """``value`` (a JSON-like tree) with no URL user-info in any string."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redacted(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redacted(item) for item in value]
    return value
