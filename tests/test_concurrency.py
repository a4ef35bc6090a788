"""Two Jenkins agents at once: the invariant holds, nothing older is deployed over newer."""


from invoke import Context

from conftest import Project, git, wait_for
from continuity.config import Environment, parse
from continuity.deploy import deploy_revision
from continuity.git import Git


def test_two_runs_of_the_same_change_push_once_and_deploy_once(make_project):
    project = make_project(config=Project.config(checks=["sleep 1"]))
    dev = project.push_to("development", "feature", feature="x\n")
    first, second = project.workspace(), project.workspace()

    runs = [project.popen(first, "continuity.pipeline"), project.popen(second, "continuity.pipeline")]
    results = [(run.wait(timeout=120), *run.communicate()) for run in runs]

    assert [code for code, _, _ in results] == [0, 0], results
    assert project.ref("master") == dev
    assert [d[1] for d in project.deploys()] == [dev]
    assert any("nothing to do" in out or "pushed by another run" in out for _, out, _ in results)


def test_two_pipelines_on_one_remote_are_serialized_by_the_lock(make_project, tmp_path):
    in_check = tmp_path / "in-check"
    project = make_project(config=Project.config(checks=["touch {}; sleep ${{CHECK_SLEEP:-0}}".format(in_check)]))
    older = project.push_to("development", "older", older="1\n")
    slow = project.popen(project.workspace(older), "continuity.pipeline", env={"CHECK_SLEEP": "2"})
    wait_for(in_check)

    newer = project.push_to("development", "newer", newer="2\n")
    fast = project.fab(project.workspace(newer), "continuity.pipeline")
    slow_out, slow_err = slow.communicate(timeout=120)

    assert fast.returncode == 0, fast.stderr
    assert slow.returncode == 0, slow_err
    assert "waiting for lock refs/continuity/locks/pipeline held by pid {}".format(slow.pid) in fast.stdout
    assert project.ref("master") == newer
    assert [d[1] for d in project.deploys()] == [older, newer]
    assert project.ref("refs/continuity/locks/pipeline") is None


def test_an_older_revision_is_not_deployed_over_a_recorded_newer_one(project, monkeypatch):
    older = project.push_to("development", "older", older="1\n")
    newer = project.push_to("development", "newer", newer="2\n")
    git(project.dev, "push", "--quiet", "origin", newer + ":refs/continuity/deployed/staging")
    ws = project.workspace()
    monkeypatch.chdir(ws)
    called = []

    result = deploy_revision(
        Context(), lambda c, environment: called.append(environment), Git(ws), parse({}),
        Environment("staging"), older, say=lambda text: None,
    )

    assert result.startswith("skipped: staging already runs")
    assert called == []
    assert project.ref("refs/continuity/deployed/staging") == newer
    assert project.ref("refs/continuity/locks/deploy-staging") is None

