"""Flaky checks: ``retries: N`` runs a failure again on the same tree; a later pass does not block, and says so."""

import textwrap
import xml.etree.ElementTree as ET

import pytest
from test_bad_input import setting_error

from conftest import assert_user_error, git
from continuity.notify.message import compose, document
from continuity.record import CheckRecord, RunRecord

RESULTS = "refs/continuity/results"


def _counting(tmp_path, fails_on=(1, 4)):
    """A check that counts its runs in a file outside the checkout and fails on the runs ``fails_on``."""
    counter = tmp_path / "runs"
    failing = " || ".join("[ $n -eq {} ]".format(n) for n in fails_on) or "false"
    command = ('n=$(cat {0} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {0}; echo "run $n"; '
               'if {1}; then echo "boom on run $n"; exit 1; fi').format(counter, failing)
    return command, counter


def _config(command, retries=None, before=(), extra=""):
    """One check, 'unit tests', after the checks ``before`` (YAML items); ``extra`` settings after the list.

    Culprit finding is off: its own runs of a failing check (tests/test_culprit.py) would add to the counts.
    """
    lines = ["continuity:", "  culprit_finding: false", "  checks:"] + ["    - " + item for item in before]
    lines += ["    - name: 'unit tests'", "      command: '{}'".format(command.replace("'", "''"))]
    if retries is not None:
        lines.append("      retries: {}".format(retries))
    return "\n".join(lines) + "\n" + textwrap.indent(textwrap.dedent(extra), "  ")


def _results_text(project):
    head = project.ref(RESULTS)
    paths = git(project.origin, "ls-tree", "-r", "--name-only", head).splitlines()
    return "\n".join(git(project.origin, "show", "{}:{}".format(head, path)) for path in paths)


def _push_change(project):
    git(project.dev, "checkout", "--quiet", "-B", "work", "origin/development")
    project.commit("change", **{"app.txt": "version 2\n"})
    git(project.dev, "push", "--quiet", "origin", "HEAD:refs/heads/development")


def test_a_check_that_fails_once_then_passes_is_flaky_and_does_not_block(make_project, tmp_path):
    command, counter = _counting(tmp_path)
    project = make_project(config=_config(command, retries=2))
    _push_change(project)
    ws = project.workspace()
    report = tmp_path / "junit.xml"
    proc = project.fab(ws, "continuity.pipeline", "--junit", str(report))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert counter.read_text().strip() == "2"
    assert project.ref("master") == project.ref("development")
    assert "flaky: 'unit tests' (passed on attempt 2 of 3)" in proc.stdout, proc.stdout
    result = [line for line in proc.stdout.splitlines() if "result:" in line][0]
    assert "master advanced" in result and "flaky: 'unit tests' (passed on attempt 2 of 3)" in result, result
    assert "running it again on the same tree (attempt 2 of 3" in proc.stdout

    suite = ET.parse(report).getroot()
    case = [c for c in suite.iter("testcase") if c.get("classname") == "continuity.check"][0]
    assert case.get("name") == "unit tests"
    assert case.find("failure") is None
    flaky = case.findall("flakyFailure")
    assert len(flaky) == 1
    assert "attempt 1 of 3" in flaky[0].get("message") and flaky[0].get("type") == "failure"
    assert "boom on run 1" in flaky[0].find("stackTrace").text
    assert "boom on run 1" in flaky[0].find("system-out").text
    assert suite.get("failures") == "0"

    text = _results_text(project)
    assert "status: flaky" in text and "attempts: 2/3" in text, text

    listed = project.fab(ws, "continuity.results")
    assert listed.returncode == 0, listed.stderr
    assert "tested: every configured check passed on this tree" in listed.stdout  # flaky counts as passed

    rates = project.fab(ws, "continuity.flaky")
    assert rates.returncode == 0, rates.stderr
    row = [line for line in rates.stdout.splitlines() if "'unit tests'" in line]
    assert row and row[0].split()[:4] == ["100%", "1", "1", "0"], rates.stdout


def test_without_retries_the_same_check_blocks(make_project, tmp_path):
    command, counter = _counting(tmp_path)
    project = make_project(config=_config(command))
    _push_change(project)
    master = project.ref("master")
    proc = project.fab(project.workspace(), "continuity.pipeline")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert counter.read_text().strip() == "1"
    assert project.ref("master") == master
    assert "flaky" not in proc.stdout
    assert "status: failed" in _results_text(project)


def test_a_check_that_always_fails_runs_once_plus_its_retries_and_blocks(make_project, tmp_path):
    command, counter = _counting(tmp_path, fails_on=(1, 2, 3, 4, 5))
    project = make_project(config=_config(command, retries=2))
    _push_change(project)
    master = project.ref("master")
    report = tmp_path / "junit.xml"
    proc = project.fab(project.workspace(), "continuity.pipeline", "--junit", str(report))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert counter.read_text().strip() == "3"
    assert project.ref("master") == master
    assert "exited with code 1 (3 attempts)" in proc.stderr, proc.stderr
    case = [c for c in ET.parse(report).getroot().iter("testcase") if c.get("classname") == "continuity.check"][0]
    assert case.find("failure") is not None and len(case.findall("rerunFailure")) == 2
    assert case.find("flakyFailure") is None
    text = _results_text(project)
    assert "status: failed" in text and "attempts: 3/3" in text, text


def test_a_timeout_counts_as_a_failure_for_retries(make_project, tmp_path):
    counter = tmp_path / "runs"
    command = ('n=$(cat {0} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {0}; '
               'if [ $n -eq 1 ]; then sleep 30; fi').format(counter)
    project = make_project(config=_config(command, retries=1) + "      timeout: 1\n")
    _push_change(project)
    proc = project.fab(project.workspace(), "continuity.pipeline")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert counter.read_text().strip() == "2"
    assert "flaky: 'unit tests' (passed on attempt 2 of 2)" in proc.stdout


def test_checks_run_together_retry_too(make_project, tmp_path):
    command, counter = _counting(tmp_path)
    project = make_project(config=_config(command, retries=2, before=["'sleep 0.2'"], extra="jobs: 2\n"))
    _push_change(project)
    proc = project.fab(project.workspace(), "continuity.pipeline")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert counter.read_text().strip() == "2"
    assert "flaky: 'unit tests' (passed on attempt 2 of 3)" in proc.stdout


def test_fab_continuity_test_says_a_check_was_flaky(make_project, tmp_path):
    command, counter = _counting(tmp_path)
    project = make_project(config=_config(command, retries=1))
    proc = project.fab(project.workspace(), "continuity.test")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "flaky: 'unit tests' (passed on attempt 2 of 2)" in proc.stdout


def test_no_flaky_checks_is_said_in_one_line(project):
    ws = project.workspace()
    assert project.fab(ws, "continuity.test").returncode == 0
    proc = project.fab(ws, "continuity.flaky")
    assert proc.returncode == 0, proc.stderr
    assert "no flaky checks recorded" in proc.stdout


def test_flake_rate_counts_each_tree_once_sorted_flakiest_first(make_project, tmp_path):
    command, counter = _counting(tmp_path, fails_on=(1,))
    project = make_project(config=_config(command, retries=1, before=["{name: steady, command: 'true'}"]))
    ws = project.workspace()
    assert project.fab(ws, "continuity.test").returncode == 0  # flaky on this tree
    _push_change(project)
    ws2 = project.workspace()
    assert project.fab(ws2, "continuity.test").returncode == 0  # passes at once on the next
    proc = project.fab(ws2, "continuity.flaky")
    rows = [line.split() for line in proc.stdout.splitlines()[1:]]
    assert rows[0][:4] == ["50%", "2", "1", "0"] and rows[0][-2:] == ["'unit", "tests'"], proc.stdout
    assert rows[1][:4] == ["0%", "2", "0", "0"] and rows[1][-1] == "'steady'", proc.stdout


@pytest.mark.parametrize("value, shown", [("-1", "-1"), ("lots", "'lots'"), ("11", "11"), ("true", "True"),
                                          ("1.5", "1.5")])
def test_bad_retries_are_one_line_errors(tmp_path, value, shown):
    message = setting_error(tmp_path, "continuity:\n  checks:\n    - {command: 'true', retries: " + value + "}\n",
                            task="continuity.pipeline")
    assert message == ("continuity.checks[1].retries must be a whole number from 0 to 10 (how many times a failed "
                       "check runs again), got {}".format(shown)), message


def test_a_bad_retries_value_through_fab_is_one_line_and_exit_2(make_project):
    project = make_project(config="continuity:\n  checks:\n    - {command: 'true', retries: many}\n")
    proc = project.fab(project.workspace(), "continuity.pipeline")
    assert_user_error(proc, "continuity.checks[1].retries must be a whole number from 0 to 10")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_the_notification_names_the_flaky_check():
    class Failed:
        ok, duration, tail, timed_out, exit_code = False, 1.0, "boom", False, 1

        def describe(self):
            return "exited with code 1"

    class Passed(Failed):
        ok, exit_code = True, 0

    record = RunRecord(task="pipeline", line="main", state="pushed", summary="master advanced a -> b",
                       checks=[CheckRecord("unit tests", "pytest", Passed(), failures=[Failed()], tries=3)])
    subject, body = compose(record)
    assert "Flaky checks" in body and "'unit tests' (passed on attempt 2 of 3)" in body, body
    assert document(record)["flaky"] == ["'unit tests' (passed on attempt 2 of 3)"]
