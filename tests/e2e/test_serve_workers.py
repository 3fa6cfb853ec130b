"""``orderhub serve --workers 2`` as real processes on loopback: both workers answer,
``/metrics`` adds up both, SIGTERM lets an in-flight request finish, and embedded mode
refuses it.

The hub runs on SQLite with Redis as its broker (``serve`` needs a non-embedded broker for
``--workers``; nothing is enqueued: the webhooks sent here are refused). Which worker
answered is read from the access log, where each child tags its lines with ``worker``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from orderhub.testing.processes import (
    ManagedProcess,
    NotYet,
    ProcessSet,
    eventually,
    free_port,
    orderhub_command,
    wait_for_http,
    write_toml,
)

from .support import LAUNCH, REDIS_URL, STARTUP_SECONDS

pytestmark = pytest.mark.broker

KEY: Final = "serve-workers-key-0123456789abcdef"
WEBHOOK: Final = "/webhooks/testchannel/demo"
MAX_TRIES: Final = 200
"""Fresh connections sent until both workers have answered one (the kernel picks)."""


class Supervisor:
    def __init__(self, workdir: Path, processes: ProcessSet, *, workers: int = 2) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = write_toml(
            workdir / "hub.toml",
            {
                "database": {"url": f"sqlite+aiosqlite:///{workdir / 'hub.db'}"},
                "broker": {"kind": "redis", "url": REDIS_URL, "queue_prefix": workdir.name},
                "api": {
                    "host": "127.0.0.1",
                    "port": self.port,
                    "keys": [{"name": "wms", "key": KEY, "scopes": ["orders:read"]}],
                },
                "channels": {
                    "enabled": ["testchannel"],
                    "accounts": [
                        {
                            "channel": "testchannel",
                            "name": "demo",
                            "webhook": {"bearer_tokens": ["the-right-token"]},
                        }
                    ],
                },
                "logging": {"json": True},
            },
        )
        self.process = processes.add(
            ManagedProcess(
                "serve",
                orderhub_command("--config", str(config), "serve", "--workers", str(workers)),
                workdir / "serve.log",
                LAUNCH,
            )
        )

    def start(self) -> Supervisor:
        self.process.start()
        wait_for_http(
            f"{self.url}/readyz",
            timeout=STARTUP_SECONDS,
            alive=self.process.check_alive,
            processes=[self.process],
        )
        return self

    def access_log(self, path: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.process.events()
            if e.get("logger") == "uvicorn.access" and f" {path} " in str(e.get("event"))
        ]

    def metric(self, line_start: str) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith(line_start):
                return float(line.rsplit(" ", 1)[1])
        raise NotYet(f"no {line_start} in /metrics")


@pytest.fixture
def processes() -> Iterator[ProcessSet]:
    started = ProcessSet()
    yield started
    started.stop_all()


def test_two_workers_both_answer_and_metrics_add_up(tmp_path: Path, processes: ProcessSet) -> None:
    hub = Supervisor(tmp_path, processes).start()
    eventually(
        "both workers to start",
        lambda: _expect(len(_started_workers(hub.process)), 2),
        timeout=STARTUP_SECONDS,
        alive=hub.process.check_alive,
    )
    assert _started_workers(hub.process) == {1, 2}

    sent = 0
    answered_by: set[int] = set()
    while answered_by != {1, 2}:
        assert sent < MAX_TRIES, f"one worker answered all {sent} requests: {answered_by}"
        path = f"{WEBHOOK}?try={sent}"
        # a new connection each time; a refused webhook is counted, and writes nothing
        response = httpx.post(
            hub.url + path, headers={"Authorization": "Bearer wrong"}, content=b"{}"
        )
        assert response.status_code == 401
        sent += 1
        answered_by.add(
            eventually(
                f"the access log line of {path}",
                lambda path=path: _worker_of(hub.access_log(path)),
                processes=[hub.process],
            )
        )

    # served by one worker, counted by both
    refused = 'orderhub_webhooks_received_total{channel="testchannel",outcome="unauthorized"}'
    assert hub.metric(refused) == sent

    started = next(e for e in hub.process.events() if e["event"] == "serve.supervisor_started")
    metrics_dir = Path(started["metrics_dir"])
    assert metrics_dir.is_dir()
    hub.process.stop()
    assert hub.process.stopped_cleanly
    assert not metrics_dir.exists(), "the run's metrics directory is removed at exit"


def _started_workers(process: ManagedProcess) -> set[int]:
    return {e["worker"] for e in process.events() if e.get("event") == "serve.worker_started"}


def _worker_of(lines: list[dict[str, Any]]) -> int:
    if not lines:
        raise NotYet("not logged yet")
    (line,) = lines
    worker = line["worker"]
    assert isinstance(worker, int)
    return worker


def test_sigterm_lets_an_in_flight_request_finish(tmp_path: Path, processes: ProcessSet) -> None:
    hub = Supervisor(tmp_path, processes).start()
    answers: list[httpx.Response | BaseException] = []

    def long_poll() -> None:
        try:
            answers.append(
                httpx.get(
                    f"{hub.url}/api/v1/feed",
                    params={"after": 0, "wait": 2},
                    headers={"Authorization": f"Bearer {KEY}"},
                    timeout=30,
                )
            )
        except BaseException as exc:  # shown by the assertion below
            answers.append(exc)

    poller = threading.Thread(target=long_poll)
    poller.start()
    try:
        eventually(
            "the long poll to be in flight",
            lambda: _expect(hub.metric("orderhub_http_requests_in_progress "), 1.0),
            processes=[hub.process],
        )
        hub.process.terminate()
    finally:
        poller.join(timeout=30)

    (answer,) = answers
    assert isinstance(answer, httpx.Response), f"the in-flight request failed: {answer!r}"
    assert answer.status_code == 200
    assert answer.json() == {"events": [], "next_cursor": 0}
    assert hub.process.wait(30) == 0
    assert hub.process.has_event("serve.stopped", signals=["SIGTERM"], code=0)
    assert hub.process.has_event("gc.frozen", process="serve")  # before its first request
    # the spawned API process runs on uvloop (its own policy, not the supervisor's)
    assert hub.process.has_event("serve.ready", event_loop="uvloop")
    # the worker that held it stopped only after it had answered
    events = hub.process.events()
    (answered,) = [i for i, e in enumerate(events) if "GET /api/v1/feed?" in str(e["event"])]
    worker = events[answered]["worker"]
    (closed,) = [
        i
        for i, e in enumerate(events)
        if e["event"] == "Application shutdown complete." and e.get("worker") == worker
    ]
    assert answered < closed


def _expect(value: float, wanted: float) -> None:
    if value != wanted:
        raise NotYet(f"{value}, not {wanted}")


def test_embedded_mode_refuses_several_workers(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "embedded.toml", {"broker": {"kind": "embedded"}})
    serve = ManagedProcess(
        "serve",
        orderhub_command("--config", str(config), "serve", "--workers", "2", "--no-migrate"),
        tmp_path / "serve.log",
        LAUNCH,
    )
    assert serve.run_to_end(STARTUP_SECONDS) == 78
    assert "only one may run" in serve.text()
