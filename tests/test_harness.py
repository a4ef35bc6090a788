"""The suite's own machinery: skips fail in CI with or without xdist, and the
workers of one run share one Docker engine that only the run that started it
stops."""

import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

import docker_services
from ports import free_port, free_ports

TESTS = os.path.dirname(os.path.abspath(__file__))

_SKIPPING = """
import pytest

def test_that_skips_in_its_body():
    pytest.skip("no engine here")

@pytest.mark.skipif(True, reason="marked")
def test_that_is_marked_to_skip():
    pass

def test_that_passes():
    pass
"""


def _pytest(directory, *args, strict):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CONTINUITY_"))}
    env["PYTHONPATH"] = TESTS  # the helpers conftest imports (docker_services, ports)
    if strict:
        env["CONTINUITY_STRICT_SKIPS"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, str(directory)],
        cwd=directory, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
    )


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_skip_is_a_failure_in_ci_with_or_without_xdist(tmp_path, workers):
    shutil.copy(os.path.join(TESTS, "conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_skipping.py").write_text(_SKIPPING)

    strict = _pytest(tmp_path, "-n", workers, strict=True)

    assert strict.returncode == 1, strict.stdout
    # A skip in the body fails the test; a skip while setting it up (a mark, a fixture) is an error.
    assert "1 failed, 1 passed, 1 error" in strict.stdout, strict.stdout
    assert "skipped in CI, which counts as a failure: Skipped: no engine here" in strict.stdout
    assert "skipped in CI, which counts as a failure: Skipped: marked" in strict.stdout


def test_outside_ci_a_skip_stays_a_skip(tmp_path):
    shutil.copy(os.path.join(TESTS, "conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_skipping.py").write_text(_SKIPPING)

    relaxed = _pytest(tmp_path, "-n", "0", strict=False)

    assert relaxed.returncode == 0, relaxed.stdout
    assert "1 passed, 2 skipped" in relaxed.stdout, relaxed.stdout


# -- one engine per run --------------------------------------------------------------------------


class _FakeEngine:
    """No engine answers until `start` has run (slowly, as dockerd does)."""

    def __init__(self, fail=None):
        self.starts = 0
        self.running = False
        self.fail = fail

    def answering(self):
        return "client" if self.running else None

    def start(self, run_dir):
        self.starts += 1
        time.sleep(0.2)  # long enough for the other worker to ask meanwhile
        if self.fail:
            pytest.skip(self.fail)
        self.running = True
        return "client"


def _from_two_workers(run_dir):
    results = []

    def worker():
        try:
            results.append(docker_services.shared_engine(run_dir))
        except pytest.skip.Exception as skipped:
            results.append("skipped: " + str(skipped.msg))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_two_workers_that_find_no_engine_start_one_together(tmp_path, monkeypatch):
    engine = _FakeEngine()
    monkeypatch.setattr(docker_services, "_answering_client", engine.answering)
    monkeypatch.setattr(docker_services, "_start_dockerd", engine.start)

    assert _from_two_workers(tmp_path) == ["client", "client"]
    assert engine.starts == 1


def test_when_the_engine_cannot_start_the_other_workers_skip_with_the_reason_without_trying(tmp_path, monkeypatch):
    engine = _FakeEngine(fail="dockerd could not start: no space left")
    monkeypatch.setattr(docker_services, "_answering_client", engine.answering)
    monkeypatch.setattr(docker_services, "_start_dockerd", engine.start)

    assert _from_two_workers(tmp_path) == ["skipped: dockerd could not start: no space left"] * 2
    assert engine.starts == 1


def test_an_engine_that_was_already_running_is_used_and_never_stopped(tmp_path, monkeypatch):
    monkeypatch.setattr(docker_services, "_answering_client", lambda: "client")
    monkeypatch.setattr(docker_services, "_start_dockerd", lambda run_dir: pytest.fail("started a second engine"))

    assert docker_services.shared_engine(tmp_path) == "client"
    assert not (tmp_path / "dockerd.started").exists()  # nothing for the end of the run to stop
    docker_services.stop_started_engine(tmp_path)


def _stand_in(*argv):
    """A long-running process whose command line carries ``argv`` (as dockerd's carries its pid file)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", *argv],
                            stdin=subprocess.DEVNULL, start_new_session=True)


def test_the_run_stops_the_engine_it_started_and_only_that_process(tmp_path):
    ours = _stand_in("--pidfile", str(tmp_path / "dockerd" / "dockerd.pid"))
    stranger = _stand_in("--pidfile", "/var/run/docker.pid")
    try:
        (tmp_path / "dockerd.started").write_text(str(ours.pid))
        docker_services.stop_started_engine(tmp_path)
        assert ours.wait(timeout=10) is not None
        assert not (tmp_path / "dockerd.started").exists()

        (tmp_path / "dockerd.started").write_text(str(stranger.pid))  # a pid reused by another process
        docker_services.stop_started_engine(tmp_path)
        assert stranger.poll() is None
    finally:
        for proc in (ours, stranger):
            proc.kill()
            proc.wait()


# -- ports ---------------------------------------------------------------------------------------


def test_a_free_port_is_not_handed_out_again_but_a_server_can_listen_on_it():
    import socket

    port = free_port()
    handed_out = set()
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            handed_out.add(probe.getsockname()[1])
    assert port not in handed_out
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(1)
    assert len(set(free_ports(4))) == 4
