"""Publishing on the caller's own event loop, for brokers with an asyncio client (Redis).

:class:`~orderhub.adapters.queue.publisher.BackgroundPublisher` sends from a thread of its
own. Its sends are short, but every wake-up and socket call of that thread takes the GIL
from the event loop that serves requests and runs jobs: with publishing left out (an
experiment), ``serve`` took 16-22% more webhooks a second (issue 10, docs/performance.md).
:class:`LoopPublisher` sends on the loop that called ``submit``, with an asyncio client of
that loop: no thread, no hand-over.

Each loop has a *lane*: a bounded buffer and at most one send in flight. An item waits up
to ``linger_seconds`` for others to join it (a full batch goes at once), then the batch is
sent in one call (``send_many``: one Redis pipeline); what piles up meanwhile goes next,
without lingering. Nothing blocks the loop: a send is a task, bounded by
``timeout_seconds`` as a whole.

What cannot be sent is *given up*, as with the thread publisher (``on_give_up``: logged
and counted by the caller; the rows are committed and the sweeper queues them again): the
buffer is full, the send failed or timed out, the broker kept failing (a breaker per
lane), or the publisher closed.

A lane can outlive its loop's usefulness: ``asyncio.run`` returns with items still
lingering, or cancels a send in flight. Those items are not lost while the process lives:
a cancelled send hands its items to ``fallback`` (the thread publisher: a message sent
twice is harmless, its claim finds it done), and :meth:`flush` and :meth:`close`, called
from any thread, drain a running loop's lane on that loop and hand a stopped loop's items
to ``fallback``. ``submit`` off any event loop goes to ``fallback`` too.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from orderhub.adapters.queue.publisher import (
    DEFAULT_BATCH,
    DEFAULT_CAPACITY,
    Breaker,
    GiveUpReason,
    check_linger,
    classified,
    give_up,
    quietly,
)
from orderhub.logging import get_logger

__all__ = ["LoopPublisher"]

log = get_logger(__name__)

T = TypeVar("T")
C = TypeVar("C")

DEFAULT_TIMEOUT_SECONDS: Final = 10.0
LEAST_WAIT_SECONDS: Final = 0.05
"""What :meth:`LoopPublisher.flush` and :meth:`LoopPublisher.close` leave a running loop
to answer when their own timeout is used up."""


@dataclass(eq=False)
class _Lane(Generic[T, C]):
    """One event loop's buffer, client and send in flight: touched on that loop, except by
    :meth:`LoopPublisher._rescue` from another thread (under :attr:`LoopPublisher._lock`,
    the buffer copied in one call) for a loop that no longer runs or did not retire the
    lane in time."""

    loop: asyncio.AbstractEventLoop
    client: C
    buffer: deque[tuple[float, T]] = field(default_factory=deque)  # (handed at, item)
    in_flight: list[T] = field(default_factory=list)
    sending: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None
    breaker: Breaker = field(default_factory=Breaker)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    retired: bool = False  # closing: no send starts any more

    def outstanding(self) -> int:
        return len(self.buffer) + len(self.in_flight)


class LoopPublisher(Generic[T, C]):
    """Hands items to ``send_many(client, items)`` on the event loop that submitted them.

    ``make_client()`` is called on a loop the first time it submits (an asyncio client is
    bound to the loop it connects on); ``close_client(client)`` when the publisher closes,
    on that loop if it still runs."""

    def __init__(
        self,
        send_many: Callable[[C, list[T]], Awaitable[None]],
        *,
        make_client: Callable[[], C],
        close_client: Callable[[C], Awaitable[None]],
        fallback: Callable[[T], bool],
        on_give_up: Callable[[T, GiveUpReason, BaseException | None], None],
        on_sent: Callable[[T], None] | None = None,
        classify: Callable[[BaseException], GiveUpReason] | None = None,
        batch: int = DEFAULT_BATCH,
        linger_seconds: float = 0.0,
        capacity: int = DEFAULT_CAPACITY,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        breaker: Callable[[], Breaker] = Breaker,
    ) -> None:
        if capacity < 1 or batch < 1 or timeout_seconds <= 0:
            raise ValueError("capacity and batch must be at least 1, the timeout positive")
        check_linger(linger_seconds)
        self._send_many = send_many
        self._make_client = make_client
        self._close_client = close_client
        self._fallback = fallback
        self._on_give_up = on_give_up
        self._on_sent = on_sent
        self._classify = classify or (lambda exc: "error")
        self._batch = batch
        self._linger = linger_seconds
        self.capacity = capacity
        self._timeout = timeout_seconds
        self._new_breaker = breaker
        self._lock = threading.Lock()  # the lanes dict, and a stopped loop's lane
        self._lanes: dict[int, _Lane[T, C]] = {}  # by id(loop)
        self._closed = False

    # --- the caller's side (on its event loop) ---------------------------------------------

    def submit(self, item: T) -> bool:
        """Buffer ``item`` on the running loop's lane (``fallback`` off any loop); False
        (and ``on_give_up``) when it cannot be."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return self._fallback(item)
        if self._closed:
            return self._give_up_all([item], "closed", None)
        try:
            lane = self._lane(loop)
        except Exception:  # no client to be had on this loop: the thread publisher sends
            log.exception("queue.publisher_client_failed")
            return self._fallback(item)
        if lane.outstanding() >= self.capacity:
            return self._give_up_all([item], "buffer_full", None)
        lane.buffer.append((time.monotonic(), item))
        lane.idle.clear()
        if lane.sending is None:
            if len(lane.buffer) >= self._batch or self._linger <= 0:
                self._send_now(lane)
            elif lane.timer is None:
                lane.timer = loop.call_later(self._linger, self._send_now, lane)
        return True

    def pending(self) -> int:
        """Items buffered or being sent, on every loop."""
        with self._lock:
            return sum(lane.outstanding() for lane in self._lanes.values())

    async def drain(self, seconds: float) -> bool:
        """On a loop: wait until its lane has sent (or given up) everything; False if
        ``seconds`` passed first."""
        lane = self._lanes.get(id(asyncio.get_running_loop()))
        if lane is None or not lane.outstanding():
            return True
        if lane.timer is not None and lane.sending is None:
            self._send_now(lane)  # no more lingering
        try:
            await asyncio.wait_for(lane.idle.wait(), max(seconds, 0.0))
        except TimeoutError:
            return False
        return True

    # --- from any thread -----------------------------------------------------------------

    def flush(self, timeout: float) -> bool:
        """Wait (blocking; never on a loop with a lane) until every lane has sent what it
        holds, or handed it to ``fallback`` (a loop no longer running); False if
        ``timeout`` seconds passed first."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._lock:
            lanes = list(self._lanes.values())
        done = True
        for lane in lanes:
            left = max(deadline - time.monotonic(), 0.0)
            if lane.loop.is_running() and not lane.loop.is_closed():
                if _on_loop(lane.loop):
                    log.warning("queue.flush_on_loop", note="cannot wait here: use drain()")
                    done = False
                    continue
                done = _wait_on(lane.loop, self.drain(left), left) and done
            if not lane.loop.is_running():
                self._rescue(lane)
        return done

    def close(self, timeout: float) -> bool:
        """Take no more items (they are given up as ``closed``), send what is held for up
        to ``timeout`` seconds, hand what is left to ``fallback`` and close each lane's
        client."""
        deadline = time.monotonic() + max(timeout, 0.0)
        self._closed = True
        done = self.flush(timeout)
        with self._lock:
            lanes = list(self._lanes.values())
            self._lanes.clear()
        for lane in lanes:
            left = max(deadline - time.monotonic(), 0.0)
            if _on_loop(lane.loop):  # nothing can wait here for the loop's own sends
                log.warning("queue.close_on_loop", note="close from another thread")
                lane.retired = True
                if lane.outstanding():
                    done = False
                self._rescue(lane)  # a send still in flight makes a harmless duplicate
                lane.loop.create_task(self._close_quietly(lane.client))
                continue
            if lane.loop.is_running() and _wait_on(lane.loop, self._retire(lane), left):
                continue
            # the loop stopped, or did not retire the lane in time: what it holds goes to
            # the thread publisher from here (a send finishing meanwhile makes a harmless
            # duplicate), never dropped with the lane
            lane.retired = True
            if lane.outstanding():
                done = False
            self._rescue(lane)
        return done

    # --- on the lane's loop --------------------------------------------------------------

    def _lane(self, loop: asyncio.AbstractEventLoop) -> _Lane[T, C]:
        lane = self._lanes.get(id(loop))
        if lane is None or lane.loop is not loop:  # an id reused by a later loop
            lane = _Lane(loop=loop, client=self._make_client(), breaker=self._new_breaker())
            with self._lock:
                stale = self._lanes.get(id(loop))
                self._lanes[id(loop)] = lane
            if stale is not None:
                self._rescue(stale)
        return lane

    def _send_now(self, lane: _Lane[T, C]) -> None:
        if lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None
        if lane.sending is not None or not lane.buffer or lane.retired:
            if not lane.outstanding():
                lane.idle.set()
            return
        take = min(self._batch, len(lane.buffer))
        lane.in_flight = [lane.buffer.popleft()[1] for _ in range(take)]
        lane.sending = lane.loop.create_task(self._send(lane, lane.in_flight))

    async def _send(self, lane: _Lane[T, C], items: list[T]) -> None:
        cancelled = False
        try:
            if lane.breaker.is_open(time.monotonic()):
                self._give_up_all(items, "broker_unavailable", None)
                return
            try:
                await asyncio.wait_for(self._send_many(lane.client, items), self._timeout)
            except asyncio.CancelledError:
                # the loop is going away (asyncio.run's end) or the lane retires: whether
                # Redis has these is not known, and sending them again is harmless; what
                # waits behind them goes too, as no send follows this one on this loop
                cancelled = True
                waiting = list(lane.buffer)  # one copy: a closing thread may rescue it too
                lane.buffer.clear()
                for item in [*items, *(item for _, item in waiting)]:
                    self._fallback(item)
                lane.idle.set()
                raise
            except Exception as exc:
                lane.breaker.failed(time.monotonic())
                self._give_up_all(items, classified(self._classify, exc), exc)
                return
            lane.breaker.succeeded()
            if self._on_sent is not None:
                for item in items:
                    quietly("sent", self._on_sent, item)
        finally:
            lane.in_flight = []
            lane.sending = None
            if not cancelled:
                self._send_now(lane)  # what piled up meanwhile goes at once

    async def _retire(self, lane: _Lane[T, C]) -> bool:
        """On the lane's loop, once it is out of the lanes: hand what it still holds to
        the fallback (the thread publisher, closed next), close its client."""
        lane.retired = True  # a send ending now starts no other
        if lane.timer is not None:
            lane.timer.cancel()
        if lane.sending is not None:
            lane.sending.cancel()  # its items go to the fallback (or it just ended)
            await asyncio.gather(lane.sending, return_exceptions=True)
        self._rescue(lane)
        await self._close_quietly(lane.client)
        return True

    async def _close_quietly(self, client: C) -> None:
        try:
            await self._close_client(client)
        except Exception:
            log.exception("queue.publisher_client_close_failed")

    # --- helpers -------------------------------------------------------------------------

    def _rescue(self, lane: _Lane[T, C]) -> None:
        """What a lane still holds to ``fallback``: its loop does not run, or the lane
        retires. A send it had in flight that never finished: those go too."""
        with self._lock:  # the loop may still touch the buffer: copied in one call
            waiting = list(lane.buffer)
            lane.buffer.clear()
            items = [item for _, item in waiting] + lane.in_flight
            lane.in_flight = []
            if self._lanes.get(id(lane.loop)) is lane and lane.loop.is_closed():
                del self._lanes[id(lane.loop)]
        for item in items:
            self._fallback(item)

    def _give_up_all(self, items: list[T], reason: GiveUpReason, exc: BaseException | None) -> bool:
        for item in items:
            give_up(self._on_give_up, item, reason, exc)
        return False


def _wait_on(
    loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, bool], seconds: float
) -> bool:
    """Run ``work`` on ``loop`` (running, in another thread) and wait for its answer;
    False if it could not be run or did not answer within ``seconds``."""
    try:
        future = asyncio.run_coroutine_threadsafe(work, loop)
    except RuntimeError:  # the loop closed meanwhile
        work.close()
        return False
    try:
        return future.result(max(seconds, LEAST_WAIT_SECONDS))
    except Exception:  # timed out (or the work failed): it is not waited for any more
        future.cancel()
        return False


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
