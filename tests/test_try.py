"""``fab continuity.try BRANCH [--land]``: check a branch merged into development before it lands."""

import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

from conftest import FAB, Output, assert_user_error, gated_check, git

RESULTS = "refs/continuity/results"


def _marking(tmp_path):
    """A check that appends to a file outside the checkout (the proof it ran) and needs app.txt to say 'good'."""
    mark = tmp_path / "check.ran"
    return "echo ran >> {} && grep -q good app.txt".format(mark), mark


def _project(make_project, tmp_path, command=None):
    command = command or _marking(tmp_path)[0]
    return make_project(config="continuity:\n  checks:\n    - name: app\n      command: '{}'\n".format(
        command.replace("'", "''")))


def _branch(project, name, text, base="development"):
    """Push a branch ``name`` made of one commit on ``base`` that writes ``text`` to app.txt."""
    git(project.dev, "fetch", "--quiet", "origin")
    git(project.dev, "checkout", "--quiet", "--detach", "origin/" + base, "--")
    sha = project.commit("work on " + name, **{"app.txt": text})
    git(project.dev, "push", "--quiet", "origin", "HEAD:refs/heads/" + name)
    return sha


def _runs(mark):
    return len(mark.read_text().splitlines()) if mark.exists() else 0


@pytest.mark.parametrize("ahead", ["", "development", "master"])
def test_a_passing_branch_is_tried_without_moving_anything_then_lands_and_the_pipeline_reuses_its_checks(
        make_project, tmp_path, ahead):
    """Nothing ahead (a fast-forward to the branch), development ahead of master (a merge commit on development),
    or master ahead of development (a merge commit on master, which development then fast-forwards to)."""
    command, mark = _marking(tmp_path)
    project = _project(make_project, tmp_path, command)
    tip = _branch(project, "feature/good", "good\n")
    if ahead:
        project.push_to(ahead, ahead + "'s own work", **{ahead + ".txt": "x\n"})
    first_parent = project.ref(ahead or "development")
    before = project.refs()
    ws = project.workspace()
    head = git(ws, "rev-parse", "HEAD")
    report = tmp_path / "junit.xml"

    proc = project.fab(ws, "continuity.try", "feature/good", "--junit", str(report))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert project.refs() == before  # nothing moved: only the results were recorded
    assert project.ref(RESULTS) is not None
    assert _runs(mark) == 1
    assert git(ws, "rev-parse", "HEAD") == head  # the checkout is put back
    assert "'feature/good' passed on development" in proc.stdout and "nothing moved" in proc.stdout
    suite = ET.parse(report).getroot()
    assert suite.get("name") == "continuity.try" and suite.get("failures") == "0"

    landed = project.fab(ws, "continuity.try", "feature/good", "--land")
    assert landed.returncode == 0, landed.stdout + landed.stderr
    assert _runs(mark) == 1  # the checks passed on that tree already: reused
    development = project.ref("development")
    assert git(project.origin, "merge-base", "--is-ancestor", tip, development) == ""
    if ahead:  # a merge commit, which names the branch
        assert git(project.origin, "log", "-1", "--format=%s", development) == \
            "Merge branch 'feature/good' into development"
        assert git(project.origin, "rev-parse", development + "^1") == first_parent
    else:
        assert development == tip
    assert "'feature/good' landed" in landed.stdout

    pipeline = project.fab(ws, "continuity.pipeline")
    assert pipeline.returncode == 0, pipeline.stdout + pipeline.stderr
    assert _runs(mark) == 1  # the tried tree is the tree the pipeline checks: not checked again
    assert project.ref("master") == development
    assert "reused, passed on tree" in pipeline.stdout


def test_a_failing_branch_moves_nothing_exits_1_and_is_not_landed(make_project, tmp_path):
    project = _project(make_project, tmp_path)
    _branch(project, "broken", "bad\n")
    before = project.refs()
    ws = project.workspace()
    proc = project.fab(ws, "continuity.try", "broken")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert project.refs() == before
    head = project.ref(RESULTS)
    files = git(project.origin, "ls-tree", "-r", "--name-only", head).splitlines()
    assert ["status: failed" in git(project.origin, "show", "{}:{}".format(head, f)) for f in files] == [True]

    landed = project.fab(ws, "continuity.try", "broken", "--land")
    assert landed.returncode == 1, landed.stdout + landed.stderr
    assert project.refs() == before
    assert "'broken' not landed" in landed.stdout


def test_development_moving_between_the_try_and_the_land_refuses_the_land_and_loses_nothing(make_project,
                                                                                            tmp_path):
    command, started, gate = gated_check(tmp_path)
    project = make_project(config="continuity:\n  checks:\n    - '{}'\n".format(command.replace("'", "''")))
    _branch(project, "feature", "good\n")
    ws = project.workspace()
    proc = subprocess.Popen([FAB, "continuity.try", "feature", "--land"], cwd=ws, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, CHECK_GATE=str(gate)))
    out = Output(proc.stdout)
    out.wait_for("check: $")
    other = project.push_to("development", "someone else's work", **{"other.txt": "theirs\n"})
    gate.touch()
    assert proc.wait(timeout=120) == 1
    text, err = out.text(), proc.stderr.read()
    proc.stderr.close()
    assert "development moved on origin since" in err and "try again" in err, err
    assert "Traceback" not in err
    assert project.ref("development") == other  # their work stands
    assert project.ref("feature") is not None
    assert "'feature' not landed" in text


@pytest.mark.parametrize("name", ["-x", "HEAD", "a..b", "a b", "@{-1}"])
def test_a_hostile_branch_name_is_refused_in_one_line(project, name):
    before = project.refs()
    proc = project.fab(project.workspace(), "continuity.try", "--branch=" + name)
    assert_user_error(proc, "is not a branch name git accepts")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert project.refs() == before and project.ref(RESULTS) is None


def test_a_missing_branch_is_one_line(project):
    before = project.refs()
    proc = project.fab(project.workspace(), "continuity.try", "nosuch")
    assert_user_error(proc, "remote 'origin' has no branch 'nosuch'; push it first")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert project.refs() == before and project.ref(RESULTS) is None


def test_a_branch_development_already_contains_is_nothing_to_try(project):
    git(project.dev, "push", "--quiet", "origin", "origin/development:refs/heads/old")
    before = project.refs()
    proc = project.fab(project.workspace(), "continuity.try", "old", "--land")
    assert_user_error(proc, "nothing to try: development already contains 'old'")
    assert project.refs() == before and project.ref(RESULTS) is None


def test_a_conflict_is_one_line_naming_the_files(make_project, tmp_path):
    project = _project(make_project, tmp_path)
    project.push_to("development", "development changes app.txt", **{"app.txt": "good, development's\n"})
    _branch(project, "clash", "good, the branch's\n", base="master")
    before = project.refs()
    proc = project.fab(project.workspace(), "continuity.try", "clash", "--land")
    assert_user_error(proc, "'clash' does not merge cleanly into 'development'; conflicting files: app.txt")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert project.refs() == before and project.ref(RESULTS) is None


def test_a_dry_run_plans_and_changes_nothing(make_project, tmp_path):
    command, mark = _marking(tmp_path)
    project = _project(make_project, tmp_path, command)
    _branch(project, "feature", "good\n")
    before = project.refs()
    proc = project.fab(project.workspace(), "continuity.try", "feature", "--land", "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "plan: check $" in proc.stdout and "plan: land: development" in proc.stdout
    assert project.refs() == before and project.ref(RESULTS) is None and _runs(mark) == 0
