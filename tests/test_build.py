"""Build steps, the checkout the checks run in, and what is kept of their output."""

import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

from conftest import FAB, Project
from continuity import config as cfg
from continuity._proc import TAIL_BYTES, Tail, run_shell


def cases(path, classname):
    return {case.get("name"): case for case in ET.parse(path).getroot().iter("testcase")
            if case.get("classname") == classname}


def test_a_check_that_prints_100_mb_streams_it_and_keeps_a_small_tail(make_project, tmp_path):
    flood = "head -c 100000000 /dev/zero | tr '\\0' a; echo; echo the-last-words; exit 1"
    project = make_project(config=Project.config(checks=[flood], extra="junit: reports/junit.xml\n"))
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    console = tmp_path / "console.log"

    with open(console, "wb") as out:
        proc = subprocess.Popen([FAB, "continuity.pipeline"], cwd=ws, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.PIPE)
        with proc.stderr:
            stderr = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)

    assert proc.returncode == 1, stderr[-2000:]
    assert console.stat().st_size > 100_000_000, "the output still streams to the console"
    console.unlink()
    assert len(stderr) < 2 * TAIL_BYTES
    assert b"the-last-words" in stderr and b"bytes of output before this were not kept" in stderr
    assert (ws / "reports" / "junit.xml").stat().st_size < 8 * TAIL_BYTES
    assert usage.ru_maxrss < 200 * 1024, "peak memory of fab: {} KiB".format(usage.ru_maxrss)


def test_the_tail_keeps_the_last_lines_within_a_byte_bound():
    tail = Tail(lines=3, size=100)
    for number in range(10):
        tail.feed("line {}\n".format(number).encode())
    assert tail.text() == "line 7\nline 8\nline 9\n"

    tail.feed(b"x" * 1000 + b"\nend")
    assert tail.text() == "[{} bytes of output before this were not kept]\n".format(70 + 1004 - 100) + "x" * 96 + "\nend"


def test_a_line_without_a_newline_is_streamed_and_bounded(tmp_path):
    with open(tmp_path / "out", "w") as out:
        result = run_shell("head -c 3000000 /dev/zero | tr '\\0' b", str(tmp_path), out=out)
    assert (tmp_path / "out").stat().st_size == 3_000_000
    assert result.ok and len(result.tail) < TAIL_BYTES + 100
    assert result.tail.startswith("[{} bytes of output before".format(3_000_000 - TAIL_BYTES))


@pytest.mark.parametrize("kind, name, extra", [
    ("continuity.check", "exit 3", ""),
])
def test_a_step_or_check_that_fails_silently_says_it_printed_nothing(make_project, kind, name, extra):
    checks = ["exit 3"] if kind == "continuity.check" else ["true"]
    project = make_project(config=Project.config(checks=checks, extra="junit: reports/junit.xml\n" + extra))
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()

    proc = project.fab(ws, "continuity.pipeline")

    assert proc.returncode == 1
    report = (ws / "reports" / "junit.xml").read_text()
    assert "last output" not in proc.stderr + proc.stdout + report
    assert "exited with code 3; it printed nothing" in proc.stderr
    failure = cases(ws / "reports" / "junit.xml", kind)[name].find("failure")
    assert failure.get("message").endswith("exited with code 3; it printed nothing")


# -- paths are resolved when the run starts ------------------------------------------


CHDIR_FABFILE = """
import os

from fabric import task
from invoke import Collection

import continuity


@task
def deploy(c, environment):
    os.chdir(os.environ["ELSEWHERE"])


ns = Collection(deploy, continuity)
"""


def test_a_deploy_task_that_changes_directory_does_not_move_the_junit_report(make_project, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    project = make_project(fabfile=CHDIR_FABFILE, config=Project.config(extra="junit: reports/setting.xml\n"))
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()

    by_option = project.fab(ws, "continuity.pipeline", "--junit", "reports/option.xml", env={"ELSEWHERE": str(elsewhere)})
    assert by_option.returncode == 0, by_option.stderr
    project.push_to("development", "more", more="x\n")
    by_setting = project.fab(ws, "continuity.pipeline", env={"ELSEWHERE": str(elsewhere)})
    assert by_setting.returncode == 0, by_setting.stderr

    assert sorted(os.listdir(ws / "reports")) == ["option.xml", "setting.xml"]
    assert not (elsewhere / "reports").exists()


def test_path_settings_are_absolute_once_parsed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = cfg.parse({"junit": "reports/j.xml", "environments": {"staging": {"hosts": ["h"], "key_filename": "keys/id"}}})
    assert settings.junit == str(tmp_path / "reports" / "j.xml")
    assert settings.environments["staging"].key_filename == str(tmp_path / "keys" / "id")
