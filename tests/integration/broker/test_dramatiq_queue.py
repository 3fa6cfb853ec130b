"""DramatiqQueue and its actors against real Redis and RabbitMQ, with a dramatiq Worker
running in this process over the in-memory fakes and the test channel."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import dramatiq
import msgspec
import pytest
from dramatiq import Worker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware
from structlog.testing import capture_logs

from orderhub.adapters.clock import SystemClock
from orderhub.adapters.queue.dramatiq_queue import (
    DISPATCH_ACTOR,
    INBOX_ACTOR,
    DramatiqQueue,
    make_broker,
    middleware_stack,
    set_hub,
)
from orderhub.adapters.queue.redis_batch import enqueue_many
from orderhub.application.hub import Hub, RetryPolicy
from orderhub.application.ports import CommandState, InboxMessage, InboxState
from orderhub.channels.registry import ChannelRegistry, LoadedPlugin
from orderhub.channels.spi import AccountConfig, CommandKind, TransientChannelError
from orderhub.testing.channel import TestChannelAccount, plugin
from orderhub.testing.fakes import FakeDatabase, FakeUnitOfWorkFactory, SequentialIds

from .conftest import BrokerTarget

pytestmark = pytest.mark.broker

FAST = RetryPolicy(base_seconds=0.05, max_seconds=0.5, max_attempts=3)
CHANNEL = "testchannel"
ACCOUNT = "demo"


@dataclass
class Runs(Middleware):
    """Counts what the worker actually executed, duplicates included."""

    finished: Counter[tuple[str, str]] = field(default_factory=Counter)
    started_at: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        with self.lock:
            key = (message.actor_name, message.args[0])
            self.started_at.setdefault(key, []).append(time.monotonic())

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        with self.lock:
            self.finished[(message.actor_name, message.args[0])] += 1


@dataclass
class Rig:
    queue: DramatiqQueue
    hub: Hub
    db: FakeDatabase
    runs: Runs
    worker: Worker

    @property
    def account(self) -> TestChannelAccount:
        account = self.hub.channels.account(CHANNEL, ACCOUNT)
        assert isinstance(account, TestChannelAccount)
        return account

    def wait_for(self, done: Any, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; runs so far: {dict(self.runs.finished)}")
            time.sleep(0.02)
        time.sleep(0.3)  # and nothing more arrives: a duplicate would show up in the counts


@pytest.fixture
def rig(target: BrokerTarget, cleanup: list[tuple[dramatiq.Broker, str]]) -> Iterator[Rig]:
    runs = Runs()
    broker = make_broker(
        target.kind, target.url, middleware=middleware_stack(retry=FAST, extra=[runs])
    )
    cleanup.append((broker, target.prefix))
    queue = DramatiqQueue(broker, queue_prefix=target.prefix, retry=FAST)
    db = FakeDatabase()
    registry = ChannelRegistry(
        {CHANNEL: LoadedPlugin(plugin=plugin, distribution="orderhub", version="test")},
        [AccountConfig(channel=CHANNEL, name=ACCOUNT, settings={"acknowledge_on_receipt": True})],
    )
    hub = Hub(
        uow=FakeUnitOfWorkFactory(db),
        channels=registry,
        clock=SystemClock(),
        ids=SequentialIds(),
        queue=queue,
        retry=FAST,
    )
    set_hub(hub)
    worker = Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        yield Rig(queue=queue, hub=hub, db=db, runs=runs, worker=worker)
    finally:
        worker.stop(timeout=10_000)
        queue.shutdown()
        set_hub(None)


def store(db: FakeDatabase, message_id: str, order_id: str) -> None:
    body = msgspec.json.encode(
        {
            "id": order_id,
            "status": "created",
            "lines": [{"id": "L1", "title": "Phone", "quantity": 1}],
        }
    )
    db.inbox[message_id] = InboxMessage(
        id=message_id,
        channel=CHANNEL,
        account=ACCOUNT,
        dedupe_key=f"{CHANNEL}:{ACCOUNT}:id:{message_id}",
        body=body,
        headers={},
        received_at=SystemClock().now(),
    )


def test_each_actor_runs_its_service_exactly_once(rig: Rig) -> None:
    store(rig.db, "msg-1", "T-1")

    rig.queue.enqueue_inbox("msg-1")
    rig.wait_for(lambda: any(c.state is CommandState.SUCCEEDED for c in rig.db.commands.values()))

    (command,) = rig.db.commands.values()
    assert rig.runs.finished == Counter(
        {(INBOX_ACTOR, "msg-1"): 1, (DISPATCH_ACTOR, command.id): 1}
    )
    assert rig.db.inbox["msg-1"].state is InboxState.PROCESSED
    assert rig.db.inbox["msg-1"].attempts == 1
    (order,) = rig.db.orders.values()
    assert order.channel_order_id == "T-1"
    assert command.kind is CommandKind.ACKNOWLEDGE
    assert [(c.command_id, c.kind) for c in rig.account.calls] == [(command.id, "acknowledge")]


def test_a_delayed_command_is_not_run_before_its_delay(rig: Rig) -> None:
    enqueued = time.monotonic()

    rig.queue.enqueue_command("no-such-command", delay_seconds=1.0)
    rig.wait_for(lambda: rig.runs.finished[(DISPATCH_ACTOR, "no-such-command")] >= 1)

    (started,) = rig.runs.started_at[(DISPATCH_ACTOR, "no-such-command")]
    assert started - enqueued >= 1.0
    assert rig.runs.finished[(DISPATCH_ACTOR, "no-such-command")] == 1


def test_a_transient_channel_error_comes_back_as_a_delayed_message(rig: Rig) -> None:
    store(rig.db, "msg-2", "T-2")
    rig.account.fail_next(TransientChannelError("channel busy", status=503), times=1)

    rig.queue.enqueue_inbox("msg-2")
    rig.wait_for(lambda: any(c.state is CommandState.SUCCEEDED for c in rig.db.commands.values()))

    (command,) = rig.db.commands.values()
    # the channel call failed once: dispatch scheduled its own retry (a delayed message)
    assert rig.runs.finished[(DISPATCH_ACTOR, command.id)] == 2
    assert command.attempts == 2
    assert len(rig.account.calls) == 2


def test_enqueue_to_an_unreachable_broker_is_logged_not_raised(target: BrokerTarget) -> None:
    url = "redis://127.0.0.1:9/0" if target.kind == "redis" else "amqp://guest:guest@127.0.0.1:9/"
    broker = make_broker(target.kind, url, middleware=middleware_stack())
    queue = DramatiqQueue(broker, queue_prefix=target.prefix)

    with capture_logs() as logs:
        queue.enqueue_command("c-1")
        queue.enqueue_inbox("m-1")
        assert queue.flush(timeout=30)

    failed = [(e["what"], e["id"]) for e in logs if e["event"] == "queue.enqueue_failed"]
    assert failed == [("command", "c-1"), ("inbox", "m-1")]


def test_a_burst_runs_each_job_once_and_a_delayed_one_after_its_delay(rig: Rig) -> None:
    """Many ids at once: on Redis they go in pipelined batches (one round trip each)."""
    ids = [f"burst-{i}" for i in range(150)]
    enqueued = time.monotonic()
    rig.queue.enqueue_command("burst-late", delay_seconds=1.0)
    for ident in ids:
        rig.queue.enqueue_command(ident)
    assert rig.queue.flush(timeout=30)
    rig.wait_for(lambda: all(rig.runs.finished[(DISPATCH_ACTOR, i)] for i in [*ids, "burst-late"]))

    assert {i: rig.runs.finished[(DISPATCH_ACTOR, i)] for i in ids} == dict.fromkeys(ids, 1)
    (started,) = rig.runs.started_at[(DISPATCH_ACTOR, "burst-late")]
    assert started - enqueued >= 1.0


def test_a_batch_is_sent_again_once_redis_forgot_the_script(rig: Rig, target: BrokerTarget) -> None:
    if target.kind != "redis":
        return  # a Redis script; RabbitMQ publishes one message at a time
    broker = rig.queue.broker
    assert isinstance(broker, RedisBroker)
    broker.client.script_flush()  # what a Redis restart does to the loaded scripts
    messages = [
        (rig.queue.actors.dispatch.message_with_options(args=(f"flushed-{i}",)), None)
        for i in range(3)
    ]

    enqueue_many(broker, messages)

    rig.wait_for(lambda: all(rig.runs.finished[(DISPATCH_ACTOR, f"flushed-{i}")] for i in range(3)))
    assert [rig.runs.finished[(DISPATCH_ACTOR, f"flushed-{i}")] for i in range(3)] == [1, 1, 1]
