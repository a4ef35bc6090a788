"""promote, hotfix, rollback, deploy, history: the week's tasks, run as a user runs them."""

import os
import signal

import pytest

from conftest import Output, Project, assert_user_error, git, wait_for, wait_ref

ENVIRONMENTS = """\
environments:
  qa: {}
hotfix:
  tag: "hotfix-{name}"
  deploy: true
"""


def _released(make_project, checks=("test -f app.txt",)):
    """A project whose pipeline has put one feature on master and staging."""
    project = make_project(config=Project.config(checks=checks, extra=ENVIRONMENTS))
    dev = project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    proc = project.fab(ws, "continuity.pipeline")
    assert proc.returncode == 0, proc.stderr
    return project, ws, dev


def _all_refs(project, ws):
    return project.refs(), git(ws, "for-each-ref", "--format=%(refname) %(objectname)"), git(ws, "rev-parse", "HEAD")


# -- promote ----------------------------------------------------------------------


def test_promote_fast_forwards_production_and_deploys_it(make_project):
    project, ws, dev = _released(make_project)

    proc = project.fab(ws, "continuity.promote", "--yes")

    assert proc.returncode == 0, proc.stderr
    assert project.ref("production") == dev
    assert project.deploys()[-1][:2] == ["production", dev]
    assert project.ref("refs/continuity/deployed/production") == dev
    assert "plan: move production" in proc.stdout and "1 commit(s)" in proc.stdout
    again = project.fab(ws, "continuity.promote", "--yes")
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_promote_asks_for_confirmation_and_needs_yes_without_a_terminal(make_project):
    project, ws, dev = _released(make_project)
    before = project.refs()

    proc = project.fab(ws, "continuity.promote")

    assert_user_error(proc, "pass --yes")
    assert project.refs() == before


def test_promote_refuses_a_production_with_commits_master_lacks(make_project):
    project, ws, dev = _released(make_project)
    stray = project.push_to("production", "urgent fix pushed straight to production", urgent="!\n")
    before = project.refs()

    proc = project.fab(ws, "continuity.promote", "--yes")

    assert_user_error(proc, "production has 1 commit(s) that master lacks", stray[:12],
                      "Merge production into development")
    assert project.refs() == before


def test_promote_can_take_an_earlier_revision_of_master(make_project):
    project, ws, first = _released(make_project)
    project.push_to("development", "second", second="y\n")
    assert project.fab(ws, "continuity.pipeline").returncode == 0

    proc = project.fab(ws, "continuity.promote", "--yes", "--revision", first)

    assert proc.returncode == 0, proc.stderr
    assert project.ref("production") == first
    older = project.fab(ws, "continuity.promote", "--yes", "--revision", project.ref("master") + "~2")
    assert_user_error(older, "promote only moves it forward", "fab continuity.rollback production")


def test_promote_refuses_a_revision_that_is_not_on_master(make_project):
    project, ws, dev = _released(make_project)
    elsewhere = project.push_to("development", "untested", untested="z\n")
    proc = project.fab(project.workspace(), "continuity.promote", "--yes", "--revision", elsewhere)
    assert_user_error(proc, "is not on master")


# -- hotfix ----------------------------------------------------------------------


def test_a_hotfix_goes_to_production_and_development_tagged_and_deployed(make_project):
    project, ws, dev = _released(make_project)
    assert project.fab(ws, "continuity.promote", "--yes").returncode == 0

    start = project.fab(ws, "continuity.hotfix.start", "login")
    assert start.returncode == 0, start.stderr
    assert project.ref("hotfix/login") == dev
    fix = project.push_to("hotfix/login", "fix the login", login="fixed\n")
    later = project.push_to("development", "unrelated work", other="w\n")

    proc = project.fab(ws, "continuity.hotfix.finish", "login")

    assert proc.returncode == 0, proc.stderr
    assert project.ref("production") == fix
    merged = project.ref("development")
    assert git(project.origin, "rev-list", "--parents", "-n1", merged).split()[1:] == [later, fix]
    assert project.ref("refs/tags/hotfix-login") == fix
    assert project.ref("hotfix/login") is None
    assert project.deploys()[-1][:2] == ["production", fix]
    assert "unrelated" not in git(project.origin, "log", "--format=%s", "production")


def test_a_hotfix_conflict_stops_with_nothing_pushed_and_finish_resumes_after_the_fix(make_project):
    project, ws, dev = _released(make_project)
    project.fab(ws, "continuity.hotfix.start", "app")
    fix = project.push_to("hotfix/app", "fix app", **{"app.txt": "version 1, fixed\n"})
    project.push_to("development", "rework app", base="development", **{"app.txt": "version 2\n"})
    before = project.refs()

    proc = project.fab(ws, "continuity.hotfix.finish", "app")

    assert_user_error(proc, "'hotfix/app' does not merge cleanly into 'development'", "app.txt",
                      "Merge 'hotfix/app' into 'development' by hand", code=1)
    assert project.refs() == before
    # The developer resolves by merging the hotfix into development by hand.
    git(project.dev, "fetch", "--quiet", "origin")
    git(project.dev, "checkout", "--quiet", "--detach", "origin/development")
    git(project.dev, "merge", "--quiet", "origin/hotfix/app", check=False)
    project.write("app.txt", "version 2, fixed\n")
    git(project.dev, "commit", "--quiet", "-am", "merge the hotfix into development")
    git(project.dev, "push", "--quiet", "origin", "HEAD:refs/heads/development")
    resolved = project.ref("development")

    again = project.fab(ws, "continuity.hotfix.finish", "app")

    assert again.returncode == 0, again.stderr
    assert "plan: development already has hotfix/app" in again.stdout
    assert project.ref("production") == fix
    assert project.ref("development") == resolved
    assert project.ref("hotfix/app") is None


def test_a_hotfix_that_fails_its_checks_is_not_pushed(make_project):
    project, ws, dev = _released(make_project, checks=["test ! -f broken"])
    project.fab(ws, "continuity.hotfix.start", "oops")
    project.push_to("hotfix/oops", "a broken fix", broken="yes\n")
    before = project.refs()

    proc = project.fab(ws, "continuity.hotfix.finish", "oops")

    assert_user_error(proc, "check 'test ! -f broken' exited with code 1", code=1)
    assert project.refs() == before
    git(project.dev, "rm", "--quiet", "broken")
    git(project.dev, "commit", "--quiet", "-m", "really fix it")
    git(project.dev, "push", "--quiet", "origin", "HEAD:refs/heads/hotfix/oops")
    assert project.fab(ws, "continuity.hotfix.finish", "oops").returncode == 0
    assert project.ref("hotfix/oops") is None


def test_finishing_an_unknown_hotfix_is_explained(project):
    proc = project.fab(project.workspace(), "continuity.hotfix.finish", "nope")
    assert_user_error(proc, "no branch hotfix/nope on origin")


# -- rollback, deploy, history ------------------------------------------------------------


def test_rollback_after_two_deploys_restores_the_first_and_marks_the_second_bad(make_project):
    project, ws, first = _released(make_project)
    second = project.push_to("development", "second", second="y\n")
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    assert project.ref("refs/continuity/deployed/staging") == second

    proc = project.fab(ws, "continuity.rollback", "staging")

    assert proc.returncode == 0, proc.stderr
    assert project.deploys()[-1][:2] == ["staging", first]
    assert project.ref("refs/continuity/deployed/staging") == first
    history = project.fab(ws, "continuity.history", "staging")
    lines = history.stdout.splitlines()
    assert lines[1].split()[1:4] == ["bad", second[:12], "rollback"]
    assert lines[2].split()[1:4] == ["deployed", first[:12], "rollback"]
    assert "(marked bad)" in lines[3] and second[:12] in lines[3]
    refused = project.fab(ws, "continuity.deploy", "staging", "--revision", second)
    assert_user_error(refused, "is marked bad for staging", "--force")
    forced = project.fab(ws, "continuity.deploy", "staging", "--revision", second, "--force")
    assert forced.returncode == 0, forced.stderr


def test_rollback_with_nothing_earlier_says_so(make_project):
    project, ws, first = _released(make_project)
    proc = project.fab(ws, "continuity.rollback", "staging")
    assert_user_error(proc, "no earlier good deploy of staging", "--revision")


def test_deploy_puts_master_on_any_configured_environment_and_records_it(make_project, monkeypatch):
    project, ws, dev = _released(make_project)
    monkeypatch.setenv("BUILD_URL", "https://jenkins.example/job/app/7/")

    proc = project.fab(ws, "continuity.deploy", "qa")

    assert proc.returncode == 0, proc.stderr
    assert project.deploys()[-1][:2] == ["qa", dev]
    history = project.fab(ws, "continuity.history", "qa").stdout
    assert "deployed" in history and "https://jenkins.example/job/app/7/" in history
    status = project.fab(ws, "continuity.status").stdout
    assert "qa           runs {}, 0 commit(s) behind master".format(dev[:12]) in status


def test_deploy_refuses_unknown_environments_and_production(make_project):
    project, ws, dev = _released(make_project)
    assert_user_error(project.fab(ws, "continuity.deploy", "moon"), "unknown environment 'moon'", "qa")
    assert_user_error(project.fab(ws, "continuity.deploy", "production"), "fab continuity.promote")


def test_a_failed_deploy_is_recorded_in_the_ledger(make_project):
    project, ws, dev = _released(make_project)
    proc = project.fab(ws, "continuity.deploy", "qa", env={"DEPLOY_FAIL": "1"})
    assert proc.returncode == 1
    history = project.fab(ws, "continuity.history", "qa").stdout
    assert history.splitlines()[1].split()[1:3] == ["failed", dev[:12]]
    assert project.ref("refs/continuity/deployed/qa") is None


def test_deploys_from_two_tasks_to_one_environment_wait_for_each_other(make_project, tmp_path):
    project, ws, dev = _released(make_project)
    gate = tmp_path / "deploy-gate"
    slow = project.popen(ws, "continuity.deploy", "qa", env={"DEPLOY_GATE": str(gate)})
    wait_for(tmp_path / "deploy-gate.in")  # the slow deploy holds the lock and runs

    fast = project.popen(project.workspace(), "continuity.deploy", "qa")
    fast_out = Output(fast.stdout)
    fast_out.wait_for("waiting for lock refs/continuity/locks/deploy-qa")
    gate.touch()
    slow.communicate(timeout=60)
    fast_err = fast.stderr.read()
    fast.wait(timeout=60)

    assert slow.returncode == 0 and fast.returncode == 0, fast_err
    assert "skipped: qa already runs" in fast_out.text()
    assert [d[0] for d in project.deploys()].count("qa") == 1


# -- dry runs ------------------------------------------------------------------------------


def test_dry_runs_change_no_ref_anywhere(make_project):
    project, ws, first = _released(make_project)
    project.push_to("development", "second", second="y\n")
    assert project.fab(ws, "continuity.hotfix.start", "dry").returncode == 0
    project.push_to("hotfix/dry", "a fix", dryfix="1\n")
    git(ws, "fetch", "--quiet", "origin")
    before, deploys = _all_refs(project, ws), project.deploys()

    for args in (
        ["continuity.pipeline"],
        ["continuity.promote"],
        ["continuity.hotfix.finish", "dry"],
        ["continuity.rollback", "staging", "--revision", first + "~1", "--force"],  # an untested revision
        ["continuity.deploy", "qa"],
        ["continuity.init"],
    ):
        proc = project.fab(ws, *args, "--dry-run")
        assert proc.returncode == 0, (args, proc.stderr)
        assert "plan" in proc.stdout or "nothing to do" in proc.stdout, (args, proc.stdout)
        assert _all_refs(project, ws) == before, args
    assert project.deploys() == deploys


# -- locks ----------------------------------------------------------------------------------


def test_a_killed_pipeline_leaves_a_lock_the_next_run_takes_over(make_project, tmp_path):
    started = tmp_path / "started"
    check = "echo $$ > {0}.tmp && mv {0}.tmp {0}; sleep ${{CHECK_SLEEP:-0}}".format(started)
    project = make_project(config=Project.config(checks=[check]))
    project.push_to("development", "feature", feature="x\n")
    killed = project.popen(project.workspace(), "continuity.pipeline", env={"CHECK_SLEEP": "60"})
    wait_ref(project, "refs/continuity/locks/pipeline", killed)
    wait_for(started)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    os.killpg(int(started.read_text()), signal.SIGKILL)  # the orphaned check (its own process group)

    proc = project.fab(project.workspace(), "continuity.pipeline")

    assert proc.returncode == 0, proc.stderr
    assert "held by a run that is gone (pid {}".format(killed.pid) in proc.stdout
    assert project.ref("refs/continuity/locks/pipeline") is None


def test_an_old_lock_from_another_machine_is_reported_stale_and_can_be_broken(make_project, tmp_path):
    project = make_project(config=Project.config(extra="lock_timeout: 1\nlock_stale_after: 60\n"))
    project.push_to("development", "feature", feature="x\n")
    tree = git(project.dev, "hash-object", "-t", "tree", "-w", "--stdin")
    token = git(project.dev, "commit-tree", tree, "-m",
                "continuity lock\n\nlock: pipeline\nhost: agent-7\npid: 4242\nstarted: 2026-01-01T00:00:00Z\n")
    git(project.dev, "push", "--quiet", "origin", token + ":refs/continuity/locks/pipeline")
    ws = project.workspace()

    blocked = project.fab(ws, "continuity.pipeline")
    listed = project.fab(ws, "continuity.locks")
    broken = project.fab(ws, "continuity.unlock", "pipeline", "--yes")
    after = project.fab(ws, "continuity.pipeline")

    assert_user_error(blocked, "pid 4242 on agent-7", "looks stale", "fab continuity.unlock pipeline", code=1)
    assert "pipeline" in listed.stdout and "agent-7" in listed.stdout
    assert broken.returncode == 0, broken.stderr
    assert after.returncode == 0, after.stderr


def test_unlock_of_a_lock_nobody_holds_is_explained(project):
    assert_user_error(project.fab(project.workspace(), "continuity.unlock", "pipeline", "--yes"), "no lock 'pipeline'")


# -- development lines -------------------------------------------------------------------------

LINES = """\
lines:
  "1.x":
    branches:
      development: development-1.x
      master: master-1.x
      production: production-1.x
    auto_deploy: [staging-1.x]
"""


def test_a_maintenance_line_has_its_own_branches_and_ledger(make_project, tmp_path):
    project = make_project(config=Project.config(extra=LINES))
    main_before = (project.ref("master"), project.ref("development"))
    git(project.dev, "push", "--quiet", "origin", "HEAD:refs/heads/master-1.x")
    ws = project.workspace()

    init = project.fab(ws, "continuity.init", "--line", "1.x")
    fix = project.push_to("development-1.x", "fix for 1.x", onex="1\n")
    proc = project.fab(ws, "continuity.pipeline", "--line", "1.x")

    assert init.returncode == 0, init.stderr
    assert proc.returncode == 0, proc.stderr
    assert project.ref("master-1.x") == fix
    assert (project.ref("master"), project.ref("development")) == main_before
    assert project.deploys()[-1][:2] == ["staging-1.x", fix]
    assert project.ref("refs/continuity/lines/1.x/deployed/staging-1.x") == fix
    assert project.ref("refs/continuity/deployed/staging-1.x") is None

    runtime = tmp_path / "line-1.x.yaml"
    runtime.write_text("continuity:\n  line: '1.x'\n")
    status = project.fab(ws, "-f", str(runtime), "continuity.status")
    assert "master-1.x" in status.stdout and "staging-1.x  runs" in status.stdout
    assert_user_error(project.fab(ws, "continuity.status", "--line", "2.x"), "unknown line '2.x'", "1.x")



def test_promote_notifies_like_the_pipeline(make_project, tmp_path):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:{}/hook".format(server.server_port)
    project, ws, dev = _released(make_project)
    env = {"FABRIC_CONTINUITY_NOTIFY_EVENTS": "deploy"}
    extra = "notify:\n  webhooks:\n    - url: {}\n".format(url)
    project.push_to("development", "notify config", **{"fabric.yaml": Project.config(extra=ENVIRONMENTS + extra)})
    ws = project.workspace()
    assert project.fab(ws, "continuity.pipeline", env=env).returncode == 0

    proc = project.fab(ws, "continuity.promote", "--yes", env=env)

    server.shutdown()
    assert proc.returncode == 0, proc.stderr
    assert [payload["task"] for payload in received] == ["pipeline", "promote"], received
    assert received[-1]["deployed"] == {"production": "deployed"}


def test_rollback_to_a_revision_that_was_never_tested_is_refused(make_project):
    project, ws, first = _released(make_project)
    untested = project.push_to("development", "untested", untested="z\n")
    proc = project.fab(project.workspace(), "continuity.rollback", "staging", "--revision", untested)
    assert_user_error(proc, "is on neither master nor production")


def test_a_hotfix_named_like_a_line_branch_is_refused(make_project):
    project = make_project(config=Project.config(extra="hotfix:\n  prefix: ''\n"))
    proc = project.fab(project.workspace(), "continuity.hotfix.finish", "development", "--dry-run")
    assert_user_error(proc, "'development' is one of the line's own branches")


def test_empty_sections_mean_the_defaults_and_false_means_false(make_project):
    project = make_project(config=Project.config(extra="hotfix:\nbranches:\n"))
    proc = project.fab(project.workspace(), "continuity.hotfix.start", "x", "--dry-run",
                       env={"FABRIC_CONTINUITY_HOTFIX_DEPLOY": "false"})
    assert proc.returncode == 0, proc.stderr
    from continuity.config import parse
    assert parse({"hotfix": {"deploy": "false"}}).hotfix.deploy is False
    assert parse({"hotfix": {"deploy": "yes"}}).hotfix.deploy is True


def test_promote_refuses_a_revision_marked_bad_and_says_to_fix_forward(make_project):
    project, ws, dev = _released(make_project)
    second = project.push_to("development", "second", second="y\n")
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    assert project.fab(ws, "continuity.promote", "--yes", "--revision", dev).returncode == 0
    assert project.fab(ws, "continuity.promote", "--yes").returncode == 0
    assert project.fab(ws, "continuity.rollback", "production").returncode == 0
    before = project.refs()

    proc = project.fab(ws, "continuity.promote", "--yes")

    assert_user_error(proc, "{} is marked bad for production".format(second[:12]), "fix forward")
    assert "--force" not in proc.stderr
    assert project.refs() == before


def test_a_failed_pipeline_deploy_says_how_to_deploy_again(make_project):
    project = make_project()
    dev = project.push_to("development", "feature", feature="x\n")
    proc = project.fab(project.workspace(), "continuity.pipeline", env={"DEPLOY_FAIL": "1"})
    assert_user_error(proc, "once fixed, `fab continuity.deploy staging` deploys " + dev[:12], code=1)


def test_deploy_takes_a_branch_name_as_the_revision(make_project):
    project, ws, dev = _released(make_project)
    proc = project.fab(project.workspace(), "continuity.deploy", "qa", "--revision", "master")
    assert proc.returncode == 0, proc.stderr
    assert project.deploys()[-1][:2] == ["qa", dev]


def test_production_in_auto_deploy_moves_the_production_branch_too(make_project):
    project = make_project(config=Project.config(extra="auto_deploy: [staging, production]\n"))
    dev = project.push_to("development", "feature", feature="x\n")
    proc = project.fab(project.workspace(), "continuity.pipeline")
    assert proc.returncode == 0, proc.stderr
    assert project.ref("production") == dev
    assert project.ref("refs/continuity/deployed/production") == dev


def test_a_hotfix_on_a_moved_production_still_lets_the_next_promote_fast_forward(make_project):
    project, ws, dev = _released(make_project)
    assert project.fab(ws, "continuity.promote", "--yes").returncode == 0
    assert project.fab(ws, "continuity.hotfix.start", "late").returncode == 0
    project.push_to("hotfix/late", "late fix", late="1\n")
    project.push_to("development", "more work", more="2\n")
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    assert project.fab(ws, "continuity.promote", "--yes").returncode == 0  # production moved past the hotfix's base

    finish = project.fab(ws, "continuity.hotfix.finish", "late")
    assert finish.returncode == 0, finish.stderr
    assert git(project.origin, "merge-base", "--is-ancestor", "production", "development") == ""
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    promote = project.fab(ws, "continuity.promote", "--yes")
    assert promote.returncode == 0, promote.stderr


def test_a_rollback_planned_on_one_revision_does_not_replace_another(make_project, monkeypatch):
    from invoke import Context

    from continuity.config import Environment, parse
    from continuity.deploy import DeployPolicy, deploy_revision
    from continuity.errors import ContinuityError
    from continuity.git import Git

    project, ws, first = _released(make_project)
    monkeypatch.chdir(ws)
    with pytest.raises(ContinuityError, match="changed while we waited"):
        deploy_revision(Context(), lambda c, environment: None, Git(ws), parse({}), Environment("staging"),
                        first, say=lambda text: None, policy=DeployPolicy.rollback("f" * 40))
    assert project.ref("refs/continuity/locks/deploy-staging") is None


def test_promote_after_a_hotfix_says_to_run_the_pipeline_first(make_project):
    project, ws, dev = _released(make_project)
    assert project.fab(ws, "continuity.promote", "--yes").returncode == 0
    assert project.fab(ws, "continuity.hotfix.start", "quick").returncode == 0
    project.push_to("hotfix/quick", "quick fix", quick="1\n")
    assert project.fab(ws, "continuity.hotfix.finish", "quick").returncode == 0

    proc = project.fab(ws, "continuity.promote", "--yes")

    assert_user_error(proc, "but development has them: run the pipeline")


def test_history_limit_takes_a_number(make_project):
    project, ws, dev = _released(make_project)
    assert project.fab(ws, "continuity.history", "staging", "--limit", "1").returncode == 0
    assert_user_error(project.fab(ws, "continuity.history", "staging", "--limit", "abc"), "--limit takes a whole number")


def test_a_ledger_that_cannot_be_written_does_not_hide_the_failed_deploy(make_project):
    project, ws, dev = _released(make_project)
    hook = project.origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\nwhile read old new ref; do case $ref in refs/continuity/ledger/*) "
                    "echo 'ledger writes are not allowed here' >&2; exit 1;; esac; done\nexit 0\n")
    hook.chmod(0o755)

    proc = project.fab(ws, "continuity.deploy", "qa", env={"DEPLOY_FAIL": "1"})

    assert_user_error(proc, "deploy to qa failed: RuntimeError: the deploy script broke", code=1)
    assert "could not record the failed deploy" in proc.stdout
