"""A worker process whose consumer thread died stops (gracefully), then ends with a code
that gets it restarted; a worker stopping on purpose is left alone."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from structlog.testing import capture_logs

from orderhub.entrypoints.worker_watchdog import EXIT_CONSUMER_DIED, ConsumerWatchdog


class Thread:
    def __init__(self, alive: bool = True) -> None:
        self.alive = alive

    def is_alive(self) -> bool:
        return self.alive


@dataclass
class Worker:
    consumers: dict[str, Any] = field(default_factory=dict)


@dataclass
class Recorder:
    stops: int = 0
    ends: list[int] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        self.stops += 1
        self.stopped.set()

    def end(self, code: int) -> None:
        self.ends.append(code)


def watchdog(recorder: Recorder, check_seconds: float = 5.0) -> ConsumerWatchdog:
    return ConsumerWatchdog(check_seconds=check_seconds, stop=recorder.stop, end=recorder.end)


def test_a_dead_consumer_stops_the_process_once_and_ends_it_for_a_restart() -> None:
    recorder = Recorder()
    dog = watchdog(recorder)
    worker = Worker({"orderhub.commands": Thread(), "orderhub.commands.DQ": Thread(alive=False)})
    with capture_logs() as logs:
        assert dog.check(worker) is True
        assert dog.check(worker) is False  # told once
    assert recorder.stops == 1
    [died] = [e for e in logs if e["event"] == "worker.consumer_died"]
    assert died["queues"] == ["orderhub.commands.DQ"]
    assert died["log_level"] == "critical"
    dog.before_worker_shutdown(None, worker)  # type: ignore[arg-type]
    dog.after_worker_shutdown(None, worker)  # type: ignore[arg-type]
    assert recorder.ends == [EXIT_CONSUMER_DIED]


def test_live_consumers_and_a_stop_on_purpose_are_left_alone() -> None:
    recorder = Recorder()
    dog = watchdog(recorder)
    worker = Worker({"orderhub.inbox": Thread()})
    assert dog.check(worker) is False
    dog.before_worker_shutdown(None, worker)  # type: ignore[arg-type]
    worker.consumers["orderhub.inbox"].alive = False  # stopping: consumers end on purpose
    assert dog.check(worker) is False
    dog.after_worker_shutdown(None, worker)  # type: ignore[arg-type]
    assert (recorder.stops, recorder.ends) == (0, [])


def test_the_watch_thread_notices_a_consumer_dying_while_the_worker_runs() -> None:
    recorder = Recorder()
    dog = watchdog(recorder, check_seconds=0.01)
    consumer = Thread()
    worker = Worker({"orderhub.inbox": consumer})
    dog.after_worker_boot(None, worker)  # type: ignore[arg-type]
    try:
        assert not recorder.stopped.wait(0.1)  # alive: nothing happens
        consumer.alive = False
        assert recorder.stopped.wait(30)  # bounded: only reached when something is wrong
    finally:
        dog.before_worker_shutdown(None, worker)  # type: ignore[arg-type]
    assert recorder.stops == 1
