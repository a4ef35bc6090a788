"""`fab continuity.status` and `fab continuity.init`."""

from conftest import assert_user_error


def test_status_lists_what_each_branch_lacks(project):
    project.push_to("development", "first feature", one="1\n")
    second = project.push_to("development", "second feature", two="2\n")
    ws = project.workspace()

    proc = project.fab(ws, "continuity.status")

    assert proc.returncode == 0, proc.stderr
    assert "development has 2 commit(s) that master lacks:" in proc.stdout
    assert second[:12] + " second feature (Dev Eloper <dev@example.com>)" in proc.stdout
    assert "master has nothing that production lacks" in proc.stdout


def test_status_after_a_pipeline_shows_the_deployed_revision(project):
    dev = project.push_to("development", "feature", one="1\n")
    ws = project.workspace()
    assert project.fab(ws, "continuity.pipeline").returncode == 0

    proc = project.fab(ws, "continuity.status")

    assert "master has 1 commit(s) that production lacks:" in proc.stdout
    assert "staging      runs {}, 0 commit(s) behind master; last: deployed {}".format(dev[:12], dev[:12]) in proc.stdout


def test_status_names_a_missing_branch(make_project):
    project = make_project(branches=("master", "development"))
    proc = project.fab(project.workspace(), "continuity.status")
    assert "production   missing on origin" in proc.stdout
    assert_user_error(proc, "fab continuity.init")


def test_init_creates_the_missing_branches_from_master(make_project):
    project = make_project(branches=("master",))
    master = project.ref("master")
    ws = project.workspace(sha=master)

    proc = project.fab(ws, "continuity.init")

    assert proc.returncode == 0, proc.stderr
    assert "will create 'development', 'production' on origin at master's revision" in proc.stdout
    assert project.ref("development") == master
    assert project.ref("production") == master
    again = project.fab(ws, "continuity.init")
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_init_dry_run_creates_nothing(make_project):
    project = make_project(branches=("master",))
    before = project.refs()

    proc = project.fab(project.workspace(sha=project.ref("master")), "continuity.init", "--dry-run")

    assert proc.returncode == 0, proc.stderr
    assert "will create" in proc.stdout and "dry run" in proc.stdout
    assert project.refs() == before


def test_init_without_master_says_how_to_start(make_project):
    project = make_project(branches=("main",))
    proc = project.fab(project.workspace(sha=project.ref("main")), "continuity.init")
    assert_user_error(proc, "remote 'origin' has no 'master' branch", "continuity.branches.master")


def test_the_tasks_read_well_in_fab_list(project):
    proc = project.fab(project.dev, "--list")
    assert proc.returncode == 0, proc.stderr
    for name in ("continuity.pipeline", "continuity.status", "continuity.init"):
        assert name in proc.stdout
    help_text = project.fab(project.dev, "--help", "continuity.pipeline").stdout
    assert "--dry-run" in help_text and "print the plan" in help_text
