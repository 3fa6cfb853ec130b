"""How many feed long-polls one API key may hold open at once, in this process.

A long-poll (``GET /api/v1/feed?wait=...``) costs a task and, every
:data:`~orderhub.application.services.queries.FEED_POLL_SECONDS`, a short read; it never
holds a database connection while it waits. Still, a client looping without waiting for
its answers could open thousands: one more than ``per_key`` is answered at once with 429
``too-many-long-polls`` and ``Retry-After``. A read without ``wait`` is never counted.

The count is per process (each API process behind the load balancer has its own), and
kept on the event loop's thread: taking and giving back a place never awaits. A client that
goes away (a proxy's timeout, a WMS restarting) ends its poll at once
(:func:`unless_gone`): the server does not cancel a handler when its client leaves, and the
abandoned poll would keep its place, and read every few milliseconds, until its wait ran
out."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import Any, Final, TypeVar

from litestar.connection import ASGIConnection

from orderhub.entrypoints.web.problems import ProblemError

T = TypeVar("T")
RULE: Final = "too-many-long-polls"
LONG_POLLS_STATE: Final = "orderhub_long_polls"
RETRY_AFTER_SECONDS: Final = 1


class LongPolls:
    def __init__(self, *, per_key: int) -> None:
        if per_key <= 0:
            raise ValueError("per_key must be positive")
        self.per_key = per_key
        self._open: Counter[str] = Counter()

    def open(self, key: str) -> int:
        return self._open[key]

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Count one long-poll of ``key`` while the block runs; 429 when it has its share."""
        if self._open[key] >= self.per_key:
            raise ProblemError(
                429,
                RULE,
                f"API key {key!r} already has {self.per_key} feed long-polls open, the most "
                "one key may hold at once; wait for one to answer, or read without `wait`",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self._open[key] += 1
        try:
            yield
        finally:
            self._open[key] -= 1
            if self._open[key] <= 0:
                del self._open[key]


def long_polls_of(connection: ASGIConnection[Any, Any, Any, Any]) -> LongPolls:
    """The app's limiter (``create_app`` puts one in the app's state)."""
    found = connection.app.state[LONG_POLLS_STATE]
    if not isinstance(found, LongPolls):
        raise RuntimeError("no long-poll limiter in the app's state")
    return found


async def unless_gone(
    connection: ASGIConnection[Any, Any, Any, Any], work: Awaitable[T]
) -> T | None:
    """``work``'s result, or None when the client disconnects first (``work`` cancelled)."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnect(connection))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        return None
    finally:
        for pending in (task, watcher):
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending


async def _disconnect(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Until the client goes away (a GET's empty body is read on the way)."""
    while True:
        message = await connection.receive()
        if message["type"] == "http.disconnect":
            return
