"""Every user mistake: one clear line, a non-zero exit, nothing changed.

A wrong setting is found while the settings are read, before anything runs:
those cases read the settings as fab would (`fab_settings`, in process), and
a handful still go through ``fab`` for the user's contract (fabric.yaml and
FABRIC_* variables in, ``continuity: error: ...`` on one line and exit code 2
out, no traceback, no ref changed). Mistakes found later (git, the fabfile,
the remote) all go through ``fab``.
"""

import pytest

from conftest import Project, assert_user_error, fab_settings, git, run_fab
from continuity.errors import ConfigError


def setting_error(tmp_path, yaml, task="continuity.status"):
    """The one-line message fab would print for ``fabric.yaml`` = ``yaml`` (after ``continuity: error:``)."""
    (tmp_path / "fabric.yaml").write_text(yaml)
    with pytest.raises(ConfigError) as info:
        fab_settings(tmp_path, task=task)
    assert info.value.exit_code == 2
    message = str(info.value)
    assert "\n" not in message, message
    return message


def assert_refused_by_fab(project, task, *phrases):
    """Through fab: one line on stderr, exit code 2, no traceback, no ref changed."""
    before = project.refs()
    proc = project.fab(project.workspace(), task)
    assert_user_error(proc, *phrases)
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert project.refs() == before
    return proc


def test_a_missing_deploy_task_is_named_before_anything_changes(make_project):
    project = make_project(fabfile="from invoke import Collection\nimport continuity\nns = Collection(continuity)\n")
    project.push_to("development", "feature", feature="x\n")
    before = project.refs()

    proc = project.fab(project.workspace(), "continuity.pipeline")

    assert_user_error(proc, "no 'deploy' task found in your fabfile", "ns = Collection(deploy, continuity)")
    assert project.refs() == before


def test_an_unknown_setting_is_named_with_the_closest_known_key(make_project):
    project = make_project(config="continuity:\n  chekcs:\n    - 'true'\n")
    project.push_to("development", "feature", feature="x\n")

    assert_refused_by_fab(project, "continuity.pipeline", "continuity.chekcs: unknown setting; did you mean 'checks'?")


def test_an_unknown_branch_role_is_named(tmp_path):
    message = setting_error(tmp_path, "continuity:\n  branches:\n    staging: qa\n")
    assert "continuity.branches.staging: unknown setting" in message


@pytest.mark.parametrize(
    "yaml, message",
    [
        ("  checks: make test\n  max_attempts: zero\n", "continuity.max_attempts must be a whole number, got 'zero'"),
        ("  check_timeout: -1\n", "continuity.check_timeout must be a positive number of seconds"),
        ("  auto_deploy: ['prod uction']\n", "'prod uction' is not an environment name"),
        ("  checks: [{cmd: 'true'}]\n", "continuity.checks[1].cmd: unknown setting; did you mean 'command'?"),
        ("  build: [{name: a, command: 'true', paths: []}]\n", "continuity.build[1].paths must be a non-empty list"),
        ("  remote: ''\n", "continuity.remote must be a non-empty string"),
        ("  heartbeat: -1\n", "continuity.heartbeat must be a number of seconds from 1 to a week, or 0 for no "
                              "heartbeat lines, got -1"),
        ("  heartbeat: soon\n", "continuity.heartbeat must be a number of seconds from 1 to a week, or 0 for no "
                                "heartbeat lines, got 'soon'"),
    ],
)
def test_wrong_values_are_explained(tmp_path, yaml, message):
    assert message in setting_error(tmp_path, "continuity:\n" + yaml, task="continuity.pipeline")


def test_a_bad_environment_variable_is_a_clear_error(project):
    proc = project.fab(project.workspace(), "continuity.pipeline", env={"FABRIC_CONTINUITY_MAX_ATTEMPTS": "many"})
    assert_user_error(proc, "continuity.max_attempts must be a whole number, got 'many'")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_bad_heartbeat_from_the_environment_is_one_line_and_changes_nothing(project):
    project.push_to("development", "feature", feature="x\n")
    before = project.refs()
    proc = project.fab(project.workspace(), "continuity.pipeline", env={"FABRIC_CONTINUITY_HEARTBEAT": "-5"})
    assert_user_error(proc, "continuity.heartbeat must be a number of seconds from 1 to a week, or 0 for no "
                            "heartbeat lines, got '-5'")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert project.refs() == before


def test_a_bad_environment_variable_is_read_as_fab_reads_it(tmp_path, monkeypatch):
    monkeypatch.setenv("FABRIC_CONTINUITY_MAX_ATTEMPTS", "many")
    message = setting_error(tmp_path, Project.config(), task="continuity.pipeline")
    assert "continuity.max_attempts must be a whole number, got 'many'" in message


def test_a_missing_branch_points_to_init(make_project):
    project = make_project(branches=("master", "development"))
    before = project.refs()

    proc = project.fab(project.workspace(), "continuity.pipeline")

    assert_user_error(proc, "remote 'origin' has no branch 'production'", "fab continuity.init")
    assert project.refs() == before


def test_an_unreachable_remote_is_explained(project, tmp_path):
    ws = project.workspace()
    git(ws, "remote", "set-url", "origin", str(tmp_path / "gone.git"))

    proc = project.fab(ws, "continuity.pipeline")

    assert_user_error(proc, "cannot reach remote 'origin'", "git remote -v")


def test_an_unknown_remote_is_explained(make_project):
    project = make_project(config=Project.config(extra="remote: upstream\n"))
    proc = project.fab(project.workspace(), "continuity.pipeline")
    assert_user_error(proc, "remote 'upstream' is not configured in this checkout (remotes: origin)")


def test_an_invalid_branch_name_is_refused(project):
    env = {"FABRIC_CONTINUITY_BRANCHES_MASTER": "bad..name"}
    proc = project.fab(project.workspace(), "continuity.pipeline", env=env)
    assert_user_error(proc, "continuity.branches.master: 'bad..name' is not a valid git branch name")


def test_running_outside_a_checkout_is_explained(project, tmp_path):
    elsewhere = tmp_path / "not-a-repo"
    elsewhere.mkdir()
    (elsewhere / "fabfile.py").write_text((project.dev / "fabfile.py").read_text())

    proc = run_fab(elsewhere, "continuity.pipeline")

    assert_user_error(proc, "is not inside a git checkout")


def test_uncommitted_changes_are_not_overwritten(project):
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    (ws / "app.txt").write_text("my local edit\n")
    before = project.refs()

    proc = project.fab(ws, "continuity.pipeline")

    assert_user_error(proc, "uncommitted changes to tracked files (app.txt)")
    assert "lock" not in proc.stdout  # refused before taking the pipeline lock
    assert (ws / "app.txt").read_text() == "my local edit\n"
    assert project.refs() == before


def test_a_run_with_nothing_to_do_leaves_a_dirty_checkout_alone(project):
    ws = project.workspace()
    (ws / "app.txt").write_text("my local edit\n")

    proc = project.fab(ws, "continuity.pipeline")

    assert proc.returncode == 0, proc.stderr
    assert "nothing to do" in proc.stdout
    assert (ws / "app.txt").read_text() == "my local edit\n"
    dry = project.fab(ws, "continuity.pipeline", "--dry-run")
    assert dry.returncode == 0 and "nothing to do" in dry.stdout, dry.stderr
    project.push_to("development", "feature", feature="x\n")  # with work, a dry run refuses as a run does
    assert_user_error(project.fab(ws, "continuity.pipeline", "--dry-run"), "uncommitted changes to tracked files")


def test_running_with_hosts_is_refused_with_advice(project):
    proc = project.fab(project.workspace(), "-H", "127.0.0.1", "continuity.pipeline")
    assert_user_error(proc, "drop -H/--hosts")


def test_a_hostile_branch_name_is_data_not_a_command(make_project, tmp_path):
    hostile = "dev$(touch${IFS}pwned)`touch${IFS}pwned2`;touch${IFS}pwned3"
    project = make_project(branches=("master", hostile, "production"))
    env = {"FABRIC_CONTINUITY_BRANCHES_DEVELOPMENT": hostile}
    dev = project.push_to(hostile, "feature", feature="x\n")
    ws = project.workspace(sha=dev)

    proc = project.fab(ws, "continuity.pipeline", env=env)
    status = project.fab(ws, "continuity.status", env=env)

    assert proc.returncode == 0, proc.stderr
    assert project.ref("master") == dev
    assert status.returncode == 0, status.stderr
    assert hostile in status.stdout
    for place in (ws, tmp_path, project.dev):
        assert not any(p.name.startswith("pwned") for p in place.rglob("pwned*")), place


def test_a_branch_name_git_branch_refuses_is_refused_before_init_creates_anything(make_project):
    project = make_project(config=Project.config(extra="branches:\n  development: HEAD\n"), branches=("master",))
    before = project.refs()
    ws = project.workspace(sha=project.ref("master"))

    for env in ({}, {"FABRIC_CONTINUITY_BRANCHES_DEVELOPMENT": "-x"}, {"FABRIC_CONTINUITY_BRANCHES_DEVELOPMENT": "@"}):
        proc = project.fab(ws, "continuity.init", env=env)
        name = env.get("FABRIC_CONTINUITY_BRANCHES_DEVELOPMENT", "HEAD")
        assert_user_error(proc, "continuity.branches.development: {!r} is not a valid git branch name".format(name))
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    env = {"FABRIC_CONTINUITY_BRANCHES_DEVELOPMENT": "development", "FABRIC_CONTINUITY_BRANCHES_PRODUCTION": "--force"}
    assert_user_error(project.fab(ws, "continuity.pipeline", env=env),
                      "continuity.branches.production: '--force' is not a valid git branch name")
    assert project.refs() == before


@pytest.mark.parametrize("yaml, message", [
    ("  branches: [a]\n", "continuity.branches must be a mapping"),
    ("  build: {name: a}\n", "continuity.build must be a list of steps, got dict"),
    ("  branches:\n    master: refs/heads/master\n", "write the short branch name ('master')"),
    ("  lines:\n    main: {}\n", "'main' is the name of the default line"),
    ("  lines:\n    'a/b': {}\n", "'a/b' is not an environment name"),
    ("  hotfix:\n    tag: 'v{nam}'\n", "may only use the placeholder {name}"),
])
def test_wrong_shapes_are_one_line_not_a_traceback(tmp_path, yaml, message):
    assert message in setting_error(tmp_path, "continuity:\n" + yaml)


def test_an_empty_remote_says_to_push_master_first(tmp_path):
    origin, ws = tmp_path / "origin.git", tmp_path / "ws"
    git(tmp_path, "init", "--quiet", "--bare", str(origin))
    git(tmp_path, "clone", "--quiet", str(origin), str(ws))
    (ws / "fabfile.py").write_text("from invoke import Collection\nimport continuity\nns = Collection(continuity)\n")
    (ws / "fabric.yaml").write_text("continuity:\n  auto_deploy: []\n")
    for task in ("continuity.status", "continuity.pipeline", "continuity.init"):
        assert_user_error(run_fab(ws, task), "has no 'master' branch", "git push origin HEAD:refs/heads/master")


def test_status_piped_into_head_ends_quietly(project):
    import subprocess

    ws = project.workspace()
    pipeline = "{} continuity.status | head -1".format(" ".join([__import__("conftest").FAB]))
    proc = subprocess.run(["sh", "-c", pipeline], cwd=ws, capture_output=True, text=True)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.stdout.startswith("continuity | development")


@pytest.mark.parametrize("yaml, message", [
    ("  remote: '--upload-pack=touch${IFS}pwned'\n", "is not a remote name"),
    ("  auto_deploy: ['staging.']\n", "'staging.' is not an environment name"),
    ("  max_attempts: .inf\n", "continuity.max_attempts must be a whole number"),
    ("  git_timeout: 1e7\n", "up to a week"),
    ("  line: [a]\n", "continuity.line must be the name of a line"),
])
def test_values_that_would_reach_git_badly_are_refused_up_front(yaml, message, tmp_path):
    assert message in setting_error(tmp_path, "continuity:\n" + yaml, task="continuity.pipeline")
    assert not list(tmp_path.rglob("pwned*"))


def test_fab_refuses_a_remote_that_would_be_a_git_option_and_runs_nothing(make_project, tmp_path):
    project = make_project(config="continuity:\n  remote: '--upload-pack=touch${IFS}pwned'\n")
    assert_refused_by_fab(project, "continuity.pipeline", "is not a remote name")
    assert not list(tmp_path.rglob("pwned*"))


def test_a_deploy_task_without_an_environment_argument_is_refused_before_anything_moves(make_project):
    fabfile = ("from fabric import task\nfrom invoke import Collection\nimport continuity\n\n"
               "@task\ndef deploy(c):\n    pass\n\nns = Collection(deploy, continuity)\n")
    project = make_project(fabfile=fabfile)
    project.push_to("development", "feature", feature="x\n")
    before = project.refs()
    assert_user_error(project.fab(project.workspace(), "continuity.pipeline"), "takes no 'environment' argument")
    assert project.refs() == before


def test_a_deploy_task_that_calls_sys_exit_fails_the_deploy(make_project):
    fabfile = ("import sys\nfrom fabric import task\nfrom invoke import Collection\nimport continuity\n\n"
               "@task\ndef deploy(c, environment):\n    sys.exit(3)\n\nns = Collection(deploy, continuity)\n")
    project = make_project(fabfile=fabfile)
    project.push_to("development", "feature", feature="x\n")
    proc = project.fab(project.workspace(), "continuity.pipeline")
    assert_user_error(proc, "deploy to staging failed: the task exited with 3", code=1)


def test_a_push_refused_by_a_server_hook_says_what_the_server_said(project):
    hook = project.origin / "hooks" / "pre-receive"
    dev_commit = project.commit("feature", feature="x\n")
    hook.write_text("#!/bin/sh\nwhile read old new ref; do case $ref in refs/heads/master) "
                    "echo 'master is frozen for the release' >&2; exit 1;; esac; done\nexit 0\n")
    hook.chmod(0o755)
    git(project.dev, "push", "--quiet", "origin", "HEAD:refs/heads/development")
    proc = project.fab(project.workspace(), "continuity.pipeline")
    assert_user_error(proc, "origin refused the push", "master is frozen for the release", code=1)
    assert project.ref("master") != dev_commit


def test_a_shallow_clone_is_explained(project, tmp_path):
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "--quiet", "--depth", "1", "file://" + str(project.origin), str(shallow))
    assert_user_error(project.fab(shallow, "continuity.pipeline"), "shallow clone", "git fetch --unshallow")


def test_annotate_refuses_field_names_that_would_forge_the_ledger():
    from continuity.deploy import annotate
    from continuity.errors import UsageError

    with pytest.raises(UsageError):
        annotate(**{"note\nrevision": "0" * 40})
    with pytest.raises(UsageError):
        annotate(revision="0" * 40)


def test_lines_must_be_a_mapping(tmp_path):
    assert "continuity.lines must be a mapping" in setting_error(tmp_path, "continuity:\n  lines: []\n")


def test_a_stuck_lock_file_on_the_remote_is_an_error_not_a_moving_master(project):
    project.push_to("development", "feature", feature="x\n")
    (project.origin / "refs" / "heads" / "master.lock").write_text("")
    before = project.ref("master")

    proc = project.fab(project.workspace(), "continuity.pipeline")

    assert_user_error(proc, "cannot lock ref", code=1)
    assert "kept moving" not in proc.stderr
    assert project.ref("master") == before


@pytest.mark.parametrize("yaml", ["continuity: []\n", "continuity: hello\n"])
def test_a_continuity_setting_that_is_not_a_mapping_is_one_line(tmp_path, yaml):
    assert "must be a mapping" in setting_error(tmp_path, yaml)


def test_fab_says_in_one_line_that_the_continuity_setting_must_be_a_mapping(make_project):
    project = make_project(config="continuity: []\n")
    assert_refused_by_fab(project, "continuity.status", "must be a mapping")
