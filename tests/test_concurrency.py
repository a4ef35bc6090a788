"""Two Jenkins agents at once: the invariant holds, nothing older is deployed over newer."""


from invoke import Context

from conftest import Output, Project, gated_check, git, wait_for
from continuity.config import Environment, parse
from continuity.deploy import deploy_revision
from continuity.git import Git


def _finish(proc, out=None):
    """Wait for a `Project.popen` run: (exit code, stdout, stderr)."""
    if out is None:
        stdout, stderr = proc.communicate(timeout=120)
        return proc.wait(), stdout, stderr
    stderr = proc.stderr.read()
    return proc.wait(timeout=120), out.text(), stderr


def test_two_runs_of_the_same_change_push_once_and_deploy_once(make_project, tmp_path):
    check, started, gate = gated_check(tmp_path)
    project = make_project(config=Project.config(checks=[check]))
    dev = project.push_to("development", "feature", feature="x\n")
    first = project.popen(project.workspace(), "continuity.pipeline", env={"CHECK_GATE": str(gate)})
    wait_for(started)  # the first run holds the lock and checks the change
    second = project.popen(project.workspace(), "continuity.pipeline")
    second_out = Output(second.stdout)
    second_out.wait_for("waiting for lock refs/continuity/locks/pipeline")

    gate.touch()
    results = [_finish(first), _finish(second, second_out)]

    assert [code for code, _, _ in results] == [0, 0], results
    assert project.ref("master") == dev
    assert [d[1] for d in project.deploys()] == [dev]
    assert any("nothing to do" in out or "pushed by another run" in out for _, out, _ in results)


def test_two_pipelines_on_one_remote_are_serialized_by_the_lock(make_project, tmp_path):
    check, started, gate = gated_check(tmp_path)
    project = make_project(config=Project.config(checks=[check]))
    older = project.push_to("development", "older", older="1\n")
    slow = project.popen(project.workspace(older), "continuity.pipeline", env={"CHECK_GATE": str(gate)})
    wait_for(started)

    newer = project.push_to("development", "newer", newer="2\n")
    fast = project.popen(project.workspace(newer), "continuity.pipeline")
    fast_out = Output(fast.stdout)
    fast_out.wait_for("waiting for lock refs/continuity/locks/pipeline held by pid {}".format(slow.pid))
    gate.touch()
    (slow_code, _, slow_err), (fast_code, _, fast_err) = _finish(slow), _finish(fast, fast_out)

    assert fast_code == 0, fast_err
    assert slow_code == 0, slow_err
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

