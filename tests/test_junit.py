"""The JUnit XML report, parsed back with ElementTree as Jenkins' junit step would read it."""

import os
import xml.etree.ElementTree as ET

import pytest

from conftest import Project
from continuity._proc import Result
from continuity.junit import write_report
from continuity.report import CheckRecord, RunRecord, StageRecord


def cases(root, classname=None):
    """{name: testcase element} of a report, optionally of one classname."""
    return {case.get("name"): case for case in root.iter("testcase")
            if classname is None or case.get("classname") == classname}


def test_a_passing_run_writes_a_report_with_a_case_per_stage_and_per_check(project):
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()

    proc = project.fab(ws, "continuity.pipeline", "--junit", "reports/continuity.xml")

    assert proc.returncode == 0, proc.stderr
    # The path is resolved when the run starts, and printed that way.
    assert "junit report written to {}".format(os.path.realpath(ws / "reports" / "continuity.xml")) in proc.stdout
    root = ET.parse(ws / "reports" / "continuity.xml").getroot()
    assert root.tag == "testsuite"
    assert (root.get("name"), root.get("failures"), root.get("errors")) == ("continuity.pipeline", "0", "0")
    stages = cases(root, "continuity.stage")
    # The lock was free: no second fetch (the master push is a compare-and-swap anyway).
    assert list(stages) == ["preflight", "fetch", "lock", "merge", "build", "check", "push", "deploy"]
    assert stages["build"].find("skipped") is not None
    assert root.get("skipped") == "1"
    checks = cases(root, "continuity.check")
    assert list(checks) == ["test -f app.txt"]
    assert "$ test -f app.txt" in checks["test -f app.txt"].find("system-out").text
    assert int(root.get("tests")) == len(list(root.iter("testcase"))) == 9
    assert all(float(case.get("time")) >= 0 for case in root.iter("testcase"))
    assert not [name for name in os.listdir(ws / "reports") if name != "continuity.xml"]


def test_a_failing_check_is_a_failure_holding_its_output(make_project):
    project = make_project(config=Project.config(
        checks=["test -f app.txt", "echo the-widget-broke; exit 3"], extra="junit: build/reports/junit.xml\n"))
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()

    proc = project.fab(ws, "continuity.pipeline")

    assert proc.returncode == 1
    root = ET.parse(ws / "build" / "reports" / "junit.xml").getroot()
    assert root.get("failures") == "2"
    check = cases(root, "continuity.check")["echo the-widget-broke; exit 3"].find("failure")
    assert "exited with code 3" in check.get("message") and "the-widget-broke" in check.get("message")
    assert "the-widget-broke" in check.text
    stage = cases(root, "continuity.stage")["check"].find("failure")
    assert "the-widget-broke" in stage.get("message") and "the-widget-broke" in stage.text
    assert cases(root, "continuity.check")["test -f app.txt"].find("failure") is None
    assert "push" not in cases(root, "continuity.stage")


# -- the writer, in process ----------------------------------------------------------


def record(**fields):
    values = dict(task="pipeline", line="main", ok=True, state="pushed", summary="master advanced",
                  revisions={"base": "a" * 40, "development": "b" * 40, "candidate": "b" * 40})
    values.update(fields)
    return RunRecord(**values)


def test_colours_and_control_characters_in_output_still_make_valid_xml(tmp_path):
    output = "\x1b[31mred error\x1b[0m\x00\x07 and \u00e9 <tag> & \"quotes\"\n"
    failed = Result("make lint", 2, 0.25, output)
    path = tmp_path / "report.xml"

    write_report(path, record(ok=False, state="failed", summary="FAILED", stages=[
        StageRecord("check", "FAILED", 0.3, "check 'lint' exited with code 2", "check 'lint' failed:\n" + output)],
        checks=[CheckRecord("lint", "make lint", failed)]))

    failure = cases(ET.parse(path).getroot())["lint"].find("failure")
    assert "red error and \u00e9 <tag> & \"quotes\"" in failure.text
    assert "\x1b" not in failure.text and "[31m" not in failure.text


def test_a_retried_attempt_gets_numbered_cases_and_build_steps_their_own_class(tmp_path):
    ok = Result("true", 0, 0.01, "")
    stages = [StageRecord("fetch", "ok", 0.1, ""), StageRecord("check", "ok", 0.2, ""),
              StageRecord("fetch", "ok", 0.1, ""), StageRecord("check", "ok", 0.2, "")]
    checks = [CheckRecord("assets", "make assets", ok, kind="build"), CheckRecord("unit", "true", ok),
              CheckRecord("unit", "true", ok)]

    write_report(tmp_path / "r.xml", record(stages=stages, checks=checks))

    root = ET.parse(tmp_path / "r.xml").getroot()
    assert list(cases(root, "continuity.stage")) == ["fetch", "check", "fetch #2", "check #2"]
    assert list(cases(root, "continuity.check")) == ["unit", "unit #2"]
    assert list(cases(root, "continuity.build")) == ["assets"]
    assert root.get("time") == "0.600"


def test_a_failure_outside_any_stage_is_a_failed_run_case(tmp_path):
    message = "master kept moving on origin while we tested (3 attempts); nothing was pushed."

    write_report(tmp_path / "r.xml", record(ok=False, state="failed", summary="FAILED: " + message, error=message,
                                            stages=[StageRecord("push", "ok", 0.1, "refused")]))

    root = ET.parse(tmp_path / "r.xml").getroot()
    failure = cases(root, "continuity.run")["pipeline"].find("failure")
    assert failure.get("message") == message
    assert root.get("failures") == "1"


def test_the_report_replaces_an_old_one_in_one_step(tmp_path):
    path = tmp_path / "reports" / "r.xml"
    path.parent.mkdir()
    path.write_text("old and half written")

    write_report(path, record(stages=[StageRecord("fetch", "ok", 0.1, "")]))

    assert ET.parse(path).getroot().get("tests") == "1"
    assert os.listdir(path.parent) == ["r.xml"]


def test_a_path_that_cannot_be_written_is_an_os_error(tmp_path):
    (tmp_path / "file").write_text("")

    with pytest.raises(OSError):
        write_report(tmp_path / "file" / "r.xml", record())
    assert (tmp_path / "file").read_text() == ""


def test_a_report_that_cannot_be_written_is_a_warning_not_a_failure(project):
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    (ws / "reports").mkdir()

    proc = project.fab(ws, "continuity.pipeline", "--junit", "reports")

    assert proc.returncode == 0, proc.stderr
    assert "warning: could not write the junit report {}".format(os.path.realpath(ws / "reports")) in proc.stdout
