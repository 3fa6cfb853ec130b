"""``--metrics-port``'s server threads leave the stop signals to the main thread.

dramatiq's supervisor blocks SIGTERM in its own thread while it starts its worker
processes; a thread of ours that did not block it took the signal with the default action
(the supervisor died, its workers ran on without it). Read from the kernel: each thread's
blocked set (``SigBlk`` in ``/proc/self/task/<tid>/status``)."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import httpx
import pytest

from orderhub.entrypoints.metrics_port import STOP_SIGNALS, metrics_server

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc (Linux)")


def _blocked(thread: threading.Thread) -> set[signal.Signals]:
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    mask = int(
        next(line for line in status.splitlines() if line.startswith("SigBlk:")).split()[1], 16
    )
    return {sig for sig in signal.Signals if mask & (1 << (sig.value - 1))}


def test_the_metrics_threads_block_the_stop_signals_and_the_caller_does_not() -> None:
    before = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    with metrics_server("127.0.0.1", 0) as server:
        host, port = server.server_address[:2]
        assert httpx.get(f"http://{host}:{port}/metrics", timeout=5).status_code == 200
        threads = [t for t in threading.enumerate() if t.name == "metrics"]
        assert threads, "the server thread"
        for thread in threads:
            assert _blocked(thread) >= STOP_SIGNALS, thread
        assert signal.pthread_sigmask(signal.SIG_BLOCK, ()) == before, "the caller's mask"
    assert not STOP_SIGNALS & _blocked(threading.main_thread())
