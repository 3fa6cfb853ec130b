"""Publishing off the caller's thread: a bounded buffer drained by dedicated daemon threads.

Broker clients block (a socket read, a publisher confirm), and ``enqueue_*`` is called from
async request handlers and async actors, where a blocking call stalls the whole event loop.
:class:`BackgroundPublisher` takes an item with a non-blocking put and returns at once; one
or two daemon threads hand the items to ``send``, each within the client's own timeouts.

``send_many`` (optional) publishes what has piled up in one go, up to ``batch`` items: one
round trip to the broker for the lot (a Redis pipeline) instead of one each. Under load
that matters twice: fewer round trips, and far less time holding the GIL, which the
event loop needs back after each of its own socket calls (a publisher thread that
publishes one id per round trip took 30% of a ``serve`` process's samples in issue 10's
profile, and the event loop waited for the GIL behind it).

``linger_seconds`` (with ``send_many`` only) lets a batch gather: the oldest item waits
up to that long, the thread unwoken by the items that arrive meanwhile, then what has
come is sent. Without it the thread woke for nearly every item at a thousand a second
and sent batches of one or two, and each wake-up and send took the GIL from the event
loop (publishing was a quarter of ``serve``'s CPU per webhook; 5 ms of linger took about
a quarter of that back, docs/performance.md). A full batch, a ``flush`` or a ``close``
cuts the wait short. The price: an id reaches the broker up to that much later, and an
id still waiting when the process is killed is left to the sweeper, like one given up.

What cannot be published is *given up*: the buffer is full, ``send`` raised or timed out,
the broker kept failing (a short circuit breaker gives up at once for a few seconds
instead of letting every buffered item wait for its own timeout), or the publisher closed
before the item's turn. ``on_give_up`` is told, and the caller logs and counts it: the
rows are committed, and the sweeper queues them again.

Thread-affine clients (pika's ``BlockingConnection``) stay on the thread that opened them:
``on_idle`` and ``on_thread_exit`` run on each publisher thread, so the owner can service
or close that thread's connection there.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, Literal, TypeVar

from orderhub.logging import get_logger

__all__ = [
    "BackgroundPublisher",
    "Breaker",
    "GiveUpReason",
    "check_linger",
    "classified",
    "give_up",
    "quietly",
]

log = get_logger(__name__)

T = TypeVar("T")

GiveUpReason = Literal["buffer_full", "error", "timeout", "broker_unavailable", "closed"]

DEFAULT_CAPACITY: Final = 10_000
DEFAULT_BATCH: Final = 100
DEFAULT_LINGER_SECONDS: Final = 0.005
MAX_LINGER_SECONDS: Final = 3600.0
IDLE_SECONDS: Final = 1.0
EXIT_SECONDS: Final = 0.5
"""What :meth:`BackgroundPublisher.close` leaves a thread to finish (its connection's
goodbye) when the drain used the whole timeout."""


@dataclass(slots=True)
class Breaker:
    """After ``threshold`` failures in a row, give up at once for ``cooldown_seconds``;
    then let one item try again (and reopen if it fails too)."""

    threshold: int = 3
    cooldown_seconds: float = 5.0
    failures: int = 0
    open_until: float = 0.0

    def is_open(self, now: float) -> bool:
        return self.failures >= self.threshold and now < self.open_until

    def failed(self, now: float) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.open_until = now + self.cooldown_seconds

    def succeeded(self) -> None:
        self.failures = 0


class BackgroundPublisher(Generic[T]):
    """Hands items to ``send`` on ``threads`` daemon threads (started on first use).

    ``submit`` never blocks (beyond a lock no thread holds while sending); ``flush``
    waits, bounded, for what was submitted before it; ``close`` stops taking items,
    drains what it can within its timeout and gives up the rest."""

    def __init__(
        self,
        send: Callable[[T], None],
        *,
        on_give_up: Callable[[T, GiveUpReason, BaseException | None], None],
        send_many: Callable[[list[T]], None] | None = None,
        batch: int = DEFAULT_BATCH,
        linger_seconds: float = 0.0,
        on_sent: Callable[[T], None] | None = None,
        classify: Callable[[BaseException], GiveUpReason] | None = None,
        on_idle: Callable[[], None] | None = None,
        on_thread_exit: Callable[[], None] | None = None,
        capacity: int = DEFAULT_CAPACITY,
        threads: int = 1,
        breaker: Breaker | None = None,
        idle_seconds: float = IDLE_SECONDS,
        name: str = "orderhub-publisher",
    ) -> None:
        if capacity < 1 or threads < 1 or batch < 1:
            raise ValueError("capacity, threads and batch must be at least 1")
        check_linger(linger_seconds)
        self._send = send
        self._send_many = send_many
        self._batch = batch if send_many is not None else 1
        self._full = min(self._batch, capacity)  # a batch to send without lingering
        self._linger = linger_seconds if send_many is not None else 0.0
        self._hurry = threading.Event()  # ends a linger: a full batch, a flush, a close
        self._flushing = 0  # flush() calls waiting: no linger meanwhile
        self._lingering = 0  # threads waiting for a batch to gather
        self._on_give_up = on_give_up
        self._on_sent = on_sent
        self._classify = classify or (lambda exc: "error")
        self._on_idle = on_idle
        self._on_thread_exit = on_thread_exit
        self.capacity = capacity
        self._thread_count = threads
        self._breaker = breaker or Breaker()
        self._idle_seconds = idle_seconds
        self._name = name
        self._cond = threading.Condition()
        self._buffer: deque[tuple[int, float, T]] = deque()  # (seq, handed at, item)
        self._outstanding: set[int] = set()  # buffered or being sent
        self._seq = itertools.count()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._stopping = False

    # --- the caller's side ---------------------------------------------------------------

    def submit(self, item: T) -> bool:
        """Buffer ``item`` for publishing; False (and ``on_give_up``) when it cannot be."""
        reason: GiveUpReason | None = None
        with self._cond:
            if self._closed:
                reason = "closed"
            elif len(self._buffer) >= self.capacity:
                reason = "buffer_full"
            else:
                self._start_threads()  # may raise (no thread to be had): nothing buffered
                seq = next(self._seq)
                self._buffer.append((seq, time.monotonic(), item))
                self._outstanding.add(seq)
                self._cond.notify()
                if len(self._buffer) >= self._full:
                    self._hurry.set()
        if reason is not None:
            self._give_up(item, reason, None)
            return False
        return True

    def pending(self) -> int:
        """Items buffered or being sent."""
        with self._cond:
            return len(self._outstanding)

    def buffered(self) -> int:
        """Items waiting in the buffer (not yet taken by a thread to send)."""
        with self._cond:
            return len(self._buffer)

    def lingering(self) -> bool:
        """Whether a thread is waiting for a batch to gather."""
        with self._cond:
            return self._lingering > 0

    def flush(self, timeout: float) -> bool:
        """Wait until everything submitted before this call is sent or given up; False
        if ``timeout`` seconds passed first."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            if not self._outstanding:
                return True
            horizon = max(self._outstanding)

            def done() -> bool:
                return not self._outstanding or min(self._outstanding) > horizon

            self._flushing += 1  # a lingering thread sends at once, and none lingers now
            self._hurry.set()
            try:
                return self._cond.wait_for(done, timeout=max(deadline - time.monotonic(), 0.0))
            finally:
                self._flushing -= 1

    def close(self, timeout: float) -> bool:
        """Take no more items, publish what is buffered for up to ``timeout`` seconds,
        give up the rest and let the threads go. True if everything was handled in time
        (a thread stuck in ``send`` is a daemon and is left behind)."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            self._closed = True
        drained = self.flush(timeout)  # which ends a linger
        with self._cond:
            self._stopping = True
            left = list(self._buffer)
            self._buffer.clear()
            for seq, _, _ in left:
                self._outstanding.discard(seq)
            self._cond.notify_all()
            threads, self._threads = self._threads, []
        for _, _, item in left:
            self._give_up(item, "closed", None)
        for thread in threads:  # idle ones leave at once; a little time to say goodbye
            thread.join(timeout=max(deadline - time.monotonic(), EXIT_SECONDS))
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck:
            log.warning("queue.publisher_stuck", threads=stuck, note="left behind (daemon)")
        return drained and not stuck

    # --- the publishing threads ----------------------------------------------------------

    def _start_threads(self) -> None:
        """Under the lock: start the threads the first time an item arrives."""
        if self._threads or self._stopping:
            return
        for n in range(self._thread_count):
            thread = threading.Thread(target=self._run, name=f"{self._name}-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _next(self) -> list[tuple[int, T]] | None:
        """The next items (up to ``batch``, in order), None to stop. Lingers (unlocked)
        for a batch to gather; runs ``on_idle`` (unlocked) while there is none."""
        while True:
            with self._cond:
                linger = 0.0
                if self._buffer:
                    linger = self._linger_left()
                    if linger <= 0:
                        return self._take()
                    self._hurry.clear()  # set again by a full batch, a flush or a close
                    self._lingering += 1
                elif self._stopping:
                    return None
                else:
                    self._cond.wait(self._idle_seconds)
                    if self._buffer or self._stopping:
                        continue
            if linger > 0:  # no lock held: submits append without waking this thread
                self._hurry.wait(linger)
                with self._cond:
                    self._lingering -= 1
                    if self._buffer:  # close() may have given it up meanwhile
                        return self._take()
            elif self._on_idle is not None:
                self._quietly("idle", self._on_idle)

    def _linger_left(self) -> float:
        """Under the lock, with items buffered: how much longer the oldest may wait for
        others to join it (0: send now)."""
        if self._linger <= 0 or len(self._buffer) >= self._full or self._closed or self._flushing:
            return 0.0
        return self._linger - (time.monotonic() - self._buffer[0][1])

    def _take(self) -> list[tuple[int, T]]:
        """Under the lock: up to ``batch`` items, oldest first."""
        take = min(self._batch, len(self._buffer))
        return [(seq, item) for seq, _, item in (self._buffer.popleft() for _ in range(take))]

    def _run(self) -> None:
        try:
            while (entries := self._next()) is not None:
                try:
                    self._publish([item for _, item in entries])
                finally:
                    with self._cond:
                        for seq, _ in entries:
                            self._outstanding.discard(seq)
                        self._cond.notify_all()
        finally:
            if self._on_thread_exit is not None:
                self._quietly("thread_exit", self._on_thread_exit)

    def _publish(self, items: list[T]) -> None:
        """Send ``items`` (one, or a batch through ``send_many``): all sent, or all given
        up with the same reason."""
        with self._cond:
            unavailable = self._breaker.is_open(time.monotonic())
        if unavailable:
            for item in items:
                self._give_up(item, "broker_unavailable", None)
            return
        try:
            if self._send_many is not None:
                self._send_many(items)
            else:
                self._send(items[0])  # one at a time (``batch`` is 1)
        except Exception as exc:
            with self._cond:
                self._breaker.failed(time.monotonic())
            reason = self._reason(exc)
            for item in items:
                self._give_up(item, reason, exc)
            return
        with self._cond:
            self._breaker.succeeded()
        if self._on_sent is not None:
            for item in items:
                self._quietly("sent", self._on_sent, item)

    def _reason(self, exc: BaseException) -> GiveUpReason:
        return classified(self._classify, exc)

    def _give_up(self, item: T, reason: GiveUpReason, exc: BaseException | None) -> None:
        give_up(self._on_give_up, item, reason, exc)

    def _quietly(self, what: str, hook: Callable[..., object], *args: object) -> None:
        quietly(what, hook, *args)


# --- shared with the loop publisher ----------------------------------------------------


def check_linger(seconds: float) -> None:
    if not 0.0 <= seconds <= MAX_LINGER_SECONDS:  # NaN too
        raise ValueError(f"linger_seconds must be within 0 and {MAX_LINGER_SECONDS}")


def classified(
    classify: Callable[[BaseException], GiveUpReason], exc: BaseException
) -> GiveUpReason:
    """Why ``exc`` made a publish give up (``error`` when the classifier itself fails)."""
    try:
        return classify(exc)
    except Exception:
        return "error"


def give_up(
    on_give_up: Callable[[T, GiveUpReason, BaseException | None], None],
    item: T,
    reason: GiveUpReason,
    exc: BaseException | None,
) -> None:
    """Tell the owner ``item`` was given up; a failing hook is logged, never raised."""
    try:
        on_give_up(item, reason, exc)
    except Exception:
        log.exception("queue.give_up_hook_failed", reason=reason)


def quietly(what: str, hook: Callable[..., object], *args: object) -> None:
    """Run an owner's hook; a failure is logged, never raised into the publisher."""
    try:
        hook(*args)
    except Exception:
        log.exception("queue.publisher_hook_failed", hook=what)
