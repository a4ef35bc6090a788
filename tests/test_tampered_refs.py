"""Refs under refs/continuity/ that something other than continuity wrote."""

import re
import shlex
import subprocess

import pytest

from conftest import assert_user_error, git


def _blob(project, text="junk"):
    return subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=project.origin, input=text,
                          capture_output=True, text=True, check=True).stdout.strip()


def _hinted(stderr):
    """The `fab ...` command a message tells the user to run, as a list of arguments."""
    return shlex.split(re.search(r"`fab ([^`]+)`", stderr).group(1))


def test_a_pipeline_lock_that_is_not_a_lock_is_refused_at_once_with_a_command_that_removes_it(project):
    project.push_to("development", "feature", **{"a.txt": "x\n"})
    git(project.origin, "update-ref", "refs/continuity/locks/pipeline", _blob(project))
    master = project.ref("master")
    ws = project.workspace()

    proc = project.fab(ws, "continuity.pipeline", timeout=60)  # lock_timeout is 600 s: no waiting

    assert_user_error(proc, "refs/continuity/locks/pipeline on origin is not a continuity lock (a blob)")
    assert project.ref("master") == master
    listing = project.fab(ws, "continuity.locks")
    assert "not a continuity lock (a blob)" in listing.stdout and "held by nobody" in listing.stdout
    removed = project.fab(ws, *_hinted(proc.stderr), "--yes")
    assert removed.returncode == 0, removed.stderr
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    assert project.ref("master") == project.ref("development")


def test_a_deploy_lock_that_is_not_a_lock_stops_the_deploy_and_says_how_to_deploy_again(project):
    project.push_to("development", "feature", **{"a.txt": "x\n"})
    git(project.origin, "update-ref", "refs/continuity/locks/deploy-staging", project.ref("master"))
    ws = project.workspace()

    proc = project.fab(ws, "continuity.pipeline", timeout=60)

    assert_user_error(proc, "not a continuity lock (a commit that is not a continuity lock token)",
                      "once fixed, `fab continuity.deploy staging` deploys")
    assert project.ref("master") == project.ref("development")  # checked and pushed before the deploy
    assert project.deploys() == []
    assert project.fab(ws, *_hinted(proc.stderr.split("; once fixed")[0]), "--yes").returncode == 0
    redeploy = project.fab(ws, *_hinted(proc.stderr.split("; once fixed")[1]))
    assert redeploy.returncode == 0, redeploy.stderr
    assert [entry[0] for entry in project.deploys()] == ["staging"]


# -- an annotated tag, and refs nested under a name continuity needs ---------------


def test_a_lock_that_is_an_annotated_tag_is_listed_once_as_not_a_lock_and_unlock_removes_it(project):
    git(project.origin, "tag", "-a", "-m", "t", "tagx", "master")
    git(project.origin, "update-ref", "refs/continuity/locks/pipeline", git(project.origin, "rev-parse", "tagx"))
    ws = project.workspace()

    listing = project.fab(ws, "continuity.locks")

    assert listing.returncode == 0, listing.stderr
    assert "^{}" not in listing.stdout
    assert [line.split()[0] for line in listing.stdout.splitlines() if not line.startswith(" ")] == ["pipeline"]
    assert "not a continuity lock (a tag)" in listing.stdout
    assert "fab continuity.unlock pipeline" in listing.stdout
    removed = project.fab(ws, "continuity.unlock", "pipeline", "--yes")
    assert removed.returncode == 0, removed.stderr
    assert project.ref("refs/continuity/locks/pipeline") is None


def test_a_ref_nested_under_the_pipeline_lock_is_refused_with_one_line_and_the_command_that_removes_it(project):
    project.push_to("development", "feature", **{"a.txt": "x\n"})
    git(project.origin, "update-ref", "refs/continuity/locks/pipeline/x", project.ref("master"))
    master = project.ref("master")
    ws = project.workspace()

    proc = project.fab(ws, "continuity.pipeline", timeout=60)

    assert_user_error(proc, "refs/continuity/locks/pipeline/x exists under it",
                      "`git push origin --delete refs/continuity/locks/pipeline/x`")
    assert "cannot lock ref" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert project.ref("master") == master
    assert project.refs().count("refs/continuity/") == 1  # nothing of ours left behind
    repair = re.search(r"`(git push [^`]+)`", proc.stderr).group(1)
    git(ws, *shlex.split(repair)[1:])
    again = project.fab(ws, "continuity.pipeline")
    assert again.returncode == 0, again.stderr
    assert project.ref("master") == project.ref("development")


def test_unlock_removes_a_ref_nested_under_a_lock_as_locks_lists_it(project):
    git(project.origin, "update-ref", "refs/continuity/locks/pipeline/x", project.ref("master"))
    ws = project.workspace()

    listing = project.fab(ws, "continuity.locks")

    assert "fab continuity.unlock pipeline/x" in listing.stdout, listing.stdout
    assert project.fab(ws, "continuity.unlock", "pipeline/x", "--yes").returncode == 0
    assert project.ref("refs/continuity/locks/pipeline/x") is None


@pytest.mark.parametrize("kind", ["deployed", "ledger"])
def test_a_ref_nested_under_an_environments_record_stops_the_pipeline_before_master_moves(project, kind):
    project.push_to("development", "feature", **{"a.txt": "x\n"})
    nested = "refs/continuity/{}/staging/x".format(kind)
    git(project.origin, "update-ref", nested, project.ref("master"))
    master = project.ref("master")
    ws = project.workspace()

    proc = project.fab(ws, "continuity.pipeline", timeout=60)

    assert_user_error(proc, "the ledger of staging on origin is damaged: {} is nested under".format(nested),
                      "`git push origin --delete {}`".format(nested))
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert project.ref("master") == master and project.deploys() == []
    assert_user_error(project.fab(ws, "continuity.history", "staging"), nested + " is nested under")
    assert_user_error(project.fab(ws, "continuity.deploy", "staging"), nested + " is nested under")
    assert project.deploys() == []
    repair = re.search(r"`(git push [^`]+)`", proc.stderr).group(1)
    git(ws, *shlex.split(repair)[1:])
    again = project.fab(ws, "continuity.pipeline")
    assert again.returncode == 0, again.stderr
    assert [entry[:2] for entry in project.deploys()] == [["staging", project.ref("master")]]
    assert project.ref("refs/continuity/deployed/staging") == project.ref("master")
    assert project.ref("master") == project.ref("development")


def test_a_ref_nested_under_a_named_lines_ledger_is_reported_by_status(make_project):
    from conftest import Project

    project = make_project(config=Project.config(extra="lines:\n  '1.x': {}\n"))
    git(project.dev, "push", "--quiet", "origin", "HEAD:refs/heads/master-1.x", "HEAD:refs/heads/development-1.x",
        "HEAD:refs/heads/production-1.x")
    nested = "refs/continuity/lines/1.x/ledger/qa/x"
    git(project.origin, "update-ref", nested, project.ref("master"))
    ws = project.workspace()

    proc = project.fab(ws, "continuity.status", "--line", "1.x")

    assert_user_error(proc, "the ledger of qa on origin is damaged: {} is nested under".format(nested))
    assert "qa           ledger damaged" in proc.stdout
    assert project.fab(ws, "continuity.status").returncode == 0  # the default line is not concerned
