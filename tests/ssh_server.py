"""A real sshd on 127.0.0.1 for the tests that deploy over SSH.

Use the ``sshd`` fixture (session-scoped, registered in conftest.py): it
starts ``/usr/sbin/sshd`` listening on several loopback ports with its own
host key and a client key, and stops it (by its PID) at the end. ``make
test`` installs openssh-server; without it the tests skip with that reason
(and CI turns the skip into a failure).
"""

import getpass
import os
import shutil
import socket
import subprocess
import time

import pytest

from ports import free_ports

SSHD = "/usr/sbin/sshd"
PORTS = 4


class SshServer:
    def __init__(self, directory, ports, key, user, process):
        self.directory = directory
        self.ports = ports  # all listen on 127.0.0.1 (and so answer for "localhost" too)
        self.key = key  # the client's private key file
        self.user = user
        self.process = process

    def connect_kwargs(self):
        return {"key_filename": [str(self.key)], "look_for_keys": False, "allow_agent": False}

    def connection(self, host="127.0.0.1", port=None, **kwargs):
        from fabric import Connection

        return Connection(host, user=self.user, port=port or self.ports[0],
                          connect_kwargs=self.connect_kwargs(), **kwargs)

    def free_dead_port(self):
        """A loopback port nobody listens on: an unreachable host."""
        return free_ports(1)[0]


def _keygen(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True,
                   stdin=subprocess.DEVNULL)


def start_sshd(directory):
    if not os.path.exists(SSHD) or not shutil.which("ssh-keygen"):
        pytest.skip("sshd is not installed (make test installs openssh-server)")
    directory.mkdir(parents=True, exist_ok=True)
    os.makedirs("/run/sshd", exist_ok=True)
    host_key, client_key = directory / "host_key", directory / "client_key"
    _keygen(host_key)
    _keygen(client_key)
    authorized = directory / "authorized_keys"
    authorized.write_text((directory / "client_key.pub").read_text())
    authorized.chmod(0o600)
    ports = free_ports(PORTS)
    config = directory / "sshd_config"
    config.write_text("".join("ListenAddress 127.0.0.1:{}\n".format(p) for p in ports) + (
        "HostKey {host_key}\nAuthorizedKeysFile {authorized}\nPidFile {pid}\nUsePAM no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nStrictModes no\n"
        "PermitRootLogin yes\nSubsystem sftp internal-sftp\nLogLevel ERROR\nMaxStartups 100\n"
        "AcceptEnv CONTINUITY_*\n"
    ).format(host_key=host_key, authorized=authorized, pid=directory / "sshd.pid"))
    with open(directory / "sshd.log", "w") as log:
        process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT)
    _wait_listening(ports, process, directory)
    return SshServer(directory, ports, client_key, getpass.getuser(), process)


def _wait_listening(ports, process, directory, timeout=15):
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            if process.poll() is not None:
                pytest.fail("sshd exited: " + (directory / "sshd.log").read_text())
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("sshd did not listen on {}".format(port))
                time.sleep(0.05)


def stop_sshd(server):
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
