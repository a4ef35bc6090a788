"""A ledger on the remote that someone damaged: found before anything deploys, repaired as printed."""

import re
import shlex
import subprocess

from conftest import Project, assert_user_error, git

QA = "environments:\n  qa: {}\n"


def _deployed_project(make_project):
    """A project whose pipeline deployed one feature to staging, with a qa environment."""
    project = make_project(config=Project.config(extra=QA))
    dev = project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    return project, ws, dev


def _push_blob(project, ref):
    blob = git(project.dev, "hash-object", "-w", "--stdin")
    git(project.dev, "push", "--quiet", "origin", "+{}:{}".format(blob, ref))
    return blob


def _run_repair(ws, message):
    """Run the command between backticks after "repair it ... with" exactly as printed."""
    command = re.search(r"repair it from this checkout with `([^`]+)`", message).group(1)
    proc = subprocess.run(shlex.split(command), cwd=ws, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, (command, proc.stderr)
    return command


def test_a_ledger_that_is_not_a_commit_stops_the_deploy_before_it_runs_and_the_printed_repair_works(make_project):
    project, ws, dev = _deployed_project(make_project)
    assert project.fab(ws, "continuity.deploy", "qa").returncode == 0
    blob = _push_blob(project, "refs/continuity/ledger/qa")
    before, deploys = project.refs(), project.deploys()

    proc = project.fab(ws, "continuity.deploy", "qa", "--revision", dev)
    history = project.fab(ws, "continuity.history", "qa")

    assert_user_error(proc, "the ledger of qa on origin is damaged", "refs/continuity/ledger/qa is a blob",
                      blob[:12], "git push origin --delete refs/continuity/ledger/qa")
    assert project.refs() == before and project.deploys() == deploys, "nothing deployed, nothing recorded"
    assert_user_error(history, "the ledger of qa on origin is damaged")
    assert "no deploys" not in history.stdout

    _run_repair(ws, proc.stderr)
    again = project.fab(ws, "continuity.deploy", "qa", "--revision", dev)

    assert again.returncode == 0, again.stderr
    assert project.deploys()[-1][:2] == ["qa", dev]
    assert git(project.origin, "cat-file", "-t", "refs/continuity/ledger/qa") == "commit"
    assert "deployed" in project.fab(ws, "continuity.history", "qa").stdout


def test_a_deployed_ref_that_is_a_tag_is_repaired_without_losing_anything(make_project):
    project, ws, dev = _deployed_project(make_project)
    git(project.dev, "fetch", "--quiet", "origin")
    git(project.dev, "tag", "-a", "-m", "oops", "oops", dev)
    git(project.dev, "push", "--quiet", "origin", "+refs/tags/oops:refs/continuity/deployed/staging")
    history_before = project.fab(ws, "continuity.history", "staging")

    proc = project.fab(ws, "continuity.rollback", "staging", "--revision", dev + "~1")

    assert_user_error(proc, "refs/continuity/deployed/staging is a tag",
                      "git push origin +{}:refs/continuity/deployed/staging".format(dev))
    _run_repair(ws, proc.stderr)
    assert project.ref("refs/continuity/deployed/staging") == dev
    assert_user_error(history_before, "damaged")
    assert project.fab(ws, "continuity.history", "staging").stdout.count("deployed") == 1


def test_the_pipeline_refuses_a_damaged_ledger_before_master_moves(make_project):
    project, ws, dev = _deployed_project(make_project)
    _push_blob(project, "refs/continuity/deployed/staging")
    project.push_to("development", "second", second="y\n")
    before, deploys = project.refs(), project.deploys()

    dry = project.fab(ws, "continuity.pipeline", "--dry-run")
    proc = project.fab(ws, "continuity.pipeline")

    assert_user_error(dry, "refs/continuity/deployed/staging is a blob")
    assert_user_error(proc, "refs/continuity/deployed/staging is a blob",
                      "git push origin --delete refs/continuity/deployed/staging")
    assert project.refs() == before and project.deploys() == deploys
    _run_repair(ws, proc.stderr)
    after = project.fab(ws, "continuity.pipeline")
    assert after.returncode == 0, after.stderr
    assert project.ref("refs/continuity/deployed/staging") == project.ref("master")


def test_status_lists_every_environment_and_names_the_damaged_ledger(make_project):
    project, ws, dev = _deployed_project(make_project)
    _push_blob(project, "refs/continuity/lines/1.x/ledger/staging-1.x")
    _push_blob(project, "refs/continuity/ledger/qa")

    proc = project.fab(ws, "continuity.status")

    assert_user_error(proc, "the ledger of qa on origin is damaged")
    assert "qa           ledger damaged" in proc.stdout
    assert "staging      runs {}".format(dev[:12]) in proc.stdout
    assert "^{}" not in proc.stdout


def test_a_hotfix_that_deploys_refuses_a_damaged_ledger_before_production_moves(make_project):
    project = make_project(config=Project.config(extra="hotfix:\n  deploy: true\n"))
    ws = project.workspace()
    assert project.fab(ws, "continuity.hotfix.start", "fix").returncode == 0
    project.push_to("hotfix/fix", "the fix", fix="1\n")
    _push_blob(project, "refs/continuity/ledger/production")
    before = project.refs()

    proc = project.fab(ws, "continuity.hotfix.finish", "fix")

    assert_user_error(proc, "refs/continuity/ledger/production is a blob")
    assert project.refs() == before
