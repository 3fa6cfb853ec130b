"""Crash recovery in production mode: a worker killed in the middle of a channel call, and a
command whose enqueue was lost after its commit. In both the scheduler's sweeper brings the
command back, and the channel sees the call once (the Idempotency-Key is the command id)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from .conftest import HubFactory
from .support import (
    LOST_REDIS_URL,
    RETRY,
    SETTLE_SECONDS,
    Hub,
    ManagedProcess,
    order_document,
    wait_until,
)

pytestmark = [pytest.mark.postgres, pytest.mark.broker]


def queued_ids(client: redis.Redis, hub: Hub, queue: str) -> list[str]:
    """The ids (first argument) of the messages waiting in one of the hub's dramatiq queues."""
    key = f"dramatiq:{hub.queue_prefix}.{queue}.msgs"
    return [json.loads(raw)["args"][0] for raw in client.hvals(key)]


def sweeps(scheduler: ManagedProcess | None, what: str) -> int:
    """How many items the scheduler's sweeper has queued again (``commands`` or ``messages``)."""
    assert scheduler is not None
    return sum(int(e.get(what, 0)) for e in scheduler.events() if e["event"] == "sweep.requeued")


def command_events(hub: Hub, command_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in hub.feed()
        if e["type"].startswith("command.") and e["data"]["command_id"] == command_id
    ]


def new_order(hub: Hub, channel_order_id: str) -> str:
    answer = hub.channel_server.send_order(
        hub, "topi", order_document(channel_order_id, "created", [("L1", 1)])
    )
    assert answer["status"] == 202, answer
    return str(hub.wait_for_order("topi", channel_order_id)["id"])


def test_a_worker_killed_mid_dispatch_is_replaced_and_the_call_is_made_once(
    production_backends: str, hub_factory: HubFactory
) -> None:
    hub = hub_factory("production")
    server = hub.channel_server
    order_id = new_order(hub, "CO-500")

    server.add_fault(kind="hang", seconds=120, count=1)
    command_id = hub.command(order_id, "accept", None)
    call = wait_until(
        lambda: server.call(command_id), "the channel to receive the call", alive=hub.check_alive
    )
    assert call["replays"] == 0
    assert server.faults() == []  # the hang is in progress
    [claimed] = hub.order(order_id)["pending_commands"]
    assert (claimed["id"], claimed["attempts"]) == (command_id, 1)  # leased by the worker

    hub.worker.kill()  # SIGKILL to its whole process group, mid-call
    assert command_events(hub, command_id) == []
    [pending] = hub.order(order_id)["pending_commands"]
    assert (pending["id"], pending["state"], pending["attempts"]) == (command_id, "pending", 1)

    hub.start_worker()
    # the lease runs out, the sweeper queues the command again, the new worker sends it
    finished = hub.wait_for_command(command_id, timeout=RETRY["lease_seconds"] + SETTLE_SECONDS)
    assert finished["data"]["attempts"] == 2
    assert sweeps(hub.scheduler, "commands") >= 1

    records = [c for c in server.calls() if c["command_id"] == command_id]
    assert len(records) == 1  # recorded once, under its Idempotency-Key
    assert records[0]["key"] == command_id
    assert records[0]["replays"] == 1  # the second attempt was the same call, deduplicated
    assert [e["type"] for e in command_events(hub, command_id)] == ["command.succeeded"]
    order = hub.order(order_id)
    assert order["pending_commands"] == []
    assert order["status"] == "ready_to_ship"


def test_a_command_whose_enqueue_was_lost_is_swept_back(
    production_backends: str,
    redis_db: redis.Redis,
    lost_redis_db: redis.Redis,
    hub_factory: HubFactory,
) -> None:
    """``orderhub serve`` enqueues to a Redis database that no worker reads: every hand-off
    after a commit is lost, as if the process had died between its commit and its enqueue.
    Only the sweeper (in ``orderhub scheduler``) can bring the work back."""
    hub = hub_factory("production", serve_broker_url=LOST_REDIS_URL)
    server = hub.channel_server

    # the webhook is stored, its hand-off lost; the sweeper brings the message back
    answer = server.send_order(hub, "topi", order_document("CO-510", "created", [("L1", 2)]))
    assert answer["status"] == 202, answer
    message_id = json.loads(answer["body"])["message_id"]
    wait_until(  # published off the request's event loop, a moment after the answer
        lambda: queued_ids(lost_redis_db, hub, "inbox") == [message_id],
        "the hand-off to reach the broker nobody reads",
        alive=hub.check_alive,
    )
    order_id = hub.wait_for_order("topi", "CO-510")["id"]
    assert sweeps(hub.scheduler, "messages") >= 1

    # no worker: the command waits in the database, its own enqueue lost as well
    assert hub.worker.stop() == 0
    command_id = hub.command(order_id, "accept", None)
    wait_until(
        lambda: queued_ids(lost_redis_db, hub, "commands") == [command_id],
        "the command's hand-off to reach the broker nobody reads",
        alive=hub.check_alive,
    )
    wait_until(
        lambda: command_id in queued_ids(redis_db, hub, "commands"),
        "the sweeper to queue the command on the workers' broker",
        alive=hub.check_alive,
    )
    assert sweeps(hub.scheduler, "commands") >= 1
    assert server.call(command_id) is None
    [pending] = hub.order(order_id)["pending_commands"]
    assert (pending["id"], pending["attempts"]) == (command_id, 0)

    hub.start_worker()
    finished = hub.wait_for_command(command_id)
    assert finished["data"]["attempts"] == 1
    records = [c for c in server.calls() if c["command_id"] == command_id]
    assert [(r["key"], r["replays"]) for r in records] == [(command_id, 0)]
    assert [e["type"] for e in command_events(hub, command_id)] == ["command.succeeded"]
    assert hub.order(order_id)["status"] == "ready_to_ship"


def test_a_worker_killed_mid_call_holds_back_the_next_command_of_its_order(
    production_backends: str, hub_factory: HubFactory
) -> None:
    """The accept hangs at the channel and its worker is killed; the shipment of the same
    order, queued meanwhile, waits: the channel sees the accept, then the shipment, each
    once, never the other way round."""
    hub = hub_factory("production")
    server = hub.channel_server
    order_id = new_order(hub, "CO-520")
    line_id = hub.order(order_id)["lines"][0]["id"]

    server.add_fault(kind="hang", seconds=120, count=1)
    accept_id = hub.command(order_id, "accept", None)
    wait_until(
        lambda: server.call(accept_id), "the accept to reach the channel", alive=hub.check_alive
    )
    ship_id = hub.command(
        order_id,
        "shipments",
        {
            "carrier": "dhl",
            "tracking_number": "JD-520",
            "items": [{"line_id": line_id, "quantity": 1}],
        },
    )
    hub.worker.kill()  # mid-call: the accept's outcome is never recorded

    assert server.call(ship_id) is None  # the shipment waited for the accept
    hub.start_worker()
    hub.wait_for_command(accept_id, timeout=RETRY["lease_seconds"] + SETTLE_SECONDS)
    shipped = hub.wait_for_command(ship_id)
    assert shipped["type"] == "command.succeeded"

    calls = [c for c in server.calls() if c["command_id"] in (accept_id, ship_id)]
    assert [(c["command_id"], c["kind"]) for c in calls] == [
        (accept_id, "accept"),
        (ship_id, "ship"),
    ]  # in command order, one record each (the accept's retry was a replay of its key)
    assert [c["replays"] for c in calls] == [1, 0]
    assert [e["type"] for e in command_events(hub, accept_id)] == ["command.succeeded"]
    assert [e["type"] for e in command_events(hub, ship_id)] == ["command.succeeded"]
    assert hub.order(order_id)["status"] == "shipped"
