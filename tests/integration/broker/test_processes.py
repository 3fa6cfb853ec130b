"""The real processes: ``orderhub worker`` on Redis and RabbitMQ, ``orderhub serve`` in
embedded mode. Each runs as a subprocess on a migrated SQLite file shared with the test,
with the test channel; the test drives it, waits for the effect in the database, stops it
with SIGTERM and checks that it shut down cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from orderhub.adapters.persistence import migrate
from orderhub.adapters.queue.dramatiq_queue import DramatiqQueue
from orderhub.application.ports import CommandState, InboxMessage, InboxState
from orderhub.application.services import intake
from orderhub.bootstrap import aclose, bootstrap
from orderhub.config import load_settings

from .conftest import BrokerTarget, delete_queues

pytestmark = pytest.mark.broker

API_KEY = "test-key-0123456789abcdef"
WEBHOOK_TOKEN = "test-webhook-token"
ORDER = {
    "id": "T-42",
    "status": "created",
    "lines": [{"id": "L1", "title": "Phone", "quantity": 1}],
}

CONFIG = """
[database]
url = "sqlite+aiosqlite:///{db}"

[broker]
kind = "{kind}"
{url_line}
queue_prefix = "{prefix}"

[[api.keys]]
name = "test"
key = "{api_key}"
scopes = ["orders:read", "orders:write", "ops"]

[channels]
enabled = ["testchannel"]

[[channels.accounts]]
channel = "testchannel"
name = "demo"
settings = {{ acknowledge_on_receipt = true }}
webhook = {{ bearer_tokens = ["{token}"] }}

[retry]
base_seconds = 0.1
max_seconds = 1.0

[scheduler]
sweep_interval_seconds = 1
grace_seconds = 5
first_run_jitter_seconds = 0.5

[logging]
level = "INFO"
json = true
"""

RUN_CLI = "import sys; from orderhub.entrypoints.cli import main; sys.exit(main())"


def write_config(tmp_path: Path, *, kind: str, url: str | None, prefix: str = "orderhub") -> Path:
    path = tmp_path / "orderhub.toml"
    path.write_text(
        CONFIG.format(
            db=tmp_path / "hub.db",
            kind=kind,
            url_line=f'url = "{url}"' if url else "",
            prefix=prefix,
            api_key=API_KEY,
            token=WEBHOOK_TOKEN,
        )
    )
    return path


class Process:
    def __init__(self, args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERHUB_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RUN_CLI, *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                found.append(json.loads(line[line.index("{") :]))
            except ValueError:
                continue
        return found

    def has(self, event: str) -> bool:
        return any(e.get("event") == event for e in self.events())

    def wait_for(self, ready: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"exited ({self.proc.returncode}) before {what}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.tail()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"did not stop on SIGTERM:\n{self.tail()}") from None
        self._log.close()
        return self.proc.returncode

    def tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait()


async def test_worker_process_processes_the_inbox_and_dispatches(
    target: BrokerTarget, tmp_path: Path, processes: list[Process]
) -> None:
    config = write_config(tmp_path, kind=target.kind, url=target.url, prefix=target.prefix)
    settings = load_settings(config, environ={})
    await migrate(settings.database.url)
    worker = Process(
        ["worker", "-c", str(config), "--processes", "1", "--threads", "2"], tmp_path / "w.log"
    )
    processes.append(worker)
    hub = bootstrap(settings)  # the API side: stores and enqueues
    assert isinstance(hub.queue, DramatiqQueue)
    try:
        worker.wait_for(lambda: worker.has("worker.ready"), "the worker to boot")
        assert worker.has("gc.frozen")  # its startup objects out of the collector's walks
        # dramatiq's loop for the jobs, made through the policy the setup hook installed
        (ready,) = [e for e in worker.events() if e.get("event") == "worker.ready"]
        assert ready["event_loop"] == "uvloop"
        stored = await intake.store_message(
            hub,
            channel="testchannel",
            account="demo",
            body=msgspec.json.encode(ORDER),
            headers={"webhook-id": "evt-1"},
        )

        deadline = time.monotonic() + 60  # generous: CI machines are small and busy
        while True:
            async with hub.uow() as uow:
                message = await uow.inbox.get(stored.message_id)
                order = await uow.orders.get_by_channel_id("testchannel", "demo", "T-42")
                commands = await uow.commands.for_order(order.id) if order else []
            if commands and commands[0].state is CommandState.SUCCEEDED:
                break
            assert time.monotonic() < deadline, f"not done in time:\n{worker.tail()}"
            await asyncio.sleep(0.1)
        assert message is not None
        assert message.state is InboxState.PROCESSED
        assert [c.kind.value for c in commands] == ["acknowledge"]
        assert worker.stop() == 0  # before its queues go away
    finally:
        delete_queues(hub.queue.broker, target.prefix)
        await aclose(hub)

    events = worker.events()
    ends = [e for e in events if e.get("event") in {"inbox.end", "dispatch.end"}]
    assert {(e["event"], e["outcome"]) for e in ends} == {
        ("inbox.end", "processed"),
        ("dispatch.end", "succeeded"),
    }
    assert all(e["channel"] == "testchannel" for e in ends)
    assert any(e.get("event") == "worker.closed" for e in events)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_in_embedded_mode_runs_api_queue_and_scheduler_in_one_process(
    tmp_path: Path, processes: list[Process]
) -> None:
    config = write_config(tmp_path, kind="embedded", url=None)
    port = free_port()
    server = Process(["serve", "-c", str(config), "--port", str(port)], tmp_path / "s.log")
    processes.append(server)
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {API_KEY}"}

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    server.wait_for(healthy, "the server to answer")
    assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200

    answer = httpx.post(
        f"{base}/webhooks/testchannel/demo",
        content=msgspec.json.encode(ORDER),
        headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}", "webhook-id": "evt-9"},
        timeout=5,
    )
    assert answer.status_code in (200, 202), answer.text

    def acknowledged() -> bool:
        orders = httpx.get(f"{base}/api/v1/orders", headers=auth, timeout=5).json()
        items = orders.get("items") or orders.get("orders") or orders.get("data") or []
        if not items:
            return False
        feed = httpx.get(f"{base}/api/v1/feed", headers=auth, timeout=5).json()
        return "command.succeeded" in json.dumps(feed)

    server.wait_for(acknowledged, "the order and its acknowledge command")
    metrics = httpx.get(f"{base}/metrics", timeout=5).text
    assert (
        'orderhub_inbox_processed_total{channel="testchannel",outcome="processed"} 1.0' in metrics
    )
    assert "orderhub_commands_dispatched_total" in metrics

    assert server.stop() == 0
    events = {e.get("event") for e in server.events()}
    assert {"queue.started", "scheduler.started", "scheduler.stopped", "queue.stopped"} <= events
    assert "serve.stopped" in events
    assert API_KEY not in server.log_path.read_text()
    assert WEBHOOK_TOKEN not in server.log_path.read_text()


async def test_scheduler_process_sweeps_a_lost_message_into_the_broker(
    target: BrokerTarget, tmp_path: Path, processes: list[Process]
) -> None:
    config = write_config(tmp_path, kind=target.kind, url=target.url, prefix=target.prefix)
    settings = load_settings(config, environ={})
    await migrate(settings.database.url)
    hub = bootstrap(settings)
    assert isinstance(hub.queue, DramatiqQueue)
    broker = hub.queue.broker
    # committed, but the process died before it was enqueued
    lost = InboxMessage(
        id="lost-1",
        channel="testchannel",
        account="demo",
        dedupe_key="testchannel:demo:id:lost-1",
        body=msgspec.json.encode(ORDER),
        headers={},
        received_at=hub.clock.now() - timedelta(minutes=5),
    )
    async with hub.uow() as uow:
        assert await uow.inbox.add(lost)
        await uow.commit()
    scheduler = Process(["scheduler", "-c", str(config)], tmp_path / "sched.log")
    processes.append(scheduler)
    try:
        scheduler.wait_for(lambda: scheduler.has("sweep.requeued"), "a sweep")
        consumer = broker.consume(f"{target.prefix}.inbox", timeout=5000)
        try:
            message = next(m for m in consumer if m is not None)
            consumer.ack(message)
        finally:
            consumer.close()
        assert (message.actor_name, tuple(message.args)) == ("process_inbox_message", ("lost-1",))
        assert scheduler.stop() == 0
    finally:
        delete_queues(broker, target.prefix)
        await aclose(hub)

    events = {e.get("event") for e in scheduler.events()}
    assert {"scheduler.started", "scheduler.stopped"} <= events


@pytest.mark.postgres
def test_a_second_scheduler_stands_by_until_the_first_is_gone(
    postgres_url: str, tmp_path: Path, processes: list[Process]
) -> None:
    config = write_config(
        tmp_path, kind="redis", url="redis://127.0.0.1:6379/15", prefix=f"lead-{os.getpid()}"
    )
    sqlite_line = f'url = "sqlite+aiosqlite:///{tmp_path / "hub.db"}"'
    config.write_text(config.read_text().replace(sqlite_line, f'url = "{postgres_url}"'))
    first = Process(["scheduler", "-c", str(config)], tmp_path / "first.log")
    processes.append(first)
    first.wait_for(lambda: first.has("scheduler.started"), "the first scheduler leading")
    second = Process(["scheduler", "-c", str(config)], tmp_path / "second.log")
    processes.append(second)
    second.wait_for(lambda: second.has("scheduler.waiting_for_leadership"), "a standby")
    time.sleep(2)  # long enough for a second leader to have shown up, were there one
    assert not second.has("scheduler.started")
    first.proc.kill()  # a crash: the database frees the lock with the connection
    first.proc.wait()
    second.wait_for(lambda: second.has("scheduler.started"), "the standby taking over")
    assert second.stop() == 0
