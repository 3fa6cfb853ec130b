"""A worker process that stops consuming a queue stops altogether, so that it is restarted.

dramatiq runs one consumer thread per queue. A broker outage can end one for good: with
Redis unreachable, a fetch times out, and the handler's clean-up (requeueing the delayed
messages over the same dead connection) raises an error dramatiq does not expect there,
which ends the thread (found by ``make chaos``, docs/reliability.md). The process then
stays up and looks ready while it serves one queue fewer, for as long as it lives.

:class:`ConsumerWatchdog` looks at the consumer threads every few seconds while the worker
runs; when one has died, it logs ``worker.consumer_died`` and stops the process the
graceful way (SIGTERM: running jobs finish, the hub is closed), then ends it with
:data:`EXIT_CONSUMER_DIED`. dramatiq's supervisor stops its other processes on an
unexpected exit and exits with that code, and the process manager (systemd, compose,
Kubernetes) starts ``orderhub worker`` again. Nothing is lost in between: the work is in
the database, and the sweeper queues what was in flight again.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, Final

import dramatiq
from dramatiq.middleware import Middleware

from orderhub.logging import get_logger

log = get_logger(__name__)

CHECK_SECONDS: Final = 5.0
EXIT_CONSUMER_DIED: Final = 70  # EX_SOFTWARE: a restart, not a clean stop


class ConsumerWatchdog(Middleware):
    """Put it before the hub's lifecycle in the middleware list: its "after shutdown" hook
    then runs after the hub is closed."""

    def __init__(
        self,
        *,
        check_seconds: float = CHECK_SECONDS,
        stop: Callable[[], None] | None = None,
        end: Callable[[int], None] | None = None,
    ) -> None:
        self.check_seconds = check_seconds
        self._stop = stop or (lambda: os.kill(os.getpid(), signal.SIGTERM))
        self._end = end or _end_process
        self._stopping = threading.Event()
        self.fired = False

    def after_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        threading.Thread(
            target=self._watch, args=(worker,), name="consumer-watchdog", daemon=True
        ).start()

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self._stopping.set()  # consumers stopping now are no news

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        if self.fired:
            self._end(EXIT_CONSUMER_DIED)

    def check(self, worker: Any) -> bool:
        """True (and the process told to stop) when a consumer thread has died."""
        if self._stopping.is_set() or self.fired:
            return False
        dead = sorted(name for name, thread in worker.consumers.items() if not thread.is_alive())
        if not dead:
            return False
        self.fired = True
        log.critical("worker.consumer_died", pid=os.getpid(), queues=dead)
        self._stop()
        return True

    def _watch(self, worker: Any) -> None:
        while not self._stopping.wait(self.check_seconds):
            if self.check(worker):
                return


def _end_process(code: int) -> None:
    logging.shutdown()  # the last lines out before the hard exit
    sys.stderr.flush()
    os._exit(code)
