"""``--metrics-port``: ``GET /metrics`` of a worker or the scheduler, for a deployment where
they do not share a host (and so ``PROMETHEUS_MULTIPROC_DIR``) with an API process:
containers, pods. A plain HTTP server on a daemon thread of the process, serving what
:func:`orderhub.metrics.render` renders (with a metrics directory: every process writing
there, e.g. all of a worker's dramatiq processes). Nothing but ``/metrics`` is answered;
it names no order, only counts (see :mod:`orderhub.metrics` on labels).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final

from orderhub.metrics import MULTIPROC_ENV, render

PATH: Final = "/metrics"
STOP_SIGNALS: Final = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != PATH:
            self._answer(404, b"not found: only /metrics is served here\n", "text/plain")
            return
        body, content_type = render()
        self._answer(200, body, content_type)

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes are not logged (one every 15 s would drown the process's own lines)."""


@contextlib.contextmanager
def metrics_server(host: str, port: int) -> Iterator[ThreadingHTTPServer]:
    """Serve ``/metrics`` on ``host:port`` while the block runs (port 0: any free port).

    Its threads block the stop signals (:data:`STOP_SIGNALS`), so that the kernel always
    hands them to the main thread. dramatiq's supervisor blocks them in its own thread
    while it starts its worker processes, until its handlers are in place; a thread of
    ours that did not block them took a SIGTERM in that window (seconds, with spawned
    workers) with the default action: the supervisor died and left its worker processes
    running without it."""
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        thread.start()  # it (and every request thread it starts) inherits the mask
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def metrics_directory() -> Iterator[str]:
    """The ``PROMETHEUS_MULTIPROC_DIR`` of this run: the operator's (kept), or a new one
    (set in the environment for the processes started now, removed at exit)."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        yield given
        return
    made = tempfile.mkdtemp(prefix="orderhub-metrics-")
    os.environ[MULTIPROC_ENV] = made
    try:
        yield made
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(made, ignore_errors=True)
