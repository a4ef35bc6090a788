"""Deploying an environment to many hosts over real SSH (the ``sshd`` fixture).

The fabfile's deploy task writes, through its Connection, a marker file named
after the host and port, with start and end timestamps, so a test can tell
which hosts deployed, with what, and whether they overlapped in time.
"""

import signal
import subprocess
import time
from dataclasses import replace

import pytest
from invoke import Context

from conftest import assert_user_error
from continuity.config import Environment
from continuity.errors import DeployError
from continuity.hosts import deploy_hosts

HOSTS_FABFILE = '''
import os
import shlex

from fabric import task
from invoke import Collection

import continuity

SCRIPT = (
    "date +%s.%N > {m}.start; sleep {s}; "
    "echo \\"$CONTINUITY_REVISION $CONTINUITY_ENVIRONMENT\\" > {m}; date +%s.%N > {m}.end"
)


@task
def deploy(c, environment, revision=None):
    """Write this host's marker through SSH; fail on FAIL_HOST."""
    marker = shlex.quote(os.path.join(os.environ["MARKERS"], "{}_{}".format(c.host, c.port)))
    c.run(SCRIPT.format(m=marker, s=float(os.environ.get("HOST_SLEEP", "0"))), in_stream=False)
    if "{}:{}".format(c.host, c.port) == os.environ.get("FAIL_HOST"):
        c.run("echo disk full on this host >&2; exit 3", hide=True, in_stream=False)


ns = Collection(deploy, continuity)
'''


def hosts_config(sshd, hosts, **options):
    lines = ["continuity:", "  checks: []", "  environments:", "    staging:", "      hosts:"]
    lines += ["        - " + host for host in hosts]
    lines += ["      user: " + sshd.user, "      key_filename: " + str(sshd.key), "      connect_timeout: 5"]
    lines += ["      {}: {}".format(key, str(value).lower()) for key, value in options.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def markers(tmp_path):
    directory = tmp_path / "markers"
    directory.mkdir()
    return directory


def deploy_project(make_project, sshd, hosts, **options):
    project = make_project(fabfile=HOSTS_FABFILE, config=hosts_config(sshd, hosts, **options))
    dev = project.push_to("development", "feature", feature="x\n")
    return project, dev


def run(project, markers, **env):
    return project.fab(project.workspace(), "continuity.pipeline", env=dict(env, MARKERS=str(markers)))


def marker(markers, host):
    """(content, start, end) written by ``host`` ("name:port"), or None."""
    base = markers / host.replace(":", "_")
    if not base.exists():
        return None
    read = lambda suffix: (markers / (base.name + suffix)).read_text().strip()  # noqa: E731
    return base.read_text().strip(), float(read(".start")), float(read(".end"))


def four_hosts(sshd):
    """Both host names over the four ports."""
    p = sshd.ports
    return ["127.0.0.1:{}".format(p[0]), "localhost:{}".format(p[1]), "127.0.0.1:{}".format(p[2]),
            "localhost:{}".format(p[3])]


def table_row(stdout, host):
    rows = [line for line in stdout.splitlines() if line.startswith("continuity | " + host + " ")]
    assert rows, stdout
    return rows[-1]


# -- through fab -----------------------------------------------------------------


def test_a_deploy_runs_on_four_hosts_at_once(make_project, sshd, markers):
    hosts = four_hosts(sshd)
    project, dev = deploy_project(make_project, sshd, hosts)

    proc = run(project, markers, HOST_SLEEP="2")

    assert proc.returncode == 0, proc.stderr
    found = [marker(markers, host) for host in hosts]
    assert [content for content, _, _ in found] == ["{} staging".format(dev)] * 4
    assert max(start for _, start, _ in found) < min(end for _, _, end in found), "the hosts did not overlap"
    assert "deploy: staging: 4 host(s), 4 at a time" in proc.stdout
    for host in hosts:
        assert table_row(proc.stdout, host).endswith(" ok")
    assert project.ref("refs/continuity/deployed/staging") == dev


def test_parallel_one_deploys_the_hosts_one_after_the_other(make_project, sshd, markers):
    hosts = four_hosts(sshd)[:3]
    project, _ = deploy_project(make_project, sshd, hosts, parallel=1)

    proc = run(project, markers, HOST_SLEEP="0.2")

    assert proc.returncode == 0, proc.stderr
    spans = sorted((start, end) for _, start, end in (marker(markers, host) for host in hosts))
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:])), spans
    assert "3 host(s), 1 at a time" in proc.stdout


def test_a_failing_host_fails_the_run_and_the_other_hosts_still_deploy(make_project, sshd, markers):
    hosts = four_hosts(sshd)
    project, dev = deploy_project(make_project, sshd, hosts)

    proc = run(project, markers, FAIL_HOST=hosts[1])

    assert_user_error(proc, "deploy to staging failed on 1 of 4 host(s): " + hosts[1], "exited with code 3",
                      "disk full on this host", code=1)
    assert ("FAILED: command 'echo disk full on this host >&2; exit 3' exited with code 3: disk full on this host"
            in table_row(proc.stdout, hosts[1]))
    for host in hosts[:1] + hosts[2:]:
        assert marker(markers, host) is not None
        assert table_row(proc.stdout, host).endswith(" ok")
    assert project.ref("master") == dev
    assert project.ref("refs/continuity/deployed/staging") is None


def test_fail_fast_starts_no_new_host_after_a_failure(make_project, sshd, markers):
    hosts = four_hosts(sshd)[:3]
    project, _ = deploy_project(make_project, sshd, hosts, parallel=1, fail_fast=True)

    proc = run(project, markers, FAIL_HOST=hosts[0])

    assert_user_error(proc, "not started (fail_fast): {}, {}".format(hosts[1], hosts[2]), code=1)
    assert marker(markers, hosts[1]) is None and marker(markers, hosts[2]) is None
    assert "not started: an earlier host failed" in table_row(proc.stdout, hosts[2])


def test_an_unreachable_host_is_one_clear_line(make_project, sshd, markers):
    dead = sshd.free_dead_port()
    hosts = ["127.0.0.1:{}".format(sshd.ports[0]), "127.0.0.1:{}".format(dead)]
    project, _ = deploy_project(make_project, sshd, hosts)

    proc = run(project, markers)

    reason = "cannot connect to {}@127.0.0.1:{}: connection refused".format(sshd.user, dead)
    assert_user_error(proc, reason, code=1)
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "unreachable: " + reason in table_row(proc.stdout, hosts[1])
    assert marker(markers, hosts[0]) is not None


def test_fab_with_hosts_explains_where_hosts_belong(project):
    proc = project.fab(project.workspace(), "-H", "127.0.0.1", "continuity.pipeline")

    assert_user_error(proc, "drop -H/--hosts", "continuity.environments.NAME.hosts")


def test_an_environment_without_hosts_still_deploys_locally(make_project, sshd, markers):
    config = hosts_config(sshd, four_hosts(sshd)[:1]) + "  auto_deploy: [qa]\n"
    fabfile = HOSTS_FABFILE.replace("@task\ndef deploy", "@task\ndef _unused").replace(
        "ns = Collection(deploy, continuity)", "")
    project = make_project(fabfile=fabfile + _LOCAL_DEPLOY, config=config)
    dev = project.push_to("development", "feature", feature="x\n")

    proc = run(project, markers)

    assert proc.returncode == 0, proc.stderr
    assert project.deploys() == [["qa", dev, dev, dev]]
    assert list(markers.iterdir()) == []


_LOCAL_DEPLOY = '''
@task
def deploy(c, environment, revision=None):
    """Record a local deploy in DEPLOY_LOG (the Context is not a Connection)."""
    assert not hasattr(c, "host")
    head = c.run("git rev-parse HEAD", hide=True, in_stream=False).stdout.strip()
    with open(os.environ["DEPLOY_LOG"], "a") as log:
        log.write("{} {} {} {}\\n".format(environment, revision, os.environ.get("CONTINUITY_REVISION"), head))


ns = Collection(deploy, continuity)
'''


# -- the function, in process --------------------------------------------------------


def environment(sshd, hosts, **options):
    return Environment("staging", tuple(hosts), user=sshd.user, key_filename=str(sshd.key), connect_timeout=5,
                       **options)


def test_user_and_port_in_a_host_string_win_over_the_environment(sshd):
    seen = []
    host = "{}@localhost:{}".format(sshd.user, sshd.ports[2])
    target = replace(environment(sshd, [host], port=sshd.free_dead_port()), user="nobody")

    results = deploy_hosts(Context(), lambda c, environment: seen.append((c.user, c.host, c.port)), target,
                           {"environment": "staging"}, say=lambda line: None)

    assert [r.status for r in results] == ["ok"]
    assert seen == [(sshd.user, "localhost", sshd.ports[2])]


def test_the_task_gets_a_connection_and_remote_commands_see_the_revision(sshd, monkeypatch):
    monkeypatch.setenv("CONTINUITY_REVISION", "0123abc")
    monkeypatch.setenv("CONTINUITY_ENVIRONMENT", "staging")
    outputs = []

    def task(c, environment):
        outputs.append(c.run("echo $CONTINUITY_REVISION $CONTINUITY_ENVIRONMENT", hide=True, in_stream=False).stdout)

    deploy_hosts(Context(), task, environment(sshd, four_hosts(sshd)[:2]), {"environment": "staging"},
                 say=lambda line: None)

    assert outputs == ["0123abc staging\n"] * 2


def test_a_bad_host_string_or_an_exception_fails_only_that_host(sshd):
    lines = []
    good = "127.0.0.1:{}".format(sshd.ports[0])
    hosts = ["127.0.0.1:notaport", good, "localhost:{}".format(sshd.ports[1])]

    def task(c, environment):
        if c.port == sshd.ports[1]:
            raise RuntimeError("the release directory is missing\nsecond line")

    with pytest.raises(DeployError) as info:
        deploy_hosts(Context(), task, environment(sshd, hosts), {"environment": "staging"}, say=lines.append)

    message = str(info.value)
    assert "failed on 2 of 3 host(s)" in message and "\n" not in message
    assert "'127.0.0.1:notaport' is not a host" in message
    assert "RuntimeError: second line" in message
    assert lines[-4].split() == ["host", "time", "result"]
    assert lines[-2].startswith(good + " ") and lines[-2].endswith(" ok")


def test_our_own_error_on_a_host_is_reported_by_its_message_as_for_a_local_deploy(sshd):
    from continuity.errors import ContinuityError

    def task(c, environment):
        raise ContinuityError("the registry has no image app:0123abc: the pipeline pushes it\nwhen master advances")

    with pytest.raises(DeployError) as info:
        deploy_hosts(Context(), task, environment(sshd, four_hosts(sshd)[:1]), {"environment": "staging"},
                     say=lambda line: None)

    assert "(FAILED: the registry has no image app:0123abc: the pipeline pushes it)" in str(info.value)
    assert "ContinuityError" not in str(info.value)


def test_the_table_lists_every_host_with_its_duration(sshd):
    lines = []
    hosts = four_hosts(sshd)

    deploy_hosts(Context(), lambda c, environment: None, environment(sshd, hosts, parallel=2),
                 {"environment": "staging"}, say=lines.append)

    table = lines[-5:]
    assert table[0].split() == ["host", "time", "result"]
    assert [row.split()[0] for row in table[1:]] == hosts
    assert all(row.split()[1].endswith("s") and row.split()[2] == "ok" for row in table[1:])
    assert "2 at a time" in lines[0]


def test_a_key_is_needed_to_log_in(sshd, tmp_path):
    other_key = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True,
                   stdin=subprocess.DEVNULL)
    target = Environment("staging", ("127.0.0.1:{}".format(sshd.ports[0]),), user=sshd.user,
                         key_filename=str(other_key), connect_timeout=5)
    lines = []

    with pytest.raises(DeployError) as info:
        deploy_hosts(Context(), lambda c, environment: None, target, {"environment": "staging"}, say=lines.append)

    assert "unreachable: cannot connect to" in str(info.value)
    assert "SSH login refused" in str(info.value) and "check user and key_filename" in str(info.value)



def test_sigterm_during_a_host_deploy_stops_at_once_and_starts_no_more_hosts(make_project, sshd, markers):
    hosts = four_hosts(sshd)
    project, _ = deploy_project(make_project, sshd, hosts, parallel=2)
    proc = project.popen(project.workspace(), "continuity.pipeline", env={"MARKERS": str(markers), "HOST_SLEEP": "30"})
    deadline = time.monotonic() + 30
    while len(list(markers.glob("*.start"))) < 2:
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)

    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)

    assert proc.returncode == 143, (out, err)
    assert "terminated" in err and "Traceback" not in err
    assert len(list(markers.glob("*.start"))) == 2
    assert "result: stopped after master advanced to" in out
    assert "the next pipeline run has nothing to do: deploy it with `fab continuity.deploy staging`" in out
    assert project.ref("refs/continuity/locks/deploy-staging") is None
