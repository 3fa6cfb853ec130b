"""The chaos run's load balancer hands a connection to the next backend that accepts it."""

from __future__ import annotations

import socket
import threading

from chaos.balancer import Balancer

from orderhub.testing.processes import free_port


def _echo_server() -> tuple[socket.socket, int]:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"echo:" + conn.recv(100))

    threading.Thread(target=serve, daemon=True).start()
    return server, port


def test_a_connection_skips_a_backend_that_is_down() -> None:
    server, port = _echo_server()
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
