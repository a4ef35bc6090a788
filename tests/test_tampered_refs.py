"""Refs under refs/continuity/ that something other than continuity wrote."""

import re
import shlex
import subprocess

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
