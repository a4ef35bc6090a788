"""Locks on the remote: a lease that cannot be fooled by shared host names, an
interrupted acquisition that leaves nothing behind, and a listing that says
when a holder is gone."""

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import FAB, Output, Project, assert_user_error, git, wait_for, wait_ref
from continuity import config as cfg
from continuity import lock as lock_module
from continuity.errors import ConfigError
from continuity.git import Git

LOCK = "refs/continuity/locks/pipeline"


def _popen(ws, *args, env=None, new_session=False):
    return subprocess.Popen(
        [FAB, *args], cwd=ws, env=dict(os.environ, **(env or {})), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=new_session,
    )


def _unlock(project, name):
    """``fab continuity.unlock NAME --yes`` while its holder renews it (every third of the lease): the
    holder may renew between the unlock's read and its push, which then refuses ("changed hands
    meanwhile") as it should; on a loaded machine that happens, so try again, a few times."""
    for _ in range(5):
        broken = project.fab(project.workspace(), "continuity.unlock", name, "--yes")
        if "changed hands meanwhile" not in broken.stderr:
            return broken
    return broken


def _token_message(project, ref=LOCK):
    return git(project.origin, "log", "-1", "--format=%B", project.ref(ref))


def _gated_check(tmp_path):
    """A check that says it started, then waits until the test opens its gate."""
    started, gate = tmp_path / "in-check", tmp_path / "gate"
    return "touch {}; while [ ! -f {} ]; do sleep 0.05; done".format(started, gate), started, gate


# -- item 3: a live holder in another pid namespace keeps its lock ------------------------------


def _free_pid():
    """A process id that nothing uses in our pid namespace (the holder gets it in its own)."""
    with open("/proc/sys/kernel/pid_max") as handle:
        pid_max = int(handle.read())
    candidates = [pid for pid in range(pid_max // 2, pid_max - 10) if not os.path.exists("/proc/{}".format(pid))]
    return random.choice(candidates)


#: Run ARGV in a new pid namespace as process PID (ns_last_pid = PID - 1 before the fork).
_IN_NAMESPACE = """
import subprocess, sys
with open("/proc/sys/kernel/ns_last_pid", "w") as handle:
    handle.write(str(int(sys.argv[1]) - 1))
sys.exit(subprocess.call(sys.argv[2:]))
"""


def _can_unshare():
    if not shutil.which("unshare") or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True)
    return probe.returncode == 0


needs_namespaces = pytest.mark.skipif(not _can_unshare(), reason="needs root and unshare --pid (util-linux)")


@needs_namespaces
def test_a_live_holder_in_another_pid_namespace_with_our_host_name_is_not_taken_over(make_project, tmp_path):
    check, started, gate = _gated_check(tmp_path)
    project = make_project(config=Project.config(checks=[check], extra="lock_lease: 3\n"))
    older = project.push_to("development", "older", older="1\n")
    pid = _free_pid()
    holder = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", _IN_NAMESPACE, str(pid), FAB,
         "continuity.pipeline"],
        cwd=project.workspace(older), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_ref(project, LOCK, holder)
        wait_for(started)
        first_token = project.ref(LOCK)
        token = _token_message(project)
        assert "pid: {}\n".format(pid) in token and "host: {}\n".format(socket.gethostname()) in token
        assert not os.path.exists("/proc/{}".format(pid))  # no such process here: only its namespace tells
        newer = project.push_to("development", "newer", newer="2\n")
        ws = project.workspace(newer)

        waited = project.fab(ws, "continuity.pipeline", env={"FABRIC_CONTINUITY_LOCK_TIMEOUT": "8"}, timeout=60)

        assert_user_error(waited, "could not take lock {} within 8s: held by pid {}".format(LOCK, pid), code=1)
        assert "taking it over" not in waited.stdout
        assert project.ref(LOCK) not in (None, first_token)  # the holder renewed it meanwhile
    finally:
        os.killpg(holder.pid, signal.SIGKILL)  # kill -9: the holder, its namespace and its check
        holder.wait()
    assert project.ref(LOCK) is not None
    gate.touch()  # for the next run's check

    start = time.monotonic()
    after = project.fab(ws, "continuity.pipeline")
    took = time.monotonic() - start

    assert after.returncode == 0, after.stderr
    assert "lock {} was not renewed for".format(LOCK) in after.stdout
    assert "(its lease is 3s): its run is gone or cut off from the remote (pid {}".format(pid) in after.stdout
    assert 3 < took < 3 + 20  # about one lease, measured by the waiter alone
    assert project.ref("master") == newer
    assert project.ref(LOCK) is None


def test_a_holder_that_lost_its_lock_stops_before_pushing_master(make_project, tmp_path):
    check, started, gate = _gated_check(tmp_path)
    project = make_project(config=Project.config(checks=[check], extra="lock_lease: 3\n"))
    project.push_to("development", "feature", feature="x\n")
    before = project.ref("master")
    ws = project.workspace()
    holder = _popen(ws, "continuity.pipeline")
    out = Output(holder.stdout)
    wait_for(started)

    broken = _unlock(project, "pipeline")
    out.wait_for("lost lock")
    gate.touch()
    holder.wait(timeout=60)
    err = holder.stderr.read()

    assert broken.returncode == 0, broken.stderr
    assert holder.returncode == 1, (out.text(), err)
    assert "continuity: error: lost lock {}: it was deleted".format(LOCK) in err
    assert "stopped before pushing master" in err
    assert project.ref("master") == before
    assert project.ref(LOCK) is None


def test_a_deploy_that_lost_its_lock_is_not_recorded(make_project, tmp_path):
    gate = tmp_path / "deploy-gate"
    project = make_project(config=Project.config(extra="lock_lease: 3\n"))
    dev = project.push_to("development", "feature", feature="x\n")
    holder = _popen(project.workspace(), "continuity.pipeline", env={"DEPLOY_GATE": str(gate)})
    out = Output(holder.stdout)
    wait_for(tmp_path / "deploy-gate.in")

    broken = _unlock(project, "deploy-staging")
    out.wait_for("lost lock")
    gate.touch()
    holder.wait(timeout=60)
    err = holder.stderr.read()

    assert broken.returncode == 0, broken.stderr
    assert holder.returncode == 1, (out.text(), err)
    assert "was deployed to staging, but recording it in the ledger on origin failed: lost lock" in err
    assert "stopped before recording the deploy" in err
    assert project.ref("master") == dev
    assert project.ref("refs/continuity/deployed/staging") is None


def test_a_lease_is_a_whole_number_of_seconds_not_below_one():
    assert cfg.parse({}).lock_lease == 60
    assert cfg.parse({"lock_lease": "2.5"}).lock_lease == 2.5
    for value, message in ((0.5, "at least 1 second"), ("soon", "a number of seconds"), (-3, "positive")):
        with pytest.raises(ConfigError, match="continuity.lock_lease must be"):
            cfg.parse({"lock_lease": value})
        with pytest.raises(ConfigError, match=message):
            cfg.parse({"lock_lease": value})


def test_a_holder_elsewhere_is_gone_only_after_its_lease_unchanged():
    here = lock_module._here()
    elsewhere = {"host": here["host"], "pid": "1", "pidns": "1", "boot": here["boot"], "lease": "5"}
    assert lock_module._gone(elsewhere, 4.9) is None
    assert "was not renewed for 6s (its lease is 5s)" in lock_module._gone(elsewhere, 5.1)
    assert lock_module._gone(dict(elsewhere, lease=""), 10 ** 6) is None  # an older continuity: never renewed


def test_a_wait_shorter_than_the_lease_says_to_raise_lock_timeout():
    settings = cfg.parse({"lock_timeout": 5})
    info = {"host": "agent-7", "pid": "31", "started": "2026-01-01T00:00:00Z", "lease": "60"}
    message = lock_module._timeout_message(LOCK, settings, info, lock_module._Watch())
    assert "taken over only once unrenewed for its lease (60s): raise continuity.lock_timeout above that" in message
    assert "`fab continuity.unlock pipeline`" in message


# -- item 4: SIGTERM while the lock-taking push is in flight ----------------------------------

_SLOW_LOCKS = """\
#!/bin/sh
# The first lock creation waits in the remote (after the client sent it);
# with {refuse} present, lock deletions are refused.
while read old new ref; do
  case "$ref" in
    refs/continuity/*locks/*)
      if [ "$new" = 0000000000000000000000000000000000000000 ]; then
        if [ -f {refuse} ]; then echo "lock deletions are refused here" >&2; exit 1; fi
      elif [ ! -f {gate} ]; then
        echo $PPID > {gate}.pid && touch {gate} && sleep 2
      fi;;
  esac
done
exit 0
"""


def _slow_lock_creation(project, tmp_path, refuse=False):
    gate, refusal = tmp_path / "in-receive", tmp_path / "refuse-deletions"
    hook = project.origin / "hooks" / "pre-receive"
    hook.write_text(_SLOW_LOCKS.format(gate=gate, refuse=refusal))
    hook.chmod(0o755)
    if refuse:
        refusal.touch()
    return gate, hook


def _wait_gone(pid, timeout=30):
    """Wait until process ``pid`` (the remote's receive-pack) has finished."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open("/proc/{}/stat".format(pid)) as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except OSError:
            return
        assert time.monotonic() < deadline, "receive-pack {} still runs".format(pid)
        time.sleep(0.05)


def _terminate_while_taking_the_lock(project, ws, gate, *args):
    # The remote's side in a session of its own, as on a real server: our
    # signal must not reach it (over the local transport it is our child).
    git(ws, "config", "remote.origin.receivepack", "setsid git receive-pack")
    run = _popen(ws, "continuity.pipeline", *args, new_session=True)
    wait_for(gate)
    os.killpg(run.pid, signal.SIGTERM)  # as a Jenkins abort or Ctrl-C: the whole process group
    out, err = run.communicate(timeout=120)
    _wait_gone(int((gate.parent / (gate.name + ".pid")).read_text()))  # whatever the remote does, it is done
    return run, out, err


def test_sigterm_while_the_lock_push_is_in_flight_leaves_no_lock(project, tmp_path):
    project.push_to("development", "feature", feature="x\n")
    before = project.ref("master")
    gate, _ = _slow_lock_creation(project, tmp_path)

    run, out, err = _terminate_while_taking_the_lock(project, project.workspace(), gate)

    assert run.returncode == 143, (out, err)
    assert "continuity: terminated (SIGTERM); cleaned up and stopped" in err
    assert project.ref(LOCK) is None
    assert project.ref("master") == before
    assert not project.deploys()


def test_a_lock_that_cannot_be_deleted_after_sigterm_is_reported_with_the_command_that_breaks_it(
        make_project, tmp_path):
    project = make_project(config=Project.config(extra=_LINE))
    git(project.dev, "push", "--quiet", "origin", "HEAD:refs/heads/master-1.x")
    ws = project.workspace()
    assert project.fab(ws, "continuity.init", "--line", "1.x").returncode == 0
    project.push_to("development-1.x", "fix", fix="1\n")
    gate, hook = _slow_lock_creation(project, tmp_path, refuse=True)
    ref = "refs/continuity/lines/1.x/locks/pipeline"

    run, out, err = _terminate_while_taking_the_lock(project, ws, gate, "--line", "1.x")

    assert run.returncode == 143, (out, err)
    assert "cleaned up and stopped" not in err
    assert "stopped, but not everything was cleaned up: lock {} is still held on origin by this run".format(ref) in err
    assert "warning: lock {} is still held".format(ref) in out
    assert project.ref(ref) is not None
    command = err.split("break it now with `", 1)[1].split("`", 1)[0]
    assert command == "fab continuity.unlock pipeline --line 1.x"
    hook.unlink()
    broken = project.fab(ws, *command.split()[1:], "--yes")  # the hint runs as printed
    assert broken.returncode == 0, broken.stderr
    assert project.ref(ref) is None


_LINE = """\
lines:
  "1.x":
    branches:
      development: development-1.x
      master: master-1.x
      production: production-1.x
    auto_deploy: []
"""


def test_a_lock_token_carries_no_credentials_from_build_url(project, monkeypatch):
    monkeypatch.chdir(project.dev)
    monkeypatch.setenv("BUILD_URL", "https://jenkins:s3cret-token@ci.example.com/job/shop/7/")
    held = lock_module.HeldLock(Git(project.dev), cfg.parse({}), "pipeline")
    message = git(project.dev, "log", "-1", "--format=%B", held.token)
    assert "s3cret" not in message
    assert "build: https://***@ci.example.com/job/shop/7/" in message


# -- item 16: `locks` says when a holder is gone -----------------------------------------------


def _plant(project, name, **fields):
    body = "continuity lock\n\nlock: {}\n".format(name) + "".join("{}: {}\n".format(k, v) for k, v in fields.items())
    tree = git(project.dev, "hash-object", "-t", "tree", "-w", "--stdin")
    token = git(project.dev, "commit-tree", tree, "-m", body)
    git(project.dev, "push", "--quiet", "origin", "{}:refs/continuity/locks/{}".format(token, name))


def _dead_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_locks_says_which_holders_are_gone_and_what_happens_to_their_locks(project):
    here = lock_module._here()
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _plant(project, "deploy-qa", host=here["host"], pid=_dead_pid(), started=now, pidns=here["pidns"],
           boot=here["boot"], lease=60, renewed=now)
    _plant(project, "deploy-staging", host="agent-7", pid=4242, started="2026-01-01T00:00:00Z", lease=60,
           renewed="2026-01-01T00:05:00Z")
    _plant(project, "pipeline", host="agent-8", pid=77, started=now, lease=60, renewed=now)

    listed = project.fab(project.workspace(), "continuity.locks")

    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    qa, staging, pipeline = (lines[i + 1].strip() for i in (0, 2, 4))
    assert qa.startswith("its run is gone (no process")
    assert "the next run that needs the lock takes it over at once; to break it now: " \
           "fab continuity.unlock deploy-qa" in qa
    assert staging.startswith("not renewed for ")
    assert "its run is probably gone: the next run that needs the lock takes it over" in staging
    assert staging.endswith("to break it now: fab continuity.unlock deploy-staging")
    assert pipeline.startswith("renewed ") and "its run looks alive; if it is not: fab continuity.unlock pipeline" in pipeline


def test_a_holder_whose_renewals_are_overdue_stops_before_its_next_step(project, monkeypatch):
    monkeypatch.chdir(project.dev)
    held = lock_module.HeldLock(Git(project.dev), cfg.parse({"lock_lease": 30}), "pipeline")
    held._confirmed = time.monotonic() - 21  # over two thirds of the lease leaves too little for the next step
    with pytest.raises(lock_module.LockError, match="could not renew lock .* for 21s .*lock_lease is 30s.*stopped before "
                                                    "pushing master"):
        held.check("pushing master")
    held._confirmed = time.monotonic() - 5
    held.check("pushing master")


# -- a run killed with SIGKILL: the next run stops what it left running ------------------------


def _running(pid):
    try:
        with open("/proc/{}/stat".format(pid), "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[:1] != [b"Z"]
    except OSError:
        return False


def test_the_next_run_stops_the_check_a_killed_run_left_running(make_project, tmp_path):
    pidfile, gate = tmp_path / "leftover.pid", tmp_path / "gate"
    # The first run's check leaves a process behind in its group, then hangs; the next run's check passes.
    check = "if [ -f {gate} ]; then exit 0; fi; sleep 300 & echo $! > {pid}.tmp; mv {pid}.tmp {pid}; wait".format(
        gate=gate, pid=pidfile)
    project = make_project(config=Project.config(checks=[check]))
    dev = project.push_to("development", "feature", feature="x\n")
    ws = project.workspace()
    first = _popen(ws, "continuity.pipeline")
    wait_for(pidfile)
    leftover = int(pidfile.read_text())
    try:
        first.kill()  # SIGKILL: the run stops nothing; its check lives on in a session of its own
        first.wait()
        assert _running(leftover)
        gate.touch()

        after = project.fab(ws, "continuity.pipeline")

        assert after.returncode == 0, after.stderr
        assert "stopping 2 process(es) a killed run left running in this checkout: pid" in after.stdout
        assert "sleep 300" in after.stdout
        assert not _running(leftover)
        assert project.ref("master") == dev
    finally:
        if _running(leftover):
            os.kill(leftover, signal.SIGKILL)


def test_a_daemon_a_finished_run_left_on_purpose_is_left_alone(make_project, tmp_path):
    pidfile = tmp_path / "daemon.pid"
    # A session of its own: the daemon leaves the check's process group, so the check's end does not stop
    # it. (Popen returns once the child has exec'd, so it is out of the group before the check ends.)
    start = tmp_path / "daemon.py"
    start.write_text("import subprocess, sys\n"
                     "p = subprocess.Popen(['sleep', '300'], start_new_session=True, stdin=subprocess.DEVNULL,\n"
                     "                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
                     "open(sys.argv[1], 'w').write(str(p.pid))\n")
    check = "[ -f {0} ] || {1} {2} {0}".format(pidfile, sys.executable, start)
    project = make_project(config=Project.config(checks=[check]))
    ws = project.workspace()
    project.push_to("development", "one", one="1\n")
    assert project.fab(ws, "continuity.pipeline").returncode == 0
    wait_for(pidfile)
    daemon = int(pidfile.read_text())
    try:
        assert _running(daemon)
        project.push_to("development", "two", two="2\n")

        after = project.fab(ws, "continuity.pipeline")

        assert after.returncode == 0, after.stderr
        assert "left running" not in after.stdout
        assert _running(daemon)
    finally:
        if _running(daemon):
            os.kill(daemon, signal.SIGKILL)
