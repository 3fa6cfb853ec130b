"""``orderhub serve --workers N``: N API processes on one host, one listening socket.

The supervisor (this process) binds the socket, then starts N children (``spawn``: fresh
interpreters, nothing inherited but the socket and the environment); each runs the same
app as ``orderhub serve`` on the shared socket, and the kernel hands each new connection
to one of them.

* Metrics: every child must see every other's counts, so the supervisor gives them one
  ``PROMETHEUS_MULTIPROC_DIR``. When the environment names none, it is a new directory of
  this run (removed at exit); an operator's own directory (shared with the workers and
  the scheduler of the host, see deploy/README.md) is used as it is. ``GET /metrics`` on
  any child adds up all processes writing there.
* Graceful shutdown: SIGTERM or SIGINT to the supervisor is passed on as one SIGTERM to
  each child, which stops accepting, lets its in-flight requests finish (up to
  ``--graceful-timeout`` seconds), then closes the hub. A child still running
  ``graceful-timeout + KILL_GRACE_SECONDS`` later is killed.
* A child that exits after it started is replaced (``serve.worker_replaced``); one that
  exits before its app started (bad configuration, database schema) stops them all: it
  would fail the same way again. The exit code is then the child's (78: configuration).

Embedded mode (``broker.kind = "embedded"``) runs the job queue and the scheduler inside
``serve``: N copies would run N schedulers, so it is refused.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from typing import Final

from orderhub.config import ConfigError, Settings, load_settings
from orderhub.entrypoints.metrics_port import metrics_directory
from orderhub.entrypoints.worker import EmbeddedBrokerError
from orderhub.logging import configure_logging, get_logger

__all__ = ["KILL_GRACE_SECONDS", "ServeOptions", "bind_socket", "run_workers"]

log = get_logger("orderhub.serve")

KILL_GRACE_SECONDS: Final = 10.0
"""How long past its graceful timeout a stopping child may take before it is killed."""
LISTEN_BACKLOG: Final = 2048
EXIT_FAILURE: Final = 1
EXIT_CONFIG: Final = 78

_SPAWN: Final = multiprocessing.get_context("spawn")


@dataclass(frozen=True, kw_only=True, slots=True)
class ServeOptions:
    """What every child is told (picklable: it crosses to a spawned interpreter)."""

    config_path: str | None
    host: str
    port: int
    graceful_timeout: int


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
    sock.set_inheritable(True)
    return sock


def run_workers(settings: Settings, options: ServeOptions, *, workers: int) -> int:
    """Supervise ``workers`` API processes until SIGTERM or SIGINT; the exit code."""
    if settings.broker.kind == "embedded":
        raise EmbeddedBrokerError(
            "broker.kind is 'embedded': the job queue and the scheduler run inside "
            "`orderhub serve`, so only one may run; use redis or rabbitmq for --workers"
        )
    with metrics_directory() as metrics_dir, bind_socket(options.host, options.port) as sock:
        supervisor = _Supervisor(options, sock, metrics_dir)
        return supervisor.run(workers)


class _Supervisor:
    def __init__(self, options: ServeOptions, sock: socket.socket, metrics_dir: str) -> None:
        self.options = options
        self.sock = sock
        self.metrics_dir = metrics_dir
        self.children: dict[int, tuple[SpawnProcess, Event]] = {}
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_write, False)
        self.stop_signals: list[int] = []

    def run(self, workers: int) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _STOP_SIGNALS}
        try:
            log.info(
                "serve.supervisor_started",
                workers=workers,
                host=self.options.host,
                port=self.options.port,
                metrics_dir=self.metrics_dir,
            )
            for index in range(1, workers + 1):
                self._start(index)
            code = self._watch()
            self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(self.wake_read)
            os.close(self.wake_write)
        log.info(
            "serve.stopped", signals=[signal.Signals(s).name for s in self.stop_signals], code=code
        )
        return code

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stop_signals.append(signum)
        with contextlib.suppress(BlockingIOError):
            os.write(self.wake_write, b"\0")

    def _start(self, index: int) -> None:
        started = _SPAWN.Event()
        process = _SPAWN.Process(
            target=_child,
            args=(self.options, self.sock, index, started),
            name=f"orderhub-serve-{index}",
        )
        process.start()
        self.children[index] = (process, started)
        log.info("serve.worker_spawned", worker=index, pid=process.pid)

    def _watch(self) -> int:
        """Until a stop signal (0) or a child that never started (its exit code)."""
        while not self.stop_signals:
            sentinels = {process.sentinel: index for index, (process, _) in self.children.items()}
            wait([self.wake_read, *sentinels])
            for index, (process, started) in list(self.children.items()):
                if process.is_alive() or self.stop_signals:
                    continue
                process.join()
                self._forget(process)
                code = process.exitcode if process.exitcode is not None else EXIT_FAILURE
                if not started.is_set():
                    log.error("serve.worker_failed_to_start", worker=index, code=code)
                    del self.children[index]
                    return code if code > 0 else EXIT_FAILURE
                log.warning("serve.worker_replaced", worker=index, pid=process.pid, code=code)
                self._start(index)
        return 0

    def _stop_all(self) -> None:
        for process, _ in self.children.values():
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        for index, (process, _) in self.children.items():
            process.join(self.options.graceful_timeout + KILL_GRACE_SECONDS)
            if process.is_alive():
                log.error("serve.worker_killed", worker=index, pid=process.pid)
                process.kill()
                process.join()
            self._forget(process)
        self.children.clear()

    def _forget(self, process: SpawnProcess) -> None:
        """Drop a dead child's live gauges (its counters stay: totals never go back)."""
        if process.pid is None:
            return
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(process.pid, self.metrics_dir)  # type: ignore[no-untyped-call]


_STOP_SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)


# --- in the child --------------------------------------------------------------------------


class _WorkerTag(logging.Filter):
    """Every line a child logs through the standard library (the access log) says which
    worker wrote it."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.index
        return True


def _child(options: ServeOptions, sock: socket.socket, index: int, started: Event) -> None:
    """A spawned API process: the app of ``orderhub serve`` on the inherited socket."""
    # Ctrl-C reaches the terminal's whole process group, and the supervisor passes it on:
    # ignored until the server (uvicorn) installs its own handlers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        settings = load_settings(options.config_path)
    except ConfigError as exc:
        print(f"orderhub serve (worker {index}): {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    configure_logging(level=settings.logging.level, json=settings.logging.json)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_WorkerTag(index))
    _run_child(settings, options, sock, index, started.set)


def _run_child(
    settings: Settings,
    options: ServeOptions,
    sock: socket.socket,
    index: int,
    on_started: Callable[[], None],
) -> None:
    import asyncio

    from orderhub.entrypoints.cli import serve
    from orderhub.entrypoints.event_loop import install_event_loop

    def started() -> None:
        log.info("serve.worker_started", worker=index, pid=os.getpid())
        on_started()

    install_event_loop(settings.runtime.event_loop)  # a spawned interpreter: its own policy
    try:
        asyncio.run(
            serve(
                settings,
                host=options.host,
                port=options.port,
                migrate_first=False,
                sockets=[sock],
                graceful_timeout=options.graceful_timeout,
                on_started=started,
            )
        )
    except Exception:
        log.exception("serve.worker_crashed", worker=index)
        sys.exit(EXIT_FAILURE)
