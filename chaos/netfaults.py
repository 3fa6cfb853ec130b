"""A fault-injecting TCP proxy on loopback, between the hub's processes and a shared server
(PostgreSQL, Redis, RabbitMQ). The machine's servers are shared with other work and CI, so
a run never restarts them; it makes the hub's processes see what a restart, a frozen
server or a network partition looks like from their side of the socket:

* :meth:`FaultProxy.pause`: every byte held both ways (and new connections held before they
  reach the server) for a while, connections kept: a frozen server, or a partition shorter
  than TCP's own timeouts (what ``unreachable`` is).
* :meth:`FaultProxy.reset`: every open connection reset at once (RST to the client, the
  server's side closed: an open transaction is rolled back), then new connections refused
  for a while: ``pg_ctl stop -m immediate`` and a start, or a broker killed and started.
* :meth:`FaultProxy.close_all`: every open connection closed with a FIN, then new
  connections refused for a while: ``pg_ctl stop -m fast`` and a start.

Each fault ends by itself after its duration; the calls return at once and are safe from
any thread."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from typing import Final

from orderhub.testing.processes import free_port

CONNECT_SECONDS: Final = 5.0


class FaultProxy:
    def __init__(self, host: str, port: int, name: str = "proxy") -> None:
        self.upstream = (host, port)
        self.name = name
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"chaos-{name}", daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._connections: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._refusing_until = 0.0
        self._paused_until = 0.0
        self.connections_made = 0

    # --- life --------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"the {self.name} proxy did not start")
        return self

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self._refusing_until = float("inf")  # no relistening
        for pair in list(self._connections):
            for writer in pair:
                writer.transport.abort()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = self._loop.run_until_complete(self._listen())
        self._ready.set()
        self._loop.run_forever()

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    # --- faults (any thread) -------------------------------------------------------------

    def pause(self, seconds: float) -> None:
        """Hold all traffic both ways for ``seconds``; connections stay open."""
        self._call(self._pause, seconds)

    def reset(self, refuse_seconds: float) -> None:
        """Reset every connection, then refuse new ones for ``refuse_seconds``."""
        self._call(self._drop_all, True, refuse_seconds)

    def close_all(self, refuse_seconds: float) -> None:
        """Close every connection (FIN), then refuse new ones for ``refuse_seconds``."""
        self._call(self._drop_all, False, refuse_seconds)

    def open_connections(self) -> int:
        return len(self._connections)

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        done = threading.Event()

        def run() -> None:
            try:
                fn(*args)
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(10)

    # --- in the loop -------------------------------------------------------------------

    def _pause(self, seconds: float) -> None:
        assert self._flowing is not None
        self._flowing.clear()
        until = self._loop.time() + seconds
        self._paused_until = max(self._paused_until, until)
        self._loop.call_at(self._paused_until, self._maybe_resume)

    def _maybe_resume(self) -> None:
        assert self._flowing is not None
        if self._loop.time() >= self._paused_until - 1e-3:
            self._flowing.set()

    def _drop_all(self, hard: bool, refuse_seconds: float) -> None:
        if self._server is not None:
            self._server.close()  # the port refuses from now on
            self._server = None
        for pair in list(self._connections):
            client, server = pair
            if hard:
                sock = client.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                client.transport.abort()
                server.transport.abort()
            else:
                client.transport.close()
                server.transport.close()
            self._connections.discard(pair)
        until = self._loop.time() + refuse_seconds
        self._refusing_until = max(self._refusing_until, until)
        self._loop.call_at(self._refusing_until, self._maybe_listen)

    def _maybe_listen(self) -> None:
        if self._server is None and self._loop.time() >= self._refusing_until - 1e-3:
            self._loop.create_task(self._relisten())

    async def _relisten(self) -> None:
        for _ in range(50):
            if self._server is not None:
                return
            try:
                self._server = await self._listen()
                return
            except OSError:  # the port still in use for a moment
                await asyncio.sleep(0.1)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        await self._flowing.wait()  # a frozen server does not answer the handshake either
        try:
            server_r, server_w = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream), CONNECT_SECONDS
            )
        except (OSError, TimeoutError):
            client_w.transport.abort()
            return
        if self._server is None:  # a restart began while connecting
            server_w.transport.abort()
            client_w.transport.abort()
            return
        pair = (client_w, server_w)
        self._connections.add(pair)
        self.connections_made += 1
        try:
            await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))
        finally:
            self._connections.discard(pair)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                if writer.is_closing():
                    return
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()
