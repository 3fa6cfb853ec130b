"""A broker that hangs must not stall the API: the real app (bootstrap + create_app, on a
migrated SQLite file) talks to Redis or RabbitMQ through a TCP proxy the test pauses.

While the broker is silent, webhooks are still answered at once and the event loop never
stalls; once it is back, what was stored reaches the broker (flushed by the publisher
thread, or, if a publish was given up meanwhile, queued again by the sweeper)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dramatiq
import httpx
import msgspec
import pytest
from structlog.testing import capture_logs

from orderhub.adapters.persistence import migrate
from orderhub.adapters.queue.dramatiq_queue import DramatiqQueue, make_broker
from orderhub.application.services import intake
from orderhub.application.services.operations import sweep
from orderhub.bootstrap import aclose, bootstrap, ready_checks
from orderhub.config import Settings, load_settings
from orderhub.entrypoints.cli import web_settings
from orderhub.entrypoints.web import create_app
from orderhub.metrics import REGISTRY

from .conftest import BrokerTarget
from .proxy import PausableProxy
from .test_processes import WEBHOOK_TOKEN, write_config

pytestmark = pytest.mark.broker

ANSWER_WITHIN = 2.0
"""Seconds for a webhook's 2xx while the broker is silent: a publish on the loop would
wait for the broker (for ever for a RabbitMQ confirm, 5 s for a Redis read)."""
MAX_LOOP_STALL = 1.0


@pytest.fixture
def proxy(target: BrokerTarget) -> Iterator[PausableProxy]:
    parts = urlsplit(target.url)
    assert parts.hostname is not None
    assert parts.port is not None
    the_proxy = PausableProxy(parts.hostname, parts.port)
    try:
        yield the_proxy
    finally:
        the_proxy.close()


def through(proxy: PausableProxy, url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.replace(f":{parts.port}", f":{proxy.port}")).geturl()


async def settings_for(target: BrokerTarget, proxy: PausableProxy, tmp_path: Path) -> Settings:
    url = through(proxy, target.url)
    config = write_config(tmp_path, kind=target.kind, url=url, prefix=target.prefix)
    settings = load_settings(config, environ={})
    await migrate(settings.database.url)
    return settings


class LoopWatch:
    """The longest the event loop went without running a 10 ms timer."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(0.01)
            self.longest = max(self.longest, time.monotonic() - started - 0.01)

    def __enter__(self) -> LoopWatch:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def order(n: int) -> bytes:
    lines = [{"id": "L1", "title": "Phone", "quantity": 1}]
    return msgspec.json.encode({"id": f"T-{n}", "status": "created", "lines": lines})


async def post_webhook(client: httpx.AsyncClient, n: int) -> tuple[str, float]:
    started = time.monotonic()
    answer = await client.post(
        "/webhooks/testchannel/demo",
        content=order(n),
        headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}", "webhook-id": f"evt-{n}"},
    )
    elapsed = time.monotonic() - started
    assert answer.status_code == 202, answer.text
    return str(answer.json()["message_id"]), elapsed


def received(broker: dramatiq.Broker, queue_name: str, expected: set[str]) -> set[str]:
    """The ids on ``queue_name`` (consumed), waiting up to 20 s for all of ``expected``."""
    got: set[str] = set()
    deadline = time.monotonic() + 20
    consumer = broker.consume(queue_name, timeout=200)
    try:
        for message in consumer:
            if message is not None:
                got.add(str(message.args[0]))
                consumer.ack(message)
            if expected <= got or time.monotonic() > deadline:
                break
    finally:
        consumer.close()
    return got


async def delivered(
    queue: DramatiqQueue, target: BrokerTarget, direct: dramatiq.Broker, expected: set[str]
) -> set[str]:
    """Flush the publisher, then read the inbox queue on the broker itself (not through
    the proxy)."""
    assert await asyncio.to_thread(queue.flush, 60), "the publisher did not catch up"
    return await asyncio.to_thread(received, direct, f"{target.prefix}.inbox", expected)


async def test_webhooks_are_answered_while_the_broker_hangs(
    target: BrokerTarget,
    proxy: PausableProxy,
    tmp_path: Path,
    cleanup: list[tuple[dramatiq.Broker, str]],
) -> None:
    direct = make_broker(target.kind, target.url)
    cleanup.append((direct, target.prefix))
    settings = await settings_for(target, proxy, tmp_path)
    hub = bootstrap(settings)
    queue = hub.queue
    assert isinstance(queue, DramatiqQueue)
    web = dataclasses.replace(web_settings(settings), ready_check_timeout_seconds=1.0)
    app: Any = create_app(hub, web, ready_checks=ready_checks(hub))
    transport = httpx.ASGITransport(app=app)  # the app runs on this test's loop
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
            # the broker connections are open and in use before the broker goes silent
            stored = {(await post_webhook(client, 0))[0]}
            assert await asyncio.to_thread(queue.flush, 30)

            with LoopWatch() as loop, proxy.paused_for_a_while():
                for n in range(1, 6):
                    message_id, elapsed = await post_webhook(client, n)
                    assert elapsed < ANSWER_WITHIN, f"webhook {n} took {elapsed:.2f} s"
                    stored.add(message_id)
                # the broker really is silent: the publisher cannot get rid of them
                assert not await asyncio.to_thread(queue.flush, 0.5)
                readiness = await client.get("/readyz")
                assert readiness.status_code == 503
                assert readiness.json()["checks"]["broker"] is False
            assert loop.longest < MAX_LOOP_STALL, f"the loop stalled {loop.longest:.2f} s"

            got = await delivered(queue, target, direct, stored)
            if not stored <= got:  # a publish gave up (timed out) during the pause
                result = await sweep(hub, requeue_after_seconds=0)
                assert result.messages >= len(stored - got)
                got |= await delivered(queue, target, direct, stored - got)
            assert stored <= got
            assert (await client.get("/readyz")).status_code == 200
    finally:
        await aclose(hub)


def given_up(what: str, reason: str) -> float:
    labels = {"what": what, "reason": reason}
    return REGISTRY.get_sample_value("orderhub_enqueue_given_up_total", labels) or 0.0


async def test_a_publish_that_times_out_is_given_up_then_swept_into_the_broker(
    target: BrokerTarget,
    proxy: PausableProxy,
    tmp_path: Path,
    cleanup: list[tuple[dramatiq.Broker, str]],
) -> None:
    direct = make_broker(target.kind, target.url)
    cleanup.append((direct, target.prefix))
    settings = await settings_for(target, proxy, tmp_path)
    url = through(proxy, target.url)
    queue = DramatiqQueue(
        make_broker(target.kind, url, timeout_seconds=0.5), queue_prefix=target.prefix
    )
    hub = bootstrap(settings, queue=queue)
    try:
        first = await intake.store_message(
            hub, channel="testchannel", account="demo", body=order(0), headers={}
        )
        assert await asyncio.to_thread(queue.flush, 30)
        before = given_up("inbox", "timeout") + given_up("inbox", "error")

        with proxy.paused_for_a_while(), capture_logs() as logs:
            lost = await intake.store_message(
                hub, channel="testchannel", account="demo", body=order(1), headers={}
            )
            # bounded by the client timeouts (and, for RabbitMQ, the heartbeat)
            assert await asyncio.to_thread(queue.flush, 60)

        failed = [e for e in logs if e["event"] == "queue.enqueue_failed"]
        assert [(e["what"], e["id"]) for e in failed] == [("inbox", lost.message_id)]
        assert failed[0]["reason"] in {"timeout", "error"}
        assert given_up("inbox", "timeout") + given_up("inbox", "error") == before + 1
        got = await delivered(queue, target, direct, {first.message_id})
        assert got == {first.message_id}

        result = await sweep(hub, requeue_after_seconds=0)  # the broker is back: the sweeper's turn

        assert result.messages == 2  # neither is processed (no worker here)
        got = await delivered(queue, target, direct, {first.message_id, lost.message_id})
        assert lost.message_id in got
    finally:
        await aclose(hub)
        await asyncio.to_thread(queue.close)


def test_closing_is_bounded_while_a_publish_hangs(
    target: BrokerTarget, proxy: PausableProxy, cleanup: list[tuple[dramatiq.Broker, str]]
) -> None:
    direct = make_broker(target.kind, target.url)
    cleanup.append((direct, target.prefix))
    queue = DramatiqQueue(
        make_broker(target.kind, through(proxy, target.url)), queue_prefix=target.prefix
    )
    queue.enqueue_inbox("m-0")
    assert queue.flush(timeout=30)  # connected

    with proxy.paused_for_a_while(), capture_logs() as logs:
        queue.enqueue_inbox("m-1")  # hangs: a confirm or an answer that does not come
        deadline = time.monotonic() + 10
        while queue.publisher.buffered() and time.monotonic() < deadline:
            time.sleep(0.01)  # a thread took m-1 (publishers send what piled up together)
        queue.enqueue_inbox("m-2")  # waits in the buffer behind it
        started = time.monotonic()
        queue.close(timeout=0.5)
        elapsed = time.monotonic() - started

    assert elapsed < 3.0, f"close took {elapsed:.2f} s"
    closed = [e["id"] for e in logs if e.get("reason") == "closed"]
    assert "m-2" in closed
