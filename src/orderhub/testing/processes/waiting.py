"""Waiting with a deadline: for a condition, a port, an HTTP answer; free ports.

Every wait polls until a deadline; nothing here sleeps to assert. A wait is given the
processes it depends on: ``alive`` (a :class:`Watch`) fails it at once when one of them
exits (:class:`~.failures.ProcessDied`), and the timeout (:class:`~.failures.WaitTimedOut`)
shows the state and log tail of each of them and of ``processes``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Protocol, TypeVar

import httpx

from orderhub.testing.processes.failures import NotYet, Reported, WaitTimedOut

__all__ = [
    "POLL_SECONDS",
    "WAIT_SECONDS",
    "Supervised",
    "Watch",
    "eventually",
    "free_port",
    "port_open",
    "run_async",
    "wait_for_http",
    "wait_for_port",
    "wait_until",
]

T = TypeVar("T")

WAIT_SECONDS: Final = 45.0
"""The default deadline: generous, since CI machines are small and busy; a wait that
succeeds returns as soon as it can, so this only bounds how long a failure takes."""
POLL_SECONDS: Final = 0.1

Transient = tuple[type[Exception], ...]


class Supervised(Reported, Protocol):
    """A process a wait can depend on (:class:`~.managed.ManagedProcess` is one)."""

    def check_alive(self) -> None:
        """Raise :class:`~.failures.ProcessDied` when it has exited unexpectedly."""
        ...


class Watch:
    """The processes a wait depends on. Calling it raises
    :class:`~.failures.ProcessDied` when one of them has exited (unless it was meant to);
    given to :func:`wait_until` as ``alive``, a timeout shows their logs too. ``None``
    (a process not created yet) is skipped."""

    def __init__(self, *processes: Supervised | None) -> None:
        self.processes: tuple[Supervised, ...] = tuple(p for p in processes if p is not None)

    def __call__(self) -> None:
        for process in self.processes:
            process.check_alive()


def wait_until(
    probe: Callable[[], T | None],
    what: str,
    *,
    timeout: float = WAIT_SECONDS,
    interval: float = POLL_SECONDS,
    alive: Callable[[], None] | None = None,
    processes: Iterable[Reported] = (),
    transient: Transient = (),
) -> T:
    """Call ``probe`` until it returns something truthy, and return that.

    A probe may raise :class:`~.failures.NotYet` (its text says what it sees) or one of
    ``transient`` (say ``httpx.TransportError``): not there yet either. ``alive`` is called
    first on every round and raises when something the wait depends on has died, so a
    crash fails at once instead of at the deadline. After ``timeout`` seconds:
    :class:`~.failures.WaitTimedOut` naming ``what`` and the last thing seen, with the
    report of each of ``processes`` and, when ``alive`` is a :class:`Watch`, of its
    processes."""
    watched = list(processes)
    if isinstance(alive, Watch):
        watched += [p for p in alive.processes if p not in watched]
    deadline = time.monotonic() + timeout
    seen = "nothing yet"
    while True:
        if alive is not None:
            alive()
        try:
            found = probe()
        except NotYet as exc:
            seen = str(exc) or seen
        except transient as exc:
            seen = f"{type(exc).__name__}: {exc}"
        else:
            if found:
                return found
            seen = repr(found)
        if time.monotonic() >= deadline:
            raise WaitTimedOut(
                f"timed out after {timeout:g} s waiting for {what} (seen: {seen})", watched
            )
        time.sleep(interval)


def eventually(
    what: str,
    probe: Callable[[], T],
    *,
    timeout: float = WAIT_SECONDS,
    interval: float = POLL_SECONDS,
    alive: Callable[[], None] | None = None,
    processes: Iterable[Reported] = (),
    transient: Transient = (httpx.TransportError,),
) -> T:
    """Call ``probe`` until it returns without raising :class:`~.failures.NotYet` (or a
    transport error), and return what it returned, falsy or not; otherwise as
    :func:`wait_until`."""
    boxed = wait_until(
        lambda: (probe(),),
        what,
        timeout=timeout,
        interval=interval,
        alive=alive,
        processes=processes,
        transient=transient,
    )
    return boxed[0]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it). Another process may take
    it before the caller binds it: retry a start that fails with "address in use"."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1", *, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(
    port: int,
    *,
    host: str = "127.0.0.1",
    what: str | None = None,
    timeout: float = WAIT_SECONDS,
    alive: Callable[[], None] | None = None,
    processes: Iterable[Reported] = (),
) -> None:
    """Until something accepts connections on ``host:port`` (see :func:`wait_until`)."""
    wait_until(
        lambda: port_open(port, host),
        what or f"{host}:{port} to accept connections",
        timeout=timeout,
        alive=alive,
        processes=processes,
    )


def wait_for_http(
    url: str,
    *,
    status: int = 200,
    what: str | None = None,
    timeout: float = WAIT_SECONDS,
    interval: float = POLL_SECONDS,
    request_timeout: float = 2.0,
    alive: Callable[[], None] | None = None,
    processes: Iterable[Reported] = (),
) -> httpx.Response:
    """Until ``GET url`` answers ``status`` (a health or readiness URL); that response.
    Connection errors and other answers count as not yet; the timeout says the last
    answer seen (see :func:`wait_until`)."""

    def probe() -> httpx.Response:
        response = httpx.get(url, timeout=request_timeout)
        if response.status_code != status:
            raise NotYet(f"{response.status_code}: {response.text[:200]}")
        return response

    return eventually(
        what or f"GET {url} to answer {status}",
        probe,
        timeout=timeout,
        interval=interval,
        alive=alive,
        processes=processes,
    )


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to the end on a private event loop in another thread: from
    synchronous tests and fixtures, never touching an event loop of the caller's."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()
