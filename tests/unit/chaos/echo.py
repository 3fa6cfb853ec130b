"""A loopback echo server for the chaos network pieces' tests: answers ``echo:<bytes>``."""

from __future__ import annotations

import socket
import threading


def echo_server() -> tuple[socket.socket, int]:
    """A listening socket (close it to stop) and its port; one thread per connection."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(100):
                conn.sendall(b"echo:" + data)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return server, port
