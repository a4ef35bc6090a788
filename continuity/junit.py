"""A JUnit XML report of a run, for Jenkins' ``junit`` step.

One ``<testsuite>`` named after the task (``continuity.pipeline``) holds a
test case per stage (classname ``continuity.stage``) and per check or build
step that ran (``continuity.check``, ``continuity.build``), each with its
duration. A failed one carries a ``<failure>`` with the error and the last
lines of output (bounded: see `_proc.Tail`); a skipped stage is ``<skipped/>``. A run that failed outside
any stage gets one more failed case, ``continuity.run``, so a red build never
shows an all-green report; a task that has no stages (``deploy``,
``promote``, ``rollback``) gets that case passed or failed, so its report is
never empty.

A check that failed and then passed when it ran again (``retries``) is a
passing case with a ``<flakyFailure>`` per failed run, as Maven Surefire
writes them (``rerunFailingTestsCount``) and Jenkins' JUnit plugin reads
them: ``message`` and ``type`` attributes, the failure in ``<stackTrace>``
and the run's output tail in ``<system-out>``. A check that failed every run
it was allowed has its ``<failure>`` and a ``<rerunFailure>`` per earlier run.

The file is written next to its final path and renamed into place, so
Jenkins never reads half a report.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import Any, Protocol, TypeVar

from ._text import redact
from .record import RunRecord


class _HasName(Protocol):
    name: str


_Named = TypeVar("_Named", bound=_HasName)

__all__ = ["write_report", "build_report"]

#: What XML 1.0 cannot hold (most control characters), and terminal colours.
#: The few characters XML forbids rather than the complement of those it
#: allows: the same set, but that complement took ~5 ms to compile. Strings,
#: compiled on first use (and cached by `re`), not at every ``import continuity``.
_NOT_XML = "[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]"
_ANSI = r"\x1b\[[0-9;?]*[ -/]*[@-~]"


def write_report(path: str | os.PathLike[str], record: RunRecord) -> str:
    """Write the report of ``record`` (a `report.RunRecord`) to ``path``; OSError if we cannot."""
    ET = _et()
    path = os.path.abspath(os.path.expanduser(os.fspath(path)))
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    suite = build_report(record)
    ET.indent(suite)
    data = ET.tostring(suite, encoding="utf-8", xml_declaration=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".continuity-junit-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data + b"\n")
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        _remove(temporary)
        raise
    return path


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def build_report(record: RunRecord) -> Any:
    """The ``<testsuite>`` element of ``record``."""
    ET = _et()
    cases = _stage_cases(record) + _command_cases(record) + _run_case(record)
    suite = ET.Element("testsuite", {
        "name": "continuity." + record.task,
        "tests": str(len(cases)),
        "failures": str(sum(1 for case in cases if case.find("failure") is not None)),
        "errors": "0",
        "skipped": str(sum(1 for case in cases if case.find("skipped") is not None)),
        "time": _seconds(record.seconds or sum(stage.seconds for stage in record.stages)),
        "hostname": socket.gethostname(),
    })
    suite.append(_properties(record))
    suite.extend(cases)
    return suite


def _properties(record: RunRecord) -> Any:
    ET = _et()
    properties = ET.Element("properties")
    values = [("line", record.line), ("state", record.state), ("summary", record.summary),
              ("build_url", record.build_url), ("remote", record.remote), ("culprit", record.culprit)]
    values += [("revision." + key, sha) for key, sha in record.revisions.items()]
    for name, value in values:
        if value:
            ET.SubElement(properties, "property", name=name, value=_clean(value))
    return properties


def _stage_cases(record: RunRecord) -> list[Any]:
    ET = _et()
    cases = []
    for name, stage in _numbered(record.stages):
        case = _case("continuity.stage", name, stage.seconds)
        if stage.status == "FAILED":
            _fail(case, stage.error or stage.detail or "failed")
        elif stage.status == "skipped":
            ET.SubElement(case, "skipped", message=_clean(stage.detail))
        elif stage.detail:
            ET.SubElement(case, "system-out").text = _clean(stage.detail)
        cases.append(case)
    return cases


def _command_cases(record: RunRecord) -> list[Any]:
    ET = _et()
    cases = []
    for name, check in _numbered(record.checks):
        result = check.result
        case = _case("continuity." + check.kind, name, result.duration)
        command = "" if check.command == check.name else " ({})".format(check.command)
        what = "{} '{}'{}".format(_KINDS.get(check.kind, check.kind), check.name, command)
        if result.ok:
            _reruns(case, "flakyFailure", what, check.failures, check.tries)
            ET.SubElement(case, "system-out").text = _clean("$ {}\n{}".format(check.command, result.tail))
        else:
            _fail(case, "{} {}; {}".format(what, result.describe(), result.tail_text()))
            _reruns(case, "rerunFailure", what, check.failures, check.tries)
        cases.append(case)
    return cases


_KINDS = {"build": "build step"}


def _reruns(case: Any, tag: str, what: str, failures: Iterable[Any], tries: int) -> None:
    """Surefire's ``<flakyFailure>`` (or ``<rerunFailure>``) for each failed run of a check that ran again."""
    ET = _et()
    for number, result in enumerate(failures, 1):
        message = "{} {} (attempt {} of {})".format(what, result.describe(), number, tries)
        element = ET.SubElement(case, tag, message=_clean(message), type="timeout" if result.timed_out else "failure")
        ET.SubElement(element, "stackTrace").text = _clean("{}; {}".format(message, result.tail_text()))
        ET.SubElement(element, "system-out").text = _clean(result.tail)


def _et() -> ModuleType:
    """ElementTree, imported when a report is written: ``import continuity`` stays light."""
    import xml.etree.ElementTree

    return xml.etree.ElementTree


def _run_case(record: RunRecord) -> list[Any]:
    """A failure no stage holds (such as 'master kept moving'); for a run without stages (a deploy,
    a promote), its one case, passed or failed, so that no report is empty."""
    if (record.ok and record.stages) or any(stage.status == "FAILED" for stage in record.stages):
        return []
    case = _case("continuity.run", record.task, record.seconds)
    if record.ok:
        _et().SubElement(case, "system-out").text = _clean(record.summary)
    else:
        _fail(case, record.error or record.summary)
    return [case]


def _numbered(items: Iterable[_Named]) -> Iterator[tuple[str, _Named]]:
    """(name, item); a name seen before (a stage of a retried attempt) gets " #2", " #3"..."""
    seen: dict[str, int] = {}
    for item in items:
        seen[item.name] = seen.get(item.name, 0) + 1
        yield (item.name if seen[item.name] == 1 else "{} #{}".format(item.name, seen[item.name])), item


def _case(classname: str, name: str, seconds: float) -> Any:
    ET = _et()
    return ET.Element("testcase", classname=classname, name=_clean(name), time=_seconds(seconds))


def _fail(case: Any, text: str) -> None:
    """A ``<failure>``: the whole text inside, its first and last lines as the message."""
    ET = _et()
    lines = [line.strip() for line in _clean(text).splitlines() if line.strip()] or ["failed"]
    message = lines[0] if len(lines) == 1 else "{} {}".format(lines[0], lines[-1])
    failure = ET.SubElement(case, "failure", message=message, type="failure")
    failure.text = _clean(text)


def _clean(text: Any) -> str:
    return re.sub(_NOT_XML, "", re.sub(_ANSI, "", redact(str(text or ""))))  # a check may print a remote's URL


def _seconds(value: float) -> str:
    return "{:.3f}".format(max(0.0, value or 0.0))
