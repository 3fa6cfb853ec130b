"""The chaos run's load balancer hands a connection to the next backend that accepts it."""

from __future__ import annotations

import socket

from chaos.balancer import Balancer

from orderhub.testing.processes import free_port
from tests.unit.chaos.echo import echo_server


def test_a_connection_skips_a_backend_that_is_down() -> None:
    server, port = echo_server()
    down = free_port()  # nobody listens there
    balancer = Balancer([("127.0.0.1", down), ("127.0.0.1", port)]).start()
    try:
        for _ in range(3):  # whichever backend comes first
            with socket.create_connection(("127.0.0.1", balancer.port), timeout=5) as conn:
                conn.sendall(b"hi")
                assert conn.recv(100) == b"echo:hi"
    finally:
        balancer.close()
        server.close()
