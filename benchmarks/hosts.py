#!/usr/bin/env python3
"""How long does a deploy to 1, 4 and 16 hosts take, in parallel and one by one?

Starts a throwaway sshd on 8 loopback ports (the test suite's
``tests/ssh_server.py``); ``127.0.0.1:PORT`` and ``localhost:PORT`` over those
ports make 16 distinct hosts. For each host count it calls
`continuity.hosts.deploy_hosts` (the code behind an environment with
``hosts``) with a deploy task that runs ``sleep WORK`` on the host through
its Connection, with three limits:

* serial: ``parallel: 1``;
* default: ``parallel: 4``;
* all: ``parallel:`` the number of hosts.

Each cell is a complete deploy: opening every SSH connection (key exchange,
login), the remote command, closing. Timings are printed, never asserted.
Needs openssh-server (``scripts/test-deps.sh`` installs it); nothing leaves
127.0.0.1.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))

COUNTS = (1, 4, 16)


def main():
    options = _arguments()
    with tempfile.TemporaryDirectory(prefix="continuity-bench-hosts-") as directory:
        server = _start_sshd(Path(directory))
        try:
            rows = [_measure(server, count, options) for count in COUNTS]
        finally:
            _stop_sshd(server)
    _print(rows, options)


def _arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--repeat", type=int, default=3, help="deploys per cell (default 3)")
    parser.add_argument("--work", type=float, default=0.5, help="seconds each host's deploy sleeps (default 0.5)")
    return parser.parse_args()


def _start_sshd(directory):
    import ssh_server

    ssh_server.PORTS = 8  # x 2 host names = 16 distinct hosts
    try:
        return ssh_server.start_sshd(directory)
    except BaseException as exc:  # pytest.skip / pytest.fail outside pytest
        sys.exit("benchmarks/hosts.py: cannot start sshd: {}".format(exc))


def _stop_sshd(server):
    import ssh_server

    ssh_server.stop_sshd(server)


def _hosts(server, count):
    names = ["{}:{}".format(name, port) for port in server.ports for name in ("127.0.0.1", "localhost")]
    return tuple(names[:count])


def _modes(count):
    """(mode, parallel) for ``count`` hosts; a limit already measured is not repeated."""
    modes, seen = [], set()
    for mode, limit in (("serial", 1), ("default", min(4, count)), ("all", count)):
        if limit not in seen:
            seen.add(limit)
            modes.append((mode, limit))
    return modes


def _measure(server, count, options):
    return count, [(mode, limit, _times(server, count, limit, options)) for mode, limit in _modes(count)]


def _times(server, count, limit, options):
    from invoke import Context

    from continuity.config import Environment
    from continuity.hosts import deploy_hosts

    target = Environment("bench", _hosts(server, count), user=server.user, key_filename=str(server.key),
                         connect_timeout=10, parallel=limit)
    command = "sleep {}".format(options.work)

    def task(c, environment):
        c.run(command, hide=True, in_stream=False)

    times = []
    for _ in range(options.repeat):
        start = time.monotonic()
        deploy_hosts(Context(), task, target, {"environment": "bench"}, say=lambda line: None)
        times.append(time.monotonic() - start)
    return times


def _print(rows, options):
    print("deploy to N hosts over SSH; each host's deploy sleeps {}s; {} run(s) per cell".format(
        options.work, options.repeat))
    print("{:>5}  {:<8} {:>8}  {:>8}  {:>8}  {:>9}".format("hosts", "mode", "parallel", "min", "median", "vs serial"))
    for count, cells in rows:
        serial = statistics.median(cells[0][2])
        for mode, limit, times in cells:
            median = statistics.median(times)
            print("{:>5}  {:<8} {:>8}  {:>7.2f}s  {:>7.2f}s  {:>8.1f}x".format(
                count, mode, limit, min(times), median, serial / median if median else 0))
    print("(floor per deploy: {}s of work; the rest is SSH connection setup and our thread pool)".format(options.work))


if __name__ == "__main__":
    main()
