"""A real Docker engine and real registries for the Docker tests, on 127.0.0.1 only.

Session fixtures (load with ``pytest_plugins = ["docker_services"]``):

``docker_engine``
    A Docker SDK client. When no engine answers, starts ``dockerd`` without a
    bridge network (none is available here), once per run however many xdist
    workers need it (see `shared_engine`), and the run stops it, by its PID,
    after the last worker is done (`stop_started_engine`). An engine that was
    already running is used and never stopped. Without dockerd, or when it
    cannot start, the tests skip with the reason (and CI, with
    CONTINUITY_STRICT_SKIPS=1, fails them).
``docker_label``, ``base_image``
    ``FROM scratch`` plus a static busybox (``busybox-static``), labelled
    ``continuity.test=<session id>``: every image built on it, and every
    container of those images, inherits the label, and the session removes
    all of them at its end.
``registry`` / ``auth_registry``
    ``docker-registry serve`` on a free loopback port with temporary storage;
    the second one requires a user and password (an htpasswd file).

``make test`` installs the packages (scripts/test-deps.sh).
"""

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest

from ports import free_port

SESSION = uuid.uuid4().hex[:12]
TEST_LABEL = "continuity.test"
BASE_IMAGE = "continuity-test/busybox:" + SESSION
BUSYBOX = "/bin/busybox"
_DOCKERD_ARGS = ["--bridge=none", "--iptables=false", "--ip-forward=false", "--ip-masq=false"]


class Registry:
    def __init__(self, host, process, directory, username=None, password=None):
        self.host = host  # 127.0.0.1:PORT
        self.process = process
        self.directory = directory
        self.username = username
        self.password = password

    def repository(self, name):
        return "{}/{}".format(self.host, name)

    @property
    def auth(self):
        return {"username": self.username, "password": self.password} if self.username else None

    def digest(self, client, reference):
        """The digest the registry has for ``reference``, or None."""
        import docker

        try:
            return client.api.inspect_distribution(reference, auth_config=self.auth)["Descriptor"]["digest"]
        except docker.errors.NotFound:
            return None


# -- the engine ------------------------------------------------------------------


def _answering_client():
    import docker

    try:
        client = docker.from_env(timeout=10)
        client.ping()
        return client
    except docker.errors.DockerException:
        return None


def run_directory(config):
    """The base temporary directory of this run, which all its xdist workers share.

    xdist gives each worker (a config with ``workerinput``) a base of its own
    inside the controller's.
    """
    base = config._tmp_path_factory.getbasetemp()
    return base.parent if hasattr(config, "workerinput") else base


@contextlib.contextmanager
def _exclusive(path):
    """Hold an exclusive lock on ``path`` (one worker at a time)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def shared_engine(run_dir):
    """A client for the engine that answers; else start one, once for the whole run.

    Workers ask one at a time: the first that finds no engine starts it, the
    others find it answering. When it could not start, the others skip with
    the same reason instead of trying again.
    """
    failed = run_dir / "dockerd.failed"
    with _exclusive(run_dir / "dockerd.lock"):
        client = _answering_client()
        if client is not None:
            return client
        if failed.exists():
            pytest.skip(failed.read_text())
        try:
            return _start_dockerd(run_dir)
        except pytest.skip.Exception as skipped:
            failed.write_text(str(skipped.msg))
            raise


def _start_dockerd(run_dir):
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        pytest.skip("no Docker engine answers and dockerd is not installed (make test installs docker.io)")
    if os.geteuid() != 0:
        pytest.skip("no Docker engine answers and starting dockerd needs root")
    directory = run_dir / "dockerd"
    directory.mkdir(exist_ok=True)
    log_path = directory / "dockerd.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([dockerd, *_DOCKERD_ARGS, "--pidfile", str(directory / "dockerd.pid")],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    (run_dir / "dockerd.started").write_text(str(process.pid))  # what stop_started_engine stops
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        client = _answering_client()
        if client is not None:
            return client
        if process.poll() is not None:
            tail = log_path.read_text().strip().splitlines()[-3:]
            pytest.skip("dockerd could not start: " + " / ".join(tail))
        time.sleep(0.2)
    stop_started_engine(run_dir)
    pytest.skip("dockerd did not answer within 60s; see {}".format(log_path))


def stop_started_engine(run_dir):
    """Stop the dockerd this run started, if it started one (never an engine it found running).

    Called once every worker is done (conftest's pytest_sessionfinish, in the
    xdist controller): the worker that started the engine may be gone by
    then, so the engine is found by the PID it recorded, and checked to be
    the dockerd started with this run's pid file before it is signalled.
    """
    marker = run_dir / "dockerd.started"
    if not marker.exists():
        return
    pid = int(marker.read_text())
    marker.unlink()
    if _is_our_dockerd(pid, run_dir / "dockerd" / "dockerd.pid"):
        _terminate(pid)


def _is_our_dockerd(pid, pidfile):
    try:
        with open("/proc/{}/cmdline".format(pid), "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        return False
    return str(pidfile).encode() in argv


def _terminate(pid, timeout=30):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if _gone(pid):
                return
            time.sleep(0.1)


def _gone(pid):
    """True once ``pid`` has exited (reaped here when it is our child, or a zombie elsewhere)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    except ChildProcessError:
        pass  # not our child: the worker that started it is gone
    try:
        with open("/proc/{}/stat".format(pid)) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _stop(process, timeout=30):
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def docker_engine(pytestconfig):
    """A Docker SDK client for a running engine (started once per run if needed)."""
    client = shared_engine(run_directory(pytestconfig))
    yield client
    remove_labelled(client)
    client.close()


def remove_labelled(client, label=None):
    """Remove the containers, then the images, that carry ``label`` (children before parents).

    The default label is this session's (this worker's, with xdist): what
    other workers built is theirs to remove.
    """
    import docker

    label = label or "{}={}".format(TEST_LABEL, SESSION)

    for container in client.containers.list(all=True, filters={"label": label}):
        container.remove(force=True)
    for _ in range(5):
        images = client.images.list(all=True, filters={"label": label})
        if not images:
            return
        for image in images:
            try:
                client.images.remove(image.id, force=True)
            except docker.errors.APIError:
                pass  # a parent of an image still here: the next round gets it


@pytest.fixture(scope="session")
def docker_label():
    """The label (``continuity.test=<session id>``) every test image and container carries."""
    return "{}={}".format(TEST_LABEL, SESSION)


@pytest.fixture(scope="session")
def base_image(docker_engine, tmp_path_factory):
    """The tag of a FROM-scratch image with busybox installed (sh, sleep, test, ...)."""
    if not os.path.exists(BUSYBOX):
        pytest.skip("{} is missing (make test installs busybox-static)".format(BUSYBOX))
    directory = tmp_path_factory.mktemp("base-image")
    shutil.copy(BUSYBOX, directory / "busybox")
    (directory / "Dockerfile").write_text(
        'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        "LABEL {}={}\n".format(TEST_LABEL, SESSION)
    )
    docker_engine.images.build(path=str(directory), tag=BASE_IMAGE, rm=True, forcerm=True, network_mode="none")
    return BASE_IMAGE


# -- registries ------------------------------------------------------------------


def _registry_config(directory, port, htpasswd=None):
    auth = "auth:\n  htpasswd:\n    realm: continuity-tests\n    path: {}\n".format(htpasswd) if htpasswd else ""
    return (
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        "storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        "http:\n  addr: 127.0.0.1:{port}\n{auth}"
    ).format(storage=directory / "storage", port=port, auth=auth)


def start_registry(directory, username=None, password=None):
    program = shutil.which("docker-registry")
    if program is None:
        pytest.skip("docker-registry is not installed (make test installs it)")
    htpasswd = None
    if username:
        if shutil.which("htpasswd") is None:
            pytest.skip("htpasswd is not installed (make test installs apache2-utils)")
        line = subprocess.run(["htpasswd", "-Bbn", username, password], capture_output=True, text=True,
                              check=True, stdin=subprocess.DEVNULL).stdout
        htpasswd = directory / "htpasswd"
        htpasswd.write_text(line)
    port = free_port()
    config = directory / "registry.yml"
    config.write_text(_registry_config(directory, port, htpasswd))
    with open(directory / "registry.log", "w") as log:
        process = subprocess.Popen([program, "serve", str(config)], stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    _wait_http(port, process, directory)
    return Registry("127.0.0.1:{}".format(port), process, directory, username, password)


def _wait_http(port, process, directory, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail("docker-registry exited: " + (directory / "registry.log").read_text())
        try:
            urllib.request.urlopen("http://127.0.0.1:{}/v2/".format(port), timeout=2).close()
            return
        except urllib.error.HTTPError:  # 401: it answers, and wants credentials
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail("docker-registry did not answer on 127.0.0.1:{}".format(port))


@pytest.fixture(scope="session")
def registry(docker_engine, tmp_path_factory):
    """A registry without authentication."""
    server = start_registry(tmp_path_factory.mktemp("registry"))
    yield server
    _stop(server.process, timeout=10)


@pytest.fixture(scope="session")
def auth_registry(docker_engine, tmp_path_factory):
    """A registry that wants user ``ci`` and a password (``.password``)."""
    server = start_registry(tmp_path_factory.mktemp("auth-registry"), "ci", "pw-" + uuid.uuid4().hex)
    yield server
    _stop(server.process, timeout=10)
