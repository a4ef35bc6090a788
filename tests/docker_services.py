"""A real Docker engine and real registries for the Docker tests, on 127.0.0.1 only.

Session fixtures (load with ``pytest_plugins = ["docker_services"]``):

``docker_engine``
    A Docker SDK client. When no engine answers, starts ``dockerd`` without a
    bridge network (none is available here) and stops it, by its PID, at the
    end. Without dockerd, or when it cannot start, the tests skip with the
    reason (and CI, with CONTINUITY_STRICT_SKIPS=1, fails them).
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

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest

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


def _start_dockerd(directory):
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        pytest.skip("no Docker engine answers and dockerd is not installed (make test installs docker.io)")
    if os.geteuid() != 0:
        pytest.skip("no Docker engine answers and starting dockerd needs root")
    log_path = directory / "dockerd.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([dockerd, *_DOCKERD_ARGS, "--pidfile", str(directory / "dockerd.pid")],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        client = _answering_client()
        if client is not None:
            return process, client
        if process.poll() is not None:
            tail = log_path.read_text().strip().splitlines()[-3:]
            pytest.skip("dockerd could not start: " + " / ".join(tail))
        time.sleep(0.2)
    _stop(process)
    pytest.skip("dockerd did not answer within 60s; see {}".format(log_path))


def _stop(process, timeout=30):
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory):
    """A Docker SDK client for a running engine (started here if needed)."""
    client = _answering_client()
    process = None
    if client is None:
        process, client = _start_dockerd(tmp_path_factory.mktemp("dockerd"))
    yield client
    remove_labelled(client)
    client.close()
    if process is not None:
        _stop(process)


def remove_labelled(client, label="{}={}".format(TEST_LABEL, SESSION)):
    """Remove the containers, then the images, that carry ``label`` (children before parents)."""
    import docker

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


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    port = _free_port()
    config = directory / "registry.yml"
    config.write_text(_registry_config(directory, port, htpasswd))
    log = open(directory / "registry.log", "w")
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
