"""A TCP proxy the test can pause, to make a broker hang without touching the shared one.

While paused, the proxy still accepts connections but forwards nothing either way: to a
client, the broker has gone silent (a read waits, a confirm never comes). Whatever
arrived meanwhile is forwarded on :meth:`PausableProxy.resume`."""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator

CHUNK = 65536
POLL_SECONDS = 0.05


class PausableProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(POLL_SECONDS)
        self.port: int = self._listener.getsockname()[1]
        self._gate = threading.Condition()
        self._paused = False
        self._closed = False
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept, "accept")

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """From now on nothing is forwarded (no chunk is in the middle of being sent)."""
        with self._gate:
            self._paused = True

    def resume(self) -> None:
        with self._gate:
            self._paused = False
            self._gate.notify_all()

    @contextlib.contextmanager
    def paused_for_a_while(self) -> Iterator[None]:
        """Paused inside the block, resumed on the way out, whatever happens."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def close(self) -> None:
        with self._gate:
            self._closed = True
            self._paused = False
            self._gate.notify_all()
        self._listener.close()
        for sock in list(self._sockets):
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def _spawn(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(
            target=target,  # type: ignore[arg-type]
            args=args,
            name=f"proxy-{name}",
            daemon=True,
        )
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.settimeout(None)  # blocking; the pumps poll with select
                self._sockets.append(sock)
            self._spawn(self._pump, "up", client, server)
            self._spawn(self._pump, "down", server, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while not self._closed:
                readable, _, _ = select.select([source], [], [], POLL_SECONDS)
                if not readable:
                    continue
                data = source.recv(CHUNK)
                if not data:
                    break
                with self._gate:
                    while self._paused and not self._closed:
                        self._gate.wait()
                    if self._closed:
                        break
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
