"""Loopback ports for the servers the tests start, safe between xdist workers.

A port found by binding to port 0 and closing is free only until someone
else binds it: with two workers starting servers at once, both could be
handed the same one. `free_port` leaves the port it returns in TIME_WAIT
(it accepts a connection on it and closes its side first): for about a
minute the kernel hands it to no one else who asks for a free port, while a
server that sets SO_REUSEADDR (sshd, docker-registry, asyncio, http.server
all do) can still listen on it.
"""

import contextlib
import socket

__all__ = ["free_port", "free_ports"]


def free_port(host="127.0.0.1"):
    """A loopback port nobody listens on and no other worker will be handed soon."""
    with contextlib.closing(socket.socket()) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((host, 0))
        server.listen(1)
        address = server.getsockname()
        with contextlib.closing(socket.create_connection(address)):
            accepted, _ = server.accept()
            accepted.close()  # our side closes first: the port waits in TIME_WAIT
        return address[1]


def free_ports(count, host="127.0.0.1"):
    """``count`` distinct ports from `free_port`."""
    ports = []
    while len(ports) < count:
        port = free_port(host)
        if port not in ports:
            ports.append(port)
    return ports
