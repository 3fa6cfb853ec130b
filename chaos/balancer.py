"""The load balancer in front of the two ``serve`` processes, as in production: a TCP
proxy on loopback that hands each new connection to the next serve that accepts it. A
serve killed mid-request breaks that connection (the marketplace sees an error and sends
again); the next connection goes to the other one."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from typing import Final

from orderhub.testing.processes import free_port

CONNECT_SECONDS: Final = 2.0


class Balancer:
    def __init__(self, backends: Sequence[tuple[str, int]]) -> None:
        self.backends = list(backends)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-balancer", daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> Balancer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the load balancer did not start")
        return self

    def close(self) -> None:
        """Stop accepting, end every connection it carries (their tasks cancelled and
        awaited: none is left pending for the garbage collector), stop the loop."""
        if self._thread.is_alive():
            done = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            with contextlib.suppress(Exception):
                done.result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port)
        )
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        for _ in range(len(self.backends)):
            host, port = self.backends[self._next % len(self.backends)]
            self._next += 1
            try:
                server_r, server_w = await asyncio.wait_for(
                    asyncio.open_connection(host, port), CONNECT_SECONDS
                )
            except (OSError, TimeoutError):
                continue
            await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w))
            return
        client_w.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.close()
