"""After a run: the JUnit report and the notifications, from its one `RunRecord`.

Neither ever changes a run's result: a report that cannot be written is a
warning, a notification that fails is reported by `continuity.notify`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from . import notify
from .config import Settings
from .junit import write_report
from .record import RunRecord, close_record
from .report import Reporter

__all__ = ["after_run", "write_junit", "finish", "reported"]


def write_junit(settings: Settings, rep: Reporter, record: RunRecord, junit: str | None = None) -> None:
    """Write the JUnit report of ``record`` to ``junit``, else ``continuity.junit``, if either is set."""
    path = junit or settings.junit
    if path:
        try:
            write_report(path, record)
            rep.say("junit report written to {}".format(path))
        except OSError as exc:
            rep.say("warning: could not write the junit report {}: {}".format(path, exc))


def after_run(settings: Settings, rep: Reporter, record: RunRecord, junit: str | None = None) -> None:
    """Write the JUnit report (see `write_junit`) and send the notifications."""
    write_junit(settings, rep, record, junit)
    if settings.notify is not None:
        notify.send(settings.notify, record, say=rep.say)


def finish(settings: Settings, rep: Reporter, record: RunRecord, exc: BaseException | None = None,
           summary: str = "", where: str = "", junit: str | None = None, send: bool = True) -> RunRecord:
    """Close ``record`` (see `record.close_record`), then report it, and notify it unless not ``send``."""
    close_record(record, rep.stages, rep.checks, exc, summary, where)
    if send:
        after_run(settings, rep, record, junit)
    else:
        write_junit(settings, rep, record, junit)
    return record


@contextmanager
def reported(settings: Settings, rep: Reporter, record: RunRecord, junit: str | None = None) -> Iterator[RunRecord]:
    """Give a task other than the pipeline the same JUnit report and notifications.

    The task fills ``record`` as it goes: ``revisions``, ``deployed``,
    ``commits``, ``state`` and ``summary``; this times it. ``junit`` (the
    task's ``--junit``, made absolute when it started) wins over
    ``continuity.junit``.
    """
    start = time.monotonic()
    try:
        yield record
    except BaseException as exc:
        record.seconds = time.monotonic() - start
        finish(settings, rep, record, exc, where=record.task, junit=junit)
        raise
    record.seconds = time.monotonic() - start
    finish(settings, rep, record, junit=junit)
