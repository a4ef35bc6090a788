"""Build steps, the checkout the checks run in, and what is kept of their output."""

import os
import signal
import subprocess
import xml.etree.ElementTree as ET

import pytest

from conftest import FAB, Project, assert_user_error, git, wait_for
from continuity import build
from continuity import config as cfg
from continuity._proc import TAIL_BYTES, Tail, run_shell
from continuity.errors import CommandFailed
from continuity.git import Git
from continuity.workspace import checkout_state

#: A step whose output is a copy of its input, and a check that the output
#: matches the input the candidate has: what a stale build would break.
GENERATE = """\
    build:
      - name: generate
        command: {command}
        paths: [input.txt]
    """
SAME = "cmp input.txt out.txt"


def generating(make_project, command):
    return make_project(config=Project.config(checks=[SAME], extra=GENERATE.format(command=command)))


def cases(path, classname):
    return {case.get("name"): case for case in ET.parse(path).getroot().iter("testcase")
            if case.get("classname") == classname}


# -- stamps: a step that did not finish runs again --------------------------------


def test_a_build_step_that_failed_after_writing_its_output_runs_again_for_the_next_candidate(make_project):
    # `npm ci` that installs new packages and then fails in a postinstall script.
    project = generating(make_project, "'cp input.txt out.txt; if grep -q bad input.txt; then exit 1; fi'")
    project.push_to("development", "good input", **{"input.txt": "good\n"})
    ws = project.workspace()
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    project.push_to("development", "bad input", **{"input.txt": "bad\n"})
    failed = project.fab(ws, "continuity.pipeline")
    assert failed.returncode == 1 and "build step 'generate'" in failed.stderr
    assert (ws / "out.txt").read_text() == "bad\n"
    dev = project.push_to("development", "revert the input", **{"input.txt": "good\n"})

    proc = project.fab(ws, "continuity.pipeline")

    assert proc.returncode == 0, proc.stderr
    assert "build step 'generate' runs: its last run did not finish" in proc.stdout
    assert (ws / "out.txt").read_text() == "good\n"
    assert project.ref("master") == dev


def test_a_build_step_stopped_by_sigterm_runs_again_for_the_next_candidate(make_project, tmp_path):
    started = tmp_path / "started"
    slow = "'cp input.txt out.txt; if grep -q slow input.txt; then touch {}; sleep 60; fi'".format(started)
    project = generating(make_project, slow)
    project.push_to("development", "good input", **{"input.txt": "good\n"})
    ws = project.workspace()
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    project.push_to("development", "slow input", **{"input.txt": "slow\n"})
    stopped = project.popen(ws, "continuity.pipeline")
    wait_for(started)
    stopped.send_signal(signal.SIGTERM)
    stopped.communicate(timeout=60)
    assert stopped.returncode == 143
    project.push_to("development", "revert the input", **{"input.txt": "good\n"})

    proc = project.fab(ws, "continuity.pipeline")

    assert proc.returncode == 0, proc.stderr
    assert "build step 'generate' runs: its last run did not finish" in proc.stdout


def test_a_build_steps_stamp_says_unfinished_while_it_runs(tmp_path):
    # So a SIGKILL at any moment of the step leaves no stamp to skip it on.
    stamps = tmp_path / "stamps"
    step = cfg.BuildStep("gen", "cat {} > seen; exit 1".format(stamps / "gen"), ("*",))
    build._write_stamp(str(stamps), step, {"revision": "a" * 40, "definition": build._definition(step)})

    with open(os.devnull, "w") as sink, pytest.raises(CommandFailed):
        build.run_step(step, str(tmp_path), "b" * 40, str(stamps), out=sink)

    assert (tmp_path / "seen").read_text() == '{"unfinished": "' + "b" * 40 + '"}'
    [decision] = build.plan(None, [step], "a" * 40, str(stamps))
    assert decision.run and decision.reason.startswith("its last run did not finish")


# -- the checkout is exactly the candidate --------------------------------------------


def test_a_check_that_checks_out_another_revision_fails_the_run_and_is_named(make_project):
    project = make_project(config=Project.config(checks=["git checkout -q HEAD~1", "test -f app.txt"]))
    master = project.ref("master")
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    head, before = git(ws, "rev-parse", "HEAD"), project.refs()

    proc = project.fab(ws, "continuity.pipeline")

    assert_user_error(proc, "check 'git checkout -q HEAD~1' moved HEAD to {}".format(master[:12]),
                      "checks must leave the checkout as they found it", code=1)
    assert "check: $ test -f app.txt" not in proc.stdout
    assert project.refs() == before
    assert git(ws, "rev-parse", "HEAD") == head


def test_a_build_step_that_edits_tracked_files_fails_the_run_before_the_checks(make_project):
    project = make_project(config=Project.config(extra="""\
        build:
          - name: regenerate
            command: echo generated >> app.txt
        """))
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    before = project.refs()

    proc = project.fab(ws, "continuity.pipeline")

    assert_user_error(proc, "build step 'regenerate' (echo generated >> app.txt) changed tracked files: app.txt",
                      code=1)
    assert "check: $" not in proc.stdout
    assert project.refs() == before
    assert git(ws, "status", "--porcelain", "--untracked-files=no") == ""


def test_a_check_that_commits_fails_the_run_even_with_a_clean_tree(make_project):
    commit = "git -c user.name=x -c user.email=x@x commit -q --allow-empty -m sneaky"
    project = make_project(config=Project.config(checks=[commit]))
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    before = project.refs()

    proc = project.fab(ws, "continuity.pipeline")

    assert_user_error(proc, "check '{}' moved HEAD to".format(commit), code=1)
    assert project.refs() == before


def test_a_hotfix_check_that_moves_head_is_not_pushed(make_project):
    project = make_project(config=Project.config(checks=["git checkout -q HEAD~1"]))
    ws = project.workspace()
    assert project.fab(ws, "continuity.hotfix.start", "fix").returncode == 0
    project.push_to("hotfix/fix", "the fix", fix="x\n")
    before = project.refs()

    proc = project.fab(ws, "continuity.hotfix.finish", "fix")

    assert_user_error(proc, "check 'git checkout -q HEAD~1' moved HEAD to", code=1)
    assert project.refs() == before


def test_the_checkout_state_names_every_kind_of_change_to_tracked_files(tmp_path):
    git(tmp_path, "init", "--quiet")
    for name in ("a file.txt", "moved.txt", "staged.txt", "gone.txt"):
        (tmp_path / name).write_text(name + "\n")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "--quiet", "-m", "files")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert checkout_state(Git(str(tmp_path))) == (head, [])

    (tmp_path / "a file.txt").write_text("edited\n")
    git(tmp_path, "mv", "moved.txt", "renamed.txt")
    (tmp_path / "staged.txt").write_text("staged\n")
    git(tmp_path, "add", "staged.txt")
    (tmp_path / "gone.txt").unlink()
    (tmp_path / "untracked build output").write_text("ignored\n")

    assert checkout_state(Git(str(tmp_path))) == (head, ["a file.txt", "gone.txt", "renamed.txt", "staged.txt"])


# -- what is kept of the output ----------------------------------------------------


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


# -- JUnit and messages ------------------------------------------------------------------


def test_a_failing_build_step_is_a_failed_case_in_the_junit_report(make_project):
    project = make_project(config=Project.config(extra="""\
        junit: reports/junit.xml
        build:
          - name: compile
            command: echo compiler-error; exit 2
        """))
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()

    proc = project.fab(ws, "continuity.pipeline")

    assert proc.returncode == 1
    failure = cases(ws / "reports" / "junit.xml", "continuity.build")["compile"].find("failure")
    assert failure.get("message").startswith("build step 'compile' (echo compiler-error; exit 2) exited with code 2")
    assert "compiler-error" in failure.text


@pytest.mark.parametrize("kind, name, extra", [
    ("continuity.check", "exit 3", ""),
    ("continuity.build", "quiet", "build:\n  - {name: quiet, command: exit 3}\n"),
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


# -- hotfix.finish builds what changed, as the pipeline does ----------------------------


def test_hotfix_finish_runs_the_build_steps_whose_inputs_changed(make_project):
    project = make_project(config=Project.config(checks=["cmp app.txt out.txt"], extra="""\
        junit: reports/junit.xml
        build:
          - name: generate
            command: cp app.txt out.txt
            paths: [app.txt]
          - name: docs
            command: echo docs >> ../docs.runs
            paths: [docs]
        """))
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    assert project.fab(ws, "continuity.hotfix.start", "login").returncode == 0
    project.push_to("hotfix/login", "fix the login", **{"app.txt": "version 1, fixed\n"})

    plan = project.fab(ws, "continuity.hotfix.finish", "login", "--dry-run")
    proc = project.fab(ws, "continuity.hotfix.finish", "login")

    assert plan.returncode == 0, plan.stderr
    lines = [line for line in plan.stdout.splitlines() if line.startswith("continuity | plan: ")]
    assert lines[2:5] == [
        "continuity | plan: build step 'generate' would run: changed: app.txt",
        "continuity | plan: build step 'docs' would be skipped: no changes under docs",
        "continuity | plan: run 1 check(s) on {}".format(lines[0].split()[-1]),
    ]
    assert proc.returncode == 0, proc.stderr
    assert "build step 'generate' runs: changed: app.txt" in proc.stdout
    assert "build step 'docs' skipped: no changes under docs" in proc.stdout
    assert "build     ok" in proc.stdout
    assert (project.root / "docs.runs").read_text() == "docs\n"
    assert list(cases(ws / "reports" / "junit.xml", "continuity.build")) == ["generate"]


def test_a_hotfix_whose_build_fails_is_not_pushed(make_project):
    project = make_project(config=Project.config(extra="""\
        build:
          - name: compile
            command: grep -q broken app.txt && exit 1 || true
        """))
    ws = project.workspace()
    assert project.fab(ws, "continuity.hotfix.start", "bad").returncode == 0
    project.push_to("hotfix/bad", "broken fix", **{"app.txt": "broken\n"})
    before = project.refs()

    proc = project.fab(ws, "continuity.hotfix.finish", "bad")

    assert_user_error(proc, "build step 'compile'", code=1)
    assert project.refs() == before
