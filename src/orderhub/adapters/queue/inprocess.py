"""Embedded mode: the queue is a heap in memory, worked by asyncio tasks in the API's loop.

Nothing here is durable, and it need not be: commands and inbox messages are committed to
the database before they are enqueued, and the sweeper queues again whatever a restart
dropped. A job that raises is retried with the hub's backoff (``Retry-After`` honoured for
transient channel errors) up to ``retry.max_attempts`` times, then left to the sweeper."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal

from orderhub.adapters.queue import jobs
from orderhub.application.hub import Hub, RetryPolicy
from orderhub.channels.spi import TransientChannelError
from orderhub.logging import get_logger

log = get_logger(__name__)

Kind = Literal["command", "inbox"]
Runner = Callable[[Hub, str], Awaitable[str]]

RUNNERS: Final[dict[Kind, Runner]] = {"command": jobs.run_dispatch, "inbox": jobs.run_inbox}


@dataclass(frozen=True, slots=True)
class Job:
    kind: Kind
    ident: str
    attempt: int = 1


class InProcessQueue:
    """A :class:`~orderhub.application.ports.CommandQueue` for one process.

    ``enqueue_*`` may be called before :meth:`start` (jobs wait) and from other threads
    (handed to the loop thread-safely). Jobs due at the same time run in enqueue order;
    ``concurrency`` of them run at once."""

    def __init__(
        self,
        *,
        concurrency: int = 4,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        runners: dict[Kind, Runner] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        self.rng = rng or random.Random()
        self._runners = runners or RUNNERS
        self._heap: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()
        self._hub: Hub | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._running = 0
        self._stopping = False

    # --- CommandQueue --------------------------------------------------------------------

    def enqueue_command(self, command_id: str, *, delay_seconds: float = 0) -> None:
        self._submit(Job("command", command_id), delay_seconds)

    def enqueue_inbox(self, message_id: str, *, delay_seconds: float = 0) -> None:
        self._submit(Job("inbox", message_id), delay_seconds)

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return bool(self._workers)

    async def start(self, hub: Hub) -> None:
        """Start the workers in the running loop; they run jobs with ``hub``."""
        if self._workers:
            raise RuntimeError("the in-process queue is already started")
        self._hub = hub
        self._wakeup = asyncio.Event()  # events bind to the loop that first waits on them
        self._idle = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stopping = False
        self._workers = [
            asyncio.create_task(self._work(), name=f"orderhub-queue-{n}")
            for n in range(self.concurrency)
        ]
        self._changed()
        log.info("queue.started", kind="in-process", concurrency=self.concurrency)

    async def stop(self, *, grace_seconds: float = 10.0) -> None:
        """Let running jobs finish (up to ``grace_seconds``), then cancel them. Queued jobs
        are dropped: their rows are in the database and the sweeper brings them back."""
        if not self._workers:
            return
        self._stopping = True
        self._wakeup.set()
        _, pending = await asyncio.wait(self._workers, timeout=grace_seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        dropped = len(self._heap)
        self._heap.clear()
        self._workers = []
        self._running = 0
        self._changed()
        log.info("queue.stopped", kind="in-process", dropped=dropped, cancelled=len(pending))

    async def join(self) -> None:
        """Wait until no job is queued (delayed ones included) or running: for tests."""
        while self._heap or self._running:
            self._idle.clear()
            await self._idle.wait()

    def pending(self) -> list[Job]:
        """Queued jobs, soonest first."""
        return [job for _, _, job in sorted(self._heap)]

    # --- internals -----------------------------------------------------------------------

    def _submit(self, job: Job, delay: float) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed() and threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self._push, job, delay)
        else:
            self._push(job, delay)

    def _push(self, job: Job, delay: float) -> None:
        due = time.monotonic() + max(delay, 0.0)
        heapq.heappush(self._heap, (due, next(self._seq), job))
        self._wakeup.set()
        self._changed()

    def _changed(self) -> None:
        if not self._heap and not self._running:
            self._idle.set()

    async def _next(self) -> Job | None:
        while not self._stopping:
            now = time.monotonic()
            if self._heap and self._heap[0][0] <= now:
                return heapq.heappop(self._heap)[2]
            timeout = self._heap[0][0] - now if self._heap else None
            self._wakeup.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
        return None

    async def _work(self) -> None:
        while (job := await self._next()) is not None:
            self._running += 1
            try:
                await self._run(job)
            finally:
                self._running -= 1
                self._changed()

    async def _run(self, job: Job) -> None:
        hub = self._hub
        assert hub is not None, "started without a hub"
        try:
            await self._runners[job.kind](hub, job.ident)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._retry_or_give_up(job, exc)

    def _retry_or_give_up(self, job: Job, exc: Exception) -> None:
        context = {"job": job.kind, "id": job.ident, "attempt": job.attempt}
        if job.attempt >= self.retry.max_attempts:
            log.error(
                "queue.gave_up",
                **context,
                error=f"{type(exc).__name__}: {exc}",
                note="left for the sweeper",
            )
            return
        retry_after = exc.retry_after if isinstance(exc, TransientChannelError) else None
        delay = self.retry.delay(job.attempt, retry_after=retry_after, rng=self.rng)
        error = (
            exc.message
            if isinstance(exc, TransientChannelError)
            else f"{type(exc).__name__}: {exc}"
        )
        log.warning("queue.retry", **context, delay=round(delay, 3), error=error)
        self._push(Job(job.kind, job.ident, job.attempt + 1), delay)
