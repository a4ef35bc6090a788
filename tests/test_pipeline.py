"""`fab continuity.pipeline`, run as a user runs it: a subprocess in a Jenkins-like checkout."""

import os
import signal
import time

from conftest import Project, assert_user_error, git, wait_for, wait_ref


def test_a_fast_forward_advances_master_and_deploys_staging(project):
    dev = project.push_to("development", "feature", feature="new\n")
    ws = project.workspace()

    proc = project.fab(ws, "continuity.pipeline")

    assert proc.returncode == 0, proc.stderr
    assert project.ref("master") == dev
    assert project.deploys() == [["staging", dev, dev, dev]]
    assert project.ref("refs/continuity/deployed/staging") == dev
    for stage in ("preflight", "fetch", "merge", "check", "push", "deploy"):
        assert "continuity | {:<9} ok".format(stage) in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1].startswith("continuity | result: master advanced")


def test_a_diverged_master_gets_a_merge_commit_with_master_as_first_parent(project):
    base = project.push_to("master", "fix on master", fix="fix\n")
    dev = project.push_to("development", "feature", base="development", feature="new\n")
    ws = project.workspace()

    proc = project.fab(ws, "continuity.pipeline")

    assert proc.returncode == 0, proc.stderr
    merged = project.ref("master")
    assert git(project.origin, "rev-list", "--parents", "-n1", merged).split()[1:] == [base, dev]
    assert set(git(project.origin, "ls-tree", "--name-only", merged).split()) >= {"fix", "feature", "app.txt"}
    assert "merge commit" in proc.stdout
    assert project.deploys()[0][1] == merged


def test_nothing_to_do_exits_zero_quickly_and_deploys_nothing(project):
    ws = project.workspace()
    before = project.refs()

    proc = project.fab(ws, "continuity.pipeline")

    assert proc.returncode == 0, proc.stderr
    assert "nothing to do" in proc.stdout
    assert project.refs() == before
    assert project.deploys() == []


def test_the_checkout_is_left_where_it_was_with_no_local_branches(project):
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    head = git(ws, "rev-parse", "HEAD")

    assert project.fab(ws, "continuity.pipeline").returncode == 0

    assert git(ws, "rev-parse", "HEAD") == head
    assert git(ws, "for-each-ref", "refs/heads") == ""
    assert git(ws, "status", "--porcelain", "--untracked-files=no") == ""
    second = project.push_to("development", "more", more="y\n")
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    assert project.ref("master") == second


def test_a_conflict_names_the_files_and_changes_nothing(project):
    project.push_to("master", "master edits app", **{"app.txt": "from master\n"})
    project.push_to("development", "dev edits app", base="development", **{"app.txt": "from development\n"})
    ws = project.workspace()
    before, head = project.refs(), git(ws, "rev-parse", "HEAD")

    proc = project.fab(ws, "continuity.pipeline")

    assert proc.returncode == 1
    assert "conflicting files: app.txt" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert project.refs() == before
    assert git(ws, "rev-parse", "HEAD") == head
    assert not (ws / ".git" / "MERGE_HEAD").exists()
    assert git(ws, "status", "--porcelain") == ""
    assert project.deploys() == []


def test_a_failing_check_stops_the_run_shows_the_output_and_leaves_master_alone(make_project):
    project = make_project(config=Project.config(checks=["test -f app.txt", "echo the-widget-broke; exit 3"]))
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    before = project.refs()

    proc = project.fab(ws, "continuity.pipeline")

    assert proc.returncode == 1
    assert "echo the-widget-broke; exit 3" in proc.stderr
    assert "exited with code 3" in proc.stderr
    assert "the-widget-broke" in proc.stderr
    assert "master untouched" in proc.stdout
    assert project.refs() == before
    assert project.deploys() == []


def test_a_hung_check_is_killed_with_its_children_and_reported(make_project, tmp_path):
    pidfile = tmp_path / "child.pid"
    hang = "sleep 300 & echo $! > {}; wait".format(pidfile)
    project = make_project(config="continuity:\n  checks:\n    - command: '{}'\n      timeout: 1\n".format(hang))
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    before = project.refs()

    start = time.monotonic()
    proc = project.fab(ws, "continuity.pipeline")

    assert proc.returncode == 1
    assert time.monotonic() - start < 30
    assert "timed out after 1s" in proc.stderr
    child = int(pidfile.read_text())
    assert not _alive(child), "the check's child process outlived the timeout"
    assert project.refs() == before


def test_a_master_that_moved_during_the_checks_is_merged_again_and_retested(make_project, tmp_path):
    marker, counter = tmp_path / "moved", tmp_path / "checks.count"
    mover = tmp_path / "developer2"
    move_master = (
        "echo x >> {counter}; "
        "if [ ! -e {marker} ]; then touch {marker}; "
        "git clone -q {origin} {mover} && cd {mover} && echo hotfix > hotfix && git add hotfix && "
        "git commit -qm 'pushed while the pipeline tested' && git push -q origin HEAD:master; fi"
    ).format(counter=counter, marker=marker, origin=tmp_path / "origin.git", mover=mover)
    project = make_project(config=Project.config(checks=[move_master]))
    dev = project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()

    proc = project.fab(ws, "continuity.pipeline")

    assert proc.returncode == 0, proc.stderr
    moved = git(mover, "rev-parse", "HEAD")
    merged = project.ref("master")
    assert git(project.origin, "rev-list", "--parents", "-n1", merged).split()[1:] == [moved, dev]
    assert "moved while we were testing" in proc.stdout
    assert len(counter.read_text().split()) == 2, "the new candidate must be checked again"
    assert project.deploys()[0][1] == merged


def test_a_master_that_keeps_moving_is_never_overwritten(make_project, tmp_path):
    mover = tmp_path / "developer2"
    move_master = (
        "test -d {mover} || git clone -q {origin} {mover}; cd {mover} && git pull -q origin master && "
        "date +%s%N > moving && git add moving && git commit -qm moving && git push -q origin HEAD:master"
    ).format(origin=tmp_path / "origin.git", mover=mover)
    project = make_project(config=Project.config(checks=[move_master], extra="  max_attempts: 2\n"))
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()

    proc = project.fab(ws, "continuity.pipeline")

    assert_user_error(proc, "kept moving", "2 attempts", "nothing was pushed", code=1)
    assert project.ref("master") == git(mover, "rev-parse", "HEAD")
    assert project.deploys() == []


def test_our_own_error_raised_in_the_deploy_task_is_reported_by_its_message(make_project):
    fabfile = (
        "from fabric import task\nfrom invoke import Collection\nimport continuity\n"
        "from continuity.docker import tested_image\n\n"
        "@task\ndef deploy(c, environment, revision=None):\n    tested_image(c, revision)\n\n"
        "ns = Collection(deploy, continuity)\n")
    project = make_project(fabfile=fabfile)
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()

    proc = project.fab(ws, "continuity.pipeline")

    assert_user_error(proc, "deploy to staging failed: Docker is not configured: set continuity.docker.image", code=1)
    assert "Error:" not in proc.stderr  # neither UsageError nor ContinuityError
    ledger = git(project.origin, "log", "-1", "--format=%B", "refs/continuity/ledger/staging")
    assert "error: deploy to staging failed: Docker is not configured: set continuity.docker.image" in ledger


def test_a_failing_deploy_fails_the_run_after_master_advanced(project):
    dev = project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()

    proc = project.fab(ws, "continuity.pipeline", env={"DEPLOY_FAIL": "1"})

    assert proc.returncode == 1
    assert "deploy to staging failed: RuntimeError: the deploy script broke" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert project.ref("master") == dev
    assert project.ref("refs/continuity/deployed/staging") is None
    assert project.ref("refs/continuity/locks/deploy-staging") is None


def test_dry_run_prints_the_plan_and_changes_nothing(make_project):
    project = make_project(config=Project.config(extra="""\
          build:
            - name: assets
              command: touch built
              paths: [assets]
        """))
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    before = project.refs()

    proc = project.fab(ws, "continuity.pipeline", "--dry-run")

    assert proc.returncode == 0, proc.stderr
    assert "plan: merge development" in proc.stdout
    assert "plan: build step 'assets' would run" in proc.stdout
    assert "plan: check $ test -f app.txt" in proc.stdout
    assert "plan: deploy" in proc.stdout
    assert project.refs() == before
    assert project.deploys() == []
    assert not (ws / "built").exists()


def test_build_steps_run_only_when_their_paths_changed(make_project):
    project = make_project(config=Project.config(extra="""\
          build:
            - name: assets
              command: echo run >> ../assets.runs
              paths: [assets/]
            - name: docs
              command: echo run >> ../docs.runs
              paths: ["*.rst"]
        """))
    project.push_to("development", "first", **{"assets/a.css": "a\n"})
    ws = project.workspace()
    runs = lambda name: len((project.root / (name + ".runs")).read_text().split())  # noqa: E731

    first = project.fab(ws, "continuity.pipeline")
    assert first.returncode == 0, first.stderr
    assert "build step 'assets' runs: no earlier build in this workspace" in first.stdout
    assert runs("assets") == 1 and runs("docs") == 1

    project.push_to("development", "code only", **{"app.txt": "version 2\n"})
    second = project.fab(ws, "continuity.pipeline")
    assert second.returncode == 0, second.stderr
    assert "build step 'assets' skipped: no changes under assets/" in second.stdout
    assert runs("assets") == 1 and runs("docs") == 1

    project.push_to("development", "style", **{"assets/b.css": "b\n"})
    third = project.fab(ws, "continuity.pipeline")
    assert third.returncode == 0, third.stderr
    assert "build step 'assets' runs: changed: assets/b.css" in third.stdout
    assert runs("assets") == 2 and runs("docs") == 1


def test_a_failing_build_leaves_master_alone(make_project):
    project = make_project(config=Project.config(extra="""\
          build:
            - name: compile
              command: echo compiler-error; false
        """))
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    before = project.refs()

    proc = project.fab(ws, "continuity.pipeline")

    assert proc.returncode == 1
    assert "build step 'compile' (echo compiler-error; false) exited with code 1" in proc.stderr
    assert "compiler-error" in proc.stderr
    assert project.refs() == before


def test_checks_and_deploy_see_the_revision(make_project, tmp_path):
    seen = tmp_path / "seen"
    project = make_project(config=Project.config(checks=["echo $CONTINUITY_REVISION $CONTINUITY_BASE > {}".format(seen)]))
    base = project.ref("master")
    dev = project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()

    assert project.fab(ws, "continuity.pipeline").returncode == 0

    assert seen.read_text().split() == [dev, base]
    environment, argument, variable, checked_out = project.deploys()[0]
    assert argument == variable == checked_out == dev


def test_settings_from_environment_variables(project, tmp_path):
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    env = {
        "FABRIC_CONTINUITY_CHECKS": "test -f feature\ntouch {}".format(tmp_path / "checked"),
        "FABRIC_CONTINUITY_AUTO_DEPLOY": "qa, staging",
    }

    proc = project.fab(ws, "continuity.pipeline", env=env)

    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "checked").exists()
    assert [d[0] for d in project.deploys()] == ["qa", "staging"]


def test_no_auto_deploy_needs_no_deploy_task(make_project):
    project = make_project(fabfile="from invoke import Collection\nimport continuity\nns = Collection(continuity)\n",
                           config=Project.config(extra="  auto_deploy: []\n"))
    dev = project.push_to("development", "feature", feature="x\n")

    proc = project.fab(project.workspace(), "continuity.pipeline")

    assert proc.returncode == 0, proc.stderr
    assert project.ref("master") == dev
    assert "deploy    skipped" in proc.stdout


def test_sigterm_stops_the_run_cleans_up_and_pushes_nothing(make_project, tmp_path):
    started = tmp_path / "started"
    project = make_project(config=Project.config(checks=["touch {}; sleep 60".format(started)]))
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    head, before = git(ws, "rev-parse", "HEAD"), project.refs()

    proc = project.popen(ws, "continuity.pipeline")
    wait_for(started)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)

    assert proc.returncode == 143, (out, err)
    assert "terminated" in err
    assert project.refs() == before
    assert git(ws, "rev-parse", "HEAD") == head


def test_a_lock_left_by_a_killed_deploy_is_taken_over(project, tmp_path):
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    proc = project.popen(ws, "continuity.pipeline", env={"DEPLOY_SLEEP": "60"})
    wait_ref(project, "refs/continuity/locks/deploy-staging", proc)
    proc.kill()
    proc.wait()
    assert project.ref("refs/continuity/locks/deploy-staging") is not None

    dev = project.push_to("development", "another", another="y\n")
    again = project.fab(project.workspace(), "continuity.pipeline")

    assert again.returncode == 0, again.stderr
    assert "held by a run that is gone" in again.stdout
    assert project.deploys()[-1][1] == dev
    assert project.ref("refs/continuity/locks/deploy-staging") is None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open("/proc/{}/stat".format(pid)) as f:
        return f.read().split()[2] != "Z"


def test_a_check_that_edits_tracked_files_fails_the_run_and_does_not_jam_the_next_one(make_project):
    # Issue 8 changed this: such a check used to pass (and the edited tree was
    # what the later checks saw); now it fails the run, and the checkout is put
    # back so the next run fails for the same reason, not for a dirty checkout.
    project = make_project(config=Project.config(checks=["echo scribble >> app.txt"]))
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace(sha=project.ref("master"))
    before = project.refs()

    first = project.fab(ws, "continuity.pipeline")

    assert_user_error(first, "check 'echo scribble >> app.txt' changed tracked files: app.txt", code=1)
    assert project.refs() == before
    assert git(ws, "status", "--porcelain", "--untracked-files=no") == ""
    again = project.fab(ws, "continuity.pipeline")
    assert_user_error(again, "check 'echo scribble >> app.txt' changed tracked files: app.txt", code=1)


def test_a_failing_deploy_command_is_named_in_the_error(make_project):
    fabfile = (
        "from fabric import task\nfrom invoke import Collection\nimport continuity\n\n"
        "@task\ndef deploy(c, environment):\n    c.run('exit 23', in_stream=False)\n\n"
        "ns = Collection(deploy, continuity)\n"
    )
    project = make_project(fabfile=fabfile)
    project.push_to("development", "feature", feature="x\n")

    proc = project.fab(project.workspace(), "continuity.pipeline")

    assert proc.returncode == 1
    assert "deploy to staging failed: command 'exit 23' exited with code 23" in proc.stderr


def test_checks_see_the_submodules_the_candidate_names(make_project, tmp_path, clean_env):
    (clean_env / ".gitconfig").write_text((clean_env / ".gitconfig").read_text() + "[protocol \"file\"]\n\tallow = always\n")
    lib = tmp_path / "lib"
    git(tmp_path, "init", "--quiet", str(lib))
    (lib / "version.txt").write_text("lib v1\n")
    git(lib, "add", "-A")
    git(lib, "commit", "--quiet", "-m", "v1")
    seen = tmp_path / "seen"
    project = make_project(config=Project.config(checks=["cat lib/version.txt >> {}".format(seen)]))
    git(project.dev, "submodule", "--quiet", "add", str(lib), "lib")
    git(project.dev, "commit", "--quiet", "-m", "add lib")
    git(project.dev, "push", "--quiet", "origin", "HEAD:refs/heads/master", "HEAD:refs/heads/development")
    (lib / "version.txt").write_text("lib v2\n")
    git(lib, "commit", "--quiet", "-am", "v2")
    git(project.dev / "lib", "pull", "--quiet", "origin", "master")
    git(project.dev, "commit", "--quiet", "-am", "lib v2")
    git(project.dev, "push", "--quiet", "origin", "HEAD:refs/heads/development")
    ws = project.workspace(sha=project.ref("master"))
    git(ws, "submodule", "--quiet", "update", "--init")

    proc = project.fab(ws, "continuity.pipeline")

    assert proc.returncode == 0, proc.stderr
    assert seen.read_text() == "lib v2\n"
    assert (ws / "lib" / "version.txt").read_text() == "lib v1\n", "the checkout is put back, submodules too"
