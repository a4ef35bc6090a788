"""How many connections each task makes to the remote: one read, and the pushes the invariant needs.

Counted with wrapper scripts around git upload-pack / receive-pack (see
tests/roundtrips.py), so that a task that starts talking to the remote more
often fails here. docs/performance.rst says what each connection is for.
"""

import os
import signal
import subprocess

import pytest
from roundtrips import Connections, git_commands, traced_env

from conftest import FAB, Output, Project, git, wait_for
from continuity import push
from continuity.config import parse
from continuity.git import Git, RefUpdate
from continuity.lock import HeldLock, push_coordinated, remote_lock
from continuity.record import start_record
from continuity.remote import read_remote
from continuity.report import Reporter
from continuity.stage import Attempt, Candidate, perform
from continuity.workspace import open_workspace

HOTFIX = """\
hotfix:
  deploy: true
"""


@pytest.fixture
def counted(make_project, tmp_path):
    """(project, workspace, Connections) with staging in auto_deploy and hotfixes that deploy."""
    project = make_project(config=Project.config(extra=HOTFIX))
    ws = project.workspace()
    return project, ws, Connections(ws, tmp_path)


def _run(project, ws, connections, *args, code=0, env=None):
    connections.reset()
    proc = project.fab(ws, *args, env=env)
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    return connections.counts(), proc


def _fast_forward(project, ws, connections):
    project.push_to("development", "feature", feature="x\n")
    counts, _ = _run(project, ws, connections, "continuity.pipeline")
    return counts


def test_a_no_op_pipeline_makes_one_connection_and_takes_no_lock(counted):
    project, ws, connections = counted

    counts, proc = _run(project, ws, connections, "continuity.pipeline")

    assert "nothing to do" in proc.stdout
    assert counts == {"upload-pack": 1, "receive-pack": 0}
    assert "lock" not in proc.stdout


def test_a_fast_forward_with_a_deploy_makes_one_read_and_three_pushes(counted):
    project, ws, connections = counted

    # the read; the pipeline lock; master + deploy lock + intent + the pipeline lock's release; outcome + release
    assert _fast_forward(project, ws, connections) == {"upload-pack": 1, "receive-pack": 3}
    assert project.ref("refs/continuity/locks/pipeline") is None
    assert project.ref("refs/continuity/locks/deploy-staging") is None
    assert project.ref("refs/continuity/deployed/staging") == project.ref("master")


def test_a_merge_commit_brings_development_along_in_the_master_push(counted):
    project, ws, connections = counted
    project.push_to("master", "fix on master", fix="1\n")
    project.push_to("development", "feature", base="development", feature="x\n")

    counts, proc = _run(project, ws, connections, "continuity.pipeline")

    assert counts == {"upload-pack": 1, "receive-pack": 3}
    assert project.ref("development") == project.ref("master")
    assert "development brought to master" in proc.stdout


def test_a_failing_check_reads_locks_and_releases(make_project, tmp_path):
    project = make_project(config=Project.config(checks=["false"]))
    ws = project.workspace()
    connections = Connections(ws, tmp_path)
    project.push_to("development", "feature", feature="x\n")

    counts, _ = _run(project, ws, connections, "continuity.pipeline", code=1)

    assert counts == {"upload-pack": 1, "receive-pack": 2}
    assert project.ref("refs/continuity/locks/pipeline") is None


def test_a_dry_run_reads_without_writing_a_ref(counted):
    project, ws, connections = counted
    project.push_to("development", "feature", feature="x\n")

    # ls-remote (no local ref may move), then the objects it lacks
    counts, _ = _run(project, ws, connections, "continuity.pipeline", "--dry-run")

    assert counts == {"upload-pack": 2, "receive-pack": 0}


def test_promote_deploy_and_rollback_make_one_read_and_two_pushes(counted):
    project, ws, connections = counted
    _fast_forward(project, ws, connections)
    first = project.ref("master")
    project.push_to("development", "second", second="x\n")
    _fast_forward(project, ws, connections)

    promote, _ = _run(project, ws, connections, "continuity.promote", "--yes")
    deploy, _ = _run(project, ws, connections, "continuity.deploy", "staging", "--revision", first)
    rollback, _ = _run(project, ws, connections, "continuity.rollback", "staging")

    # the read; production moved + deploy lock + intent; outcome + deployed + release (+ the bad mark)
    assert promote == deploy == rollback == {"upload-pack": 1, "receive-pack": 2}
    assert project.ref("refs/continuity/deployed/staging") == project.ref("master")
    assert project.ref("refs/continuity/deployed/production") == project.ref("production") == project.ref("master")


def test_hotfix_finish_makes_one_read_and_two_pushes(counted):
    project, ws, connections = counted
    assert project.fab(ws, "continuity.hotfix.start", "quick").returncode == 0
    project.push_to("hotfix/quick", "quick fix", quick="1\n")

    # the read; production + development + deploy lock + intent; outcome + release + the branch's deletion
    counts, _ = _run(project, ws, connections, "continuity.hotfix.finish", "quick")

    assert counts == {"upload-pack": 1, "receive-pack": 2}
    assert project.ref("hotfix/quick") is None
    assert project.ref("refs/continuity/deployed/production") == project.ref("production")


def test_read_only_tasks_make_one_connection(counted):
    project, ws, connections = counted
    _fast_forward(project, ws, connections)

    for args in (["continuity.status"], ["continuity.history", "staging"], ["continuity.locks"]):
        counts, _ = _run(project, ws, connections, *args)
        assert counts == {"upload-pack": 1, "receive-pack": 0}, args


def test_unlock_reads_once_and_pushes_once(counted, tmp_path):
    project, ws, connections = counted
    token = git(project.dev, "commit-tree", "-m", "continuity lock\n\nlock: pipeline\npid: 1\nhost: elsewhere\n",
                git(project.dev, "hash-object", "-t", "tree", "-w", "/dev/null"))
    git(project.dev, "push", "--quiet", "origin", token + ":refs/continuity/locks/pipeline")

    counts, _ = _run(project, ws, connections, "continuity.unlock", "pipeline", "--yes")

    assert counts == {"upload-pack": 1, "receive-pack": 1}
    assert project.ref("refs/continuity/locks/pipeline") is None


def test_pipelines_start_few_local_git_processes(counted, tmp_path):
    project, ws, connections = counted
    noop, ff = tmp_path / "noop.trace", tmp_path / "ff.trace"

    _run(project, ws, connections, "continuity.pipeline", env=traced_env(noop))
    project.push_to("development", "feature", feature="x\n")
    _run(project, ws, connections, "continuity.pipeline", env=traced_env(ff))

    # measured: 4 and 29 (git 2.39; 5 of them record the check results). A no-op asks for the checkout's
    # root, the remote's URL, the fetch and the refs, nothing more; the bound on the other leaves a little
    # room, but a process per branch name, per ref or per question asked twice does not fit.
    assert git_commands(noop) <= 4
    assert git_commands(ff) <= 31


def test_status_asks_git_each_question_once(counted, tmp_path):
    project, ws, connections = counted
    _fast_forward(project, ws, connections)  # master tested and deployed to staging, production behind it
    trace = tmp_path / "status.trace"

    _, proc = _run(project, ws, connections, "continuity.status", env=traced_env(trace))

    assert "master has 1 commit(s) that production lacks" in proc.stdout
    assert "master       {}, tested".format(project.ref("master")[:12]) in proc.stdout
    assert "production   {}, not tested".format(project.ref("production")[:12]) in proc.stdout
    # measured: 10 with git 2.39. The checkout, the URL, the read, the refs; master's and production's
    # results (one listing, one batch read); each branch pair counted both ways at once; the commits
    # production lacks; each environment's last ledger entry.
    assert git_commands(trace) <= 10


# -- what the combined pushes keep -------------------------------------------------------


def test_a_run_killed_while_deploying_leaves_an_intent_that_history_shows_and_the_next_deploy_takes_over(
        counted, tmp_path):
    project, ws, connections = counted
    gate = tmp_path / "deploy-gate"
    dev = project.push_to("development", "feature", feature="x\n")
    run = project.popen(project.workspace(), "continuity.pipeline", env={"DEPLOY_GATE": str(gate)})
    wait_for(tmp_path / "deploy-gate.in")
    run.kill()  # kill -9: no cleanup at all
    run.communicate(timeout=60)

    history = project.fab(ws, "continuity.history", "staging")

    assert history.returncode == 0, history.stderr
    assert "deploying" in history.stdout and dev[:12] in history.stdout
    assert "(no outcome recorded: the run stopped)" in history.stdout
    assert project.ref("refs/continuity/locks/deploy-staging") is not None  # stranded, but its holder is gone
    counts, proc = _run(project, ws, connections, "continuity.deploy", "staging")
    assert "was held by a run that is gone" in proc.stdout
    assert counts == {"upload-pack": 1, "receive-pack": 2}  # taken over in the push that writes the intent
    assert project.ref("refs/continuity/deployed/staging") == dev
    assert project.ref("refs/continuity/locks/deploy-staging") is None
    shown = project.fab(ws, "continuity.history", "staging").stdout.splitlines()
    assert [line.split()[1] for line in shown[1:]] == ["deployed", "deploying"]


def test_a_manual_deploy_holding_the_lock_lets_the_pipeline_push_master_and_deploy_after_it(counted, tmp_path):
    project, ws, connections = counted
    gate = tmp_path / "deploy-gate"
    first = project.push_to("development", "first", first="1\n")
    assert project.fab(project.workspace(), "continuity.pipeline").returncode == 0
    manual = project.popen(project.workspace(), "continuity.deploy", "staging", "--revision",
                           git(project.dev, "rev-parse", first + "~1"), "--force",  # no check saw it
                           env={"DEPLOY_GATE": str(gate)})
    wait_for(tmp_path / "deploy-gate.in")
    newer = project.push_to("development", "newer", newer="2\n")

    pipeline = project.popen(ws, "continuity.pipeline")
    out = Output(pipeline.stdout)
    out.wait_for("waiting for lock refs/continuity/locks/deploy-staging")
    assert project.ref("master") == newer  # master did not wait for the deploy lock
    assert project.ref("refs/continuity/locks/pipeline") is None
    gate.touch()

    assert manual.wait(timeout=120) == 0, manual.stderr.read()
    assert pipeline.wait(timeout=120) == 0, pipeline.stderr.read()
    assert [d[1] for d in project.deploys()][-2:] == [git(project.dev, "rev-parse", first + "~1"), newer]
    assert project.ref("refs/continuity/deployed/staging") == newer
    assert project.ref("refs/continuity/locks/deploy-staging") is None


def test_a_ride_lands_atomically_with_the_push_or_not_at_all(project, monkeypatch):
    ws = project.workspace()
    monkeypatch.chdir(ws)
    settings = parse({})
    repo = Git(ws)
    master = project.ref("master")
    lock = HeldLock(repo, settings, "deploy-staging", say=lambda text: None)
    ride = RefUpdate("refs/continuity/results/run-1", master, "")
    stale = RefUpdate("refs/continuity/results/run-2", master, master)  # expects a ref that is not there

    refused = push_coordinated(repo, settings, [stale, ride], take=[(lock, "")])

    assert not refused.ok and refused.stale == {stale.ref}
    assert project.ref(ride.ref) is None and project.ref(lock.ref) is None and not lock.maybe_ours
    assert push_coordinated(repo, settings, [ride], take=[(lock, "")]).ok
    assert project.ref(ride.ref) == master and project.ref(lock.ref) == lock.token
    lock.rides.append(RefUpdate("refs/continuity/results/run-3", master, ""))
    lock.let_go()  # the ride goes with the release
    assert project.ref("refs/continuity/results/run-3") == master
    assert project.ref(lock.ref) is None


def test_the_pipeline_master_push_carries_what_a_stage_puts_on_it(project, monkeypatch):
    project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    monkeypatch.chdir(ws)
    settings = parse({"auto_deploy": []})
    rep = Reporter()
    record = start_record("pipeline", settings, revisions={"base": "", "development": "", "candidate": ""})
    workspace = open_workspace(".", settings.git_timeout)
    snapshot = read_remote(workspace.git, settings)
    base, development = snapshot.heads["master"], snapshot.heads["development"]
    results = RefUpdate("refs/continuity/results/pipeline", development, "")
    report = RefUpdate("refs/continuity/results/pipeline-report", development, "")

    def board(attempt):  # a stage's `board`: one ride with master, one with the lock's release
        attempt.rides.append(results)
        attempt.lock.rides.append(report)

    with remote_lock(workspace.git, settings, "pipeline", say=lambda text: None) as lock:
        attempt = Attempt(None, settings, workspace, rep, record, base=base, development=development, lock=lock,
                          snapshot=snapshot, boarding=[board],
                          candidate=Candidate(development, base, development, fast_forward=True))
        attempt.check_out()
        perform(push.STAGE, attempt)
        assert not lock.maybe_ours  # released in the same push

    assert project.ref("master") == development
    assert project.ref(results.ref) == project.ref(report.ref) == development
    assert project.ref(lock.ref) is None


_SLOW_MASTER = """\
#!/bin/sh
# The push that moves master waits in the remote (after the client sent it), once.
while read old new ref; do
  case "$ref" in
    refs/heads/master) if [ ! -f {gate} ]; then echo $PPID > {gate}.pid && touch {gate} && sleep 2; fi;;
  esac
done
exit 0
"""


def test_sigterm_during_the_combined_master_push_leaves_no_lock_and_an_intent_without_outcome(counted, tmp_path):
    project, ws, connections = counted
    dev = project.push_to("development", "feature", feature="x\n")
    gate = tmp_path / "in-receive"
    hook = project.origin / "hooks" / "pre-receive"
    hook.write_text(_SLOW_MASTER.format(gate=gate))
    hook.chmod(0o755)
    # The remote's side in a session of its own, as on a real server: our signal must not reach it.
    git(ws, "config", "remote.origin.receivepack", "setsid git receive-pack")
    run = subprocess.Popen([FAB, "continuity.pipeline"], cwd=ws, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for(gate)
    os.killpg(run.pid, signal.SIGTERM)
    out, err = run.communicate(timeout=120)

    assert run.returncode == 143, (out, err)
    assert "continuity: terminated (SIGTERM); cleaned up and stopped" in err, err
    assert "no longer ours" not in out + err
    assert project.ref("master") == dev  # the remote applied the push it had received
    assert project.ref("refs/continuity/locks/pipeline") is None  # released by that push
    assert project.ref("refs/continuity/locks/deploy-staging") is None  # taken by it, let go after it
    assert project.deploys() == []
    history = project.fab(ws, "continuity.history", "staging").stdout
    assert "deploying" in history and "(no outcome recorded: the run stopped)" in history


@pytest.mark.parametrize("args", [
    ["continuity.hotfix.start", "quick"],
    ["continuity.hotfix.finish", "quick"],
    ["continuity.promote", "--yes"],
    ["continuity.rollback", "staging"],
    ["continuity.pipeline", "--dry-run"],
])
def test_a_missing_branch_found_by_the_one_read_is_one_line_for_every_task(make_project, args):
    project = make_project(branches=("master", "development"))
    before = project.refs()

    proc = project.fab(project.workspace(), *args)

    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert "remote 'origin' has no branch 'production'; create it with `fab continuity.init`" in proc.stderr
    assert project.refs() == before
