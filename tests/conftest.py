"""Shared fixtures: real git repositories, a real bare origin, real `fab`.

Every test gets its own HOME and git configuration, and none of the
developer's or CI's own variables (BUILD_URL, FABRIC_*, GIT_*) leak in.
"""

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

FAB = os.path.join(os.path.dirname(sys.executable), "fab")

_LEAKY_PREFIXES = ("FABRIC_", "GIT_", "CONTINUITY_", "INVOKE_")
_LEAKY_NAMES = ("BUILD_URL", "BUILD_NUMBER", "BUILD_ID", "JOB_NAME", "WORKSPACE", "JENKINS_URL", "EMAIL")

FABFILE = '''
import os
import time

from fabric import task
from invoke import Collection

import continuity


@task
def deploy(c, environment, revision=None):
    """Record the deploy in DEPLOY_LOG; wait at a gate, fail or sleep when asked to."""
    if os.environ.get("DEPLOY_GATE"):  # wait until the test opens the gate (at most 2 minutes)
        open(os.environ["DEPLOY_GATE"] + ".in", "w").close()
        deadline = time.monotonic() + 120
        while not os.path.exists(os.environ["DEPLOY_GATE"]) and time.monotonic() < deadline:
            time.sleep(0.05)
    if os.environ.get("DEPLOY_SLEEP"):
        time.sleep(float(os.environ["DEPLOY_SLEEP"]))
    if os.environ.get("DEPLOY_FAIL"):
        raise RuntimeError("the deploy script broke")
    head = c.run("git rev-parse HEAD", hide=True, in_stream=False).stdout.strip()
    with open(os.environ["DEPLOY_LOG"], "a") as log:
        log.write("{} {} {} {}\\n".format(environment, revision, os.environ.get("CONTINUITY_REVISION"), head))


ns = Collection(deploy, continuity)
'''


_STRICT_SKIPS = pytest.StashKey[bool]()


def pytest_configure(config):
    # Read once, before `clean_env` removes CONTINUITY_* variables for each
    # test; each xdist worker runs this too, with the controller's environment.
    config.stash[_STRICT_SKIPS] = bool(os.environ.get("CONTINUITY_STRICT_SKIPS"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (CONTINUITY_STRICT_SKIPS=1) a skipped test is a failed test.

    With xdist this runs in the worker, before the report goes to the
    controller, so the controller counts a failure too.
    """
    outcome = yield
    report = outcome.get_result()
    if report.skipped and item.config.stash[_STRICT_SKIPS] and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = "skipped in CI, which counts as a failure: {}".format(reason)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    """Stop the Docker engine this run started, if it did, once every test is done.

    With xdist, workers finish first and this runs in the controller; each
    worker skips it, as the engine may still serve another worker. Last, so
    that after an interruption the session fixtures (which remove their
    images) are torn down before.
    """
    if hasattr(session.config, "workerinput"):
        return
    from docker_services import run_directory, stop_started_engine

    stop_started_engine(run_directory(session.config))


@pytest.fixture(autouse=True)
def clean_env(tmp_path, monkeypatch):
    """A fresh HOME and git identity; nothing from the developer's shell or CI."""
    return isolate(monkeypatch, tmp_path)


def isolate(monkeypatch, tmp_path):
    """What `clean_env` does, for a fixture of a wider scope (with its own `pytest.MonkeyPatch`)."""
    for name in list(os.environ):
        if name.startswith(_LEAKY_PREFIXES) or name in _LEAKY_NAMES:
            monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = Dev Eloper\n\temail = dev@example.com\n"
        "[init]\n\tdefaultBranch = master\n[advice]\n\tdetachedHead = false\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("DEPLOY_LOG", str(tmp_path / "deploys.log"))
    return home


def git(cwd, *args, check=True):
    proc = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if check and proc.returncode:
        raise AssertionError("git {} failed: {}".format(" ".join(args), proc.stderr))
    return proc.stdout.strip()


class Project:
    """A bare origin, a developer's clone, and Jenkins-like workspaces."""

    def __init__(self, root):
        self.root = root
        self.origin = root / "origin.git"
        self.dev = root / "developer"
        self.workspaces = 0

    # -- setting up ---------------------------------------------------------

    def create(self, config=None, fabfile=FABFILE, branches=("master", "development", "production")):
        git(self.root, "init", "--quiet", "--bare", str(self.origin))
        git(self.root, "clone", "--quiet", str(self.origin), str(self.dev))
        self.write("fabfile.py", textwrap.dedent(fabfile))
        self.write("fabric.yaml", config if config is not None else self.config())
        self.write("app.txt", "version 1\n")
        self.commit("initial commit")
        if branches:  # one push for all: each push costs a receive-pack on the origin
            git(self.dev, "push", "--quiet", "origin", *["HEAD:refs/heads/" + branch for branch in branches])
        return self

    @staticmethod
    def config(checks=("test -f app.txt",), extra=""):
        lines = ["continuity:", "  checks:"] + ["    - {!r}".format(c) for c in checks]
        return "\n".join(lines) + "\n" + textwrap.indent(textwrap.dedent(extra), "  ")

    def write(self, path, text):
        target = self.dev / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def commit(self, message, **files):
        for path, text in files.items():
            self.write(path, text)
        git(self.dev, "add", "-A")
        git(self.dev, "commit", "--quiet", "--allow-empty", "-m", message)
        return git(self.dev, "rev-parse", "HEAD")

    def push_to(self, branch, message, base=None, **files):
        """Commit on top of origin's ``base`` (default: ``branch``) and push to ``branch``."""
        git(self.dev, "fetch", "--quiet", "origin")
        git(self.dev, "checkout", "--quiet", "--detach", "origin/" + (base or branch), "--")
        sha = self.commit(message, **files)
        git(self.dev, "push", "--quiet", "origin", "HEAD:refs/heads/" + branch)
        return sha

    # -- looking -------------------------------------------------------------

    def ref(self, name):
        """The sha of ``name`` (a branch or a full ref) on origin, or None."""
        full = name if name.startswith("refs/") else "refs/heads/" + name
        out = git(self.origin, "for-each-ref", "--format=%(objectname)", full)
        return out or None

    def refs(self):
        """The refs on origin, but the results every run records whatever happens (refs/continuity/results)."""
        out = git(self.origin, "for-each-ref", "--format=%(refname) %(objectname)")
        return "\n".join(line for line in out.splitlines() if not line.startswith("refs/continuity/results "))

    def deploys(self):
        path = self.root / "deploys.log"
        if not path.exists():
            return []
        return [line.split() for line in path.read_text().splitlines()]

    # -- Jenkins -------------------------------------------------------------

    def workspace(self, sha=None):
        """A checkout made the way the Jenkins git plugin makes one: detached, no branches."""
        self.workspaces += 1
        ws = self.root / "workspace{}".format(self.workspaces)
        ws.mkdir()
        git(ws, "init", "--quiet")
        git(ws, "remote", "add", "origin", str(self.origin))
        git(ws, "fetch", "--quiet", "--tags", "--force", "origin", "+refs/heads/*:refs/remotes/origin/*")
        git(ws, "checkout", "--quiet", "-f", sha or git(ws, "rev-parse", "refs/remotes/origin/development"))
        return ws

    def fab(self, ws, *args, env=None, timeout=120):
        return run_fab(ws, *args, env=env, timeout=timeout)

    def popen(self, ws, *args, env=None):
        return subprocess.Popen(
            [FAB, *args], cwd=ws, env=dict(os.environ, **(env or {})), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )


def run_fab(cwd, *args, env=None, timeout=120):
    return subprocess.run(
        [FAB, *args], cwd=cwd, env=dict(os.environ, **(env or {})), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture
def project(tmp_path):
    """A project with master, development and production on a bare origin."""
    return Project(tmp_path).create()


@pytest.fixture
def make_project(tmp_path):
    """Build a project with custom settings, fabfile or branches."""
    return lambda **kwargs: Project(tmp_path).create(**kwargs)


def fab_settings(directory, line=None, task="continuity.status"):
    """The settings ``fab TASK`` run in ``directory`` would read, without running ``fab``.

    Built the way fab builds its config (its Program, then its Executor):
    base config files, the project's fabric.yaml in ``directory``, the
    collection's defaults for TASK, then FABRIC_* variables; then read by
    `continuity.config.settings`. A ConfigError here is what fab would print
    as ``continuity: error: ...`` with exit code 2.
    """
    from fabric import Config
    from invoke import Collection, Context

    import continuity
    from continuity.config import settings

    config = Config(lazy=True)
    config.load_base_conf_files()
    config.set_project_location(str(directory))
    config.load_project()
    config.load_collection(Collection(continuity).configuration(task))
    config.load_shell_env()
    return settings(Context(config=config), line=line)


def wait_for(path, timeout=30):
    """Wait until ``path`` exists (a marker a check or a deploy writes)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, "timed out waiting for " + str(path)
        time.sleep(0.05)


def wait_ref(project, ref, proc, timeout=30):
    """Wait until ``ref`` exists on the project's origin while ``proc`` still runs."""
    deadline = time.monotonic() + timeout
    while project.ref(ref) is None:
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)


def gated_check(tmp_path, name="check"):
    """A check command that says it started, then waits until the test opens its gate.

    Returns ``(command, started, gate)``: wait for ``started``, do what must
    happen while the check runs, then ``gate.touch()``. A run whose
    environment has no CHECK_GATE passes straight through (``env={"CHECK_GATE":
    str(gate)}`` gates only the run that gets it). A gate left shut opens by
    itself after 2 minutes, so a failed test leaves no run waiting forever.
    """
    started, gate = tmp_path / (name + "-started"), tmp_path / (name + "-gate")
    command = ('touch {}; i=0; while [ -n "$CHECK_GATE" ] && [ ! -f "$CHECK_GATE" ] && [ $i -lt 2400 ]; '
               'do sleep 0.05; i=$((i+1)); done').format(started)
    return command, started, gate


class Output:
    """A process's stdout, read as it comes, so a test can wait for a line."""

    def __init__(self, stream):
        self.lines = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def _read(self, stream):
        for line in stream:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def wait_for(self, text, timeout=30):
        with self._changed:
            found = self._changed.wait_for(lambda: any(text in line for line in self.lines), timeout)
        assert found, "no line with {!r} in:\n{}".format(text, "".join(self.lines))

    def text(self):
        self._reader.join(30)
        return "".join(self.lines)


def assert_user_error(proc, *phrases, code=2):
    """One clear message, the right exit code, no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    for phrase in phrases:
        assert phrase in proc.stderr, (phrase, proc.stderr)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A real sshd on several 127.0.0.1 ports (see tests/ssh_server.py)."""
    from ssh_server import start_sshd, stop_sshd

    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    stop_sshd(server)
