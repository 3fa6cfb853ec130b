"""One regression test per failure of issue 6 ("every decision reaches its channel once, in
order, and the hub never silently disagrees with a channel"), on the service layer over
the fakes. Each failed on the code before the fix.

Covered elsewhere: 6 (a slow broker) in tests/integration/broker/test_slow_broker.py and
tests/unit/runtime/test_background_publisher.py; 11 (bad input) in
tests/unit/web/test_web_bad_input.py and the fuzzers next to it; 12b (a scheduler that
lost its lock) in tests/integration/persistence/test_scheduler_leadership.py; 7's missing
Idempotency-Key in tests/unit/web (400 idempotency-key-required)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from orderhub.application.hub import RetryPolicy
from orderhub.application.ports import CommandState, InboxState, OrderFilter
from orderhub.application.services.dispatch import Dispatched, dispatch_command
from orderhub.application.services.intake import Processed, process_message, store_message
from orderhub.application.services.operations import (
    abandon_command,
    failed_messages,
    held_commands,
    refresh_stale,
    sweep,
)
from orderhub.application.services.queries import list_orders
from orderhub.application.services.seller_commands import (
    accept_order,
    cancel_order,
    record_shipment,
    reject_order,
)
from orderhub.channels.spi import PermanentChannelError, TransientChannelError
from orderhub.domain.values import LineQuantity, OrderStatus, Reason

from .support import ACCOUNT, World, line_ids, make_world, order_doc

POLICY = RetryPolicy(base_seconds=2.0, max_seconds=60.0, max_attempts=3, lease_seconds=120.0)


def command_events(world: World, command_id: str) -> list[str]:
    return [e.type for e in world.db.feed if e.data.get("command_id") == command_id]


async def store(world: World, doc: dict[str, Any], webhook_id: str) -> str:
    stored = await store_message(
        world.hub,
        channel="testchannel",
        account=ACCOUNT,
        body=json.dumps(doc).encode(),
        headers={"webhook-id": webhook_id},
    )
    return stored.message_id


async def test_1_a_dispatch_dying_after_its_call_is_called_at_most_max_attempts_times() -> None:
    """The call reaches the channel, then the worker dies (time limit, OOM kill) every time:
    the cap is checked where the command is claimed, so it ends failed after three calls."""
    world = make_world("topi", retry=POLICY)
    order = await world.receive(order_doc())
    command_id = (await accept_order(world.hub, order_id=order.id)).command_id
    account = world.account()
    account.hold_calls()  # every call reaches the channel and never comes back

    outcomes = []
    for attempt in range(1, 7):  # the sweeper brings it back after each lease, six times
        worker = asyncio.create_task(dispatch_command(world.hub, command_id))
        calls = asyncio.create_task(account.wait_for_calls(attempt))
        await asyncio.wait([worker, calls], return_when=asyncio.FIRST_COMPLETED, timeout=5)
        calls.cancel()
        if not worker.done():  # the call is at the channel: the worker dies there
            worker.cancel()
            with pytest.raises(asyncio.CancelledError):
                await worker
            outcomes.append("died")
        else:
            outcomes.append(worker.result().value)
        world.clock.advance(POLICY.lease_seconds + 1)
        await sweep(world.hub, requeue_after_seconds=0)

    assert outcomes == ["died", "died", "died", "failed", "ended", "ended"]

    assert len(account.calls) == 3
    command = world.db.commands[command_id]
    assert command.state is CommandState.FAILED
    assert command.attempts == 3
    assert command.last_error is not None
    assert command.last_error.startswith("gave up after 3 attempts")
    assert command_events(world, command_id) == ["command.failed"]


async def test_2_a_stale_worker_cannot_overwrite_the_outcome_of_the_one_that_took_over() -> None:
    world = make_world("topi", retry=POLICY)
    order = await world.receive(order_doc())
    command_id = (await accept_order(world.hub, order_id=order.id)).command_id
    account = world.account()
    gate = account.hold_calls()
    worker_a = asyncio.create_task(dispatch_command(world.hub, command_id))
    await asyncio.wait_for(account.wait_for_calls(1), timeout=5)

    world.clock.advance(POLICY.lease_seconds + 1)  # A's lease runs out; B takes over
    account.hold_calls().set()
    assert await dispatch_command(world.hub, command_id) is Dispatched.SUCCEEDED
    account.fail_next(PermanentChannelError("a late refusal"))  # what A hears, too late
    gate.set()

    assert await worker_a is Dispatched.STALE
    assert world.db.commands[command_id].state is CommandState.SUCCEEDED
    assert command_events(world, command_id) == ["command.succeeded"]


async def test_3_a_shipment_waits_for_the_accept_that_is_backing_off() -> None:
    world = make_world("topi", retry=POLICY)
    order = await world.receive(order_doc())
    accept_id = (await accept_order(world.hub, order_id=order.id)).command_id
    world.account().fail_next(TransientChannelError("timeout"))
    assert await dispatch_command(world.hub, accept_id) is Dispatched.RETRY
    ship_id = (
        await record_shipment(
            world.hub,
            order_id=order.id,
            items=[LineQuantity(line_id=line_ids(order)["L2"], quantity=1)],
            tracking_number="T-3",
        )
    ).command_id

    assert await dispatch_command(world.hub, ship_id) is Dispatched.WAITING
    world.clock.advance(60)
    assert await dispatch_command(world.hub, accept_id) is Dispatched.SUCCEEDED
    assert await dispatch_command(world.hub, ship_id) is Dispatched.SUCCEEDED
    assert [c.kind for c in world.account().calls] == ["accept", "accept", "ship"]


async def test_3_a_failed_accept_holds_the_shipment_until_an_operator_decides() -> None:
    world = make_world("topi", retry=POLICY)
    order = await world.receive(order_doc())
    accept_id = (await accept_order(world.hub, order_id=order.id)).command_id
    ship_id = (
        await record_shipment(
            world.hub,
            order_id=order.id,
            items=[LineQuantity(line_id=line_ids(order)["L2"], quantity=1)],
            tracking_number="T-3b",
        )
    ).command_id
    world.account().fail_next(PermanentChannelError("the order was cancelled"))
    assert await dispatch_command(world.hub, accept_id) is Dispatched.FAILED

    assert await dispatch_command(world.hub, ship_id) is Dispatched.HELD
    assert [c.id for c in await held_commands(world.hub)] == [ship_id]
    assert world.db.commands[ship_id].held_by == accept_id
    await abandon_command(world.hub, accept_id)
    assert await dispatch_command(world.hub, ship_id) is Dispatched.SUCCEEDED
    assert [c.kind for c in world.account().calls] == ["accept", "ship"]


async def test_4_a_refused_rejection_yields_to_the_channels_confirmation() -> None:
    world = make_world("topi", retry=POLICY)
    order = await world.receive(order_doc())
    reject_id = (
        await reject_order(world.hub, order_id=order.id, reason=Reason.OUT_OF_STOCK)
    ).command_id
    assert world.order().status is OrderStatus.REJECTED
    world.account().fail_next(PermanentChannelError("409: the order is confirmed"))
    assert await dispatch_command(world.hub, reject_id) is Dispatched.FAILED

    refused = world.order()
    assert refused.status is OrderStatus.AWAITING_ACCEPTANCE  # the decision undone
    assert [a.code.value for a in refused.attention] == ["command_failed"]
    await world.deliver_webhook(
        order_doc(
            status="confirmed",
            released=True,
            counters={"L1": {"accepted": 2}, "L2": {"accepted": 1}},
        )
    )
    confirmed = world.order()
    assert confirmed.channel_status == "confirmed"
    assert confirmed.status is OrderStatus.READY_TO_SHIP
    assert "order.attention_required" in world.feed_types()


async def test_4_an_accepted_order_the_channel_reports_rejected_shows_it() -> None:
    world = make_world("topi", retry=POLICY)
    order = await world.receive(order_doc())
    accept_id = (await accept_order(world.hub, order_id=order.id)).command_id
    assert await dispatch_command(world.hub, accept_id) is Dispatched.SUCCEEDED
    await world.deliver_webhook(
        order_doc(status="rejected", counters={"L1": {"rejected": 2}, "L2": {"rejected": 1}})
    )
    rejected = world.order()
    assert rejected.status is OrderStatus.REJECTED
    assert rejected.channel_status == "rejected"
    assert {a.code.value for a in rejected.attention} == {"channel_overrode_decision"}
    assert await list_orders(world.hub, OrderFilter(attention=True), after_seq=None, limit=9)


async def test_4_a_behind_snapshot_keeps_unrelated_news_and_edits_are_flagged() -> None:
    world = make_world("topi", retry=POLICY)
    await world.receive(order_doc(shipping_address={"city": "Berlin"}))
    await world.deliver_webhook(
        order_doc(
            status="confirmed",
            released=True,
            counters={"L1": {"accepted": 2}, "L2": {"accepted": 1}},
        )
    )
    # behind on its counters, but the first to give a customer: that has no conflict
    await world.deliver_webhook(order_doc(customer={"name": "Ada"}))
    assert world.order().customer is not None
    assert world.order().channel_status == "confirmed"
    # the channel lowers a quantity: the difference is cancelled, and flagged
    lowered = order_doc(
        status="confirmed",
        released=True,
        counters={"L1": {"accepted": 1}, "L2": {"accepted": 1}},
        lines=[
            {"id": "L1", "title": "Phone", "quantity": 1, "sku": "SKU-1", "price": 19900},
            {"id": "L2", "title": "Case", "quantity": 1, "sku": "SKU-2", "price": 1900},
        ],
    )
    await world.deliver_webhook(lowered)
    order = world.order()
    assert [(line.quantity, line.cancelled) for line in order.lines] == [(2, 1), (1, 0)]
    assert [a.code.value for a in order.attention] == ["channel_edited_lines"]


async def test_5_inbox_transient_errors_are_capped_visible_and_not_swept_early() -> None:
    world = make_world("topi", retry=POLICY)
    world.account().fail_next_intake(TransientChannelError("503", retry_after=30), times=5)
    message_id = await store(world, order_doc(), "wh-5")

    assert await process_message(world.hub, message_id) is Processed.RETRY
    world.clock.advance(10)  # not due: the sweeper does not bypass the backoff
    assert (await sweep(world.hub, requeue_after_seconds=0)).messages == 0
    for _ in range(2):
        world.clock.advance(60)
        await process_message(world.hub, message_id)
    message = world.db.inbox[message_id]
    assert message.state is InboxState.FAILED
    assert message.last_error == "transient errors exhausted: 503"
    assert [m.id for m in await failed_messages(world.hub)] == [message_id]


async def test_5_two_workers_never_process_one_message_at_once() -> None:
    world = make_world("topi", retry=POLICY)
    gate = asyncio.Event()
    account = world.account()
    original = account.snapshots

    async def slow(body: bytes, headers: Any) -> Any:
        await gate.wait()
        return await original(body, headers)

    account.snapshots = slow  # type: ignore[method-assign]
    message_id = await store(world, order_doc(), "wh-5b")
    first = asyncio.create_task(process_message(world.hub, message_id))
    await asyncio.sleep(0)
    assert await process_message(world.hub, message_id) is Processed.LEASED
    gate.set()
    assert await first is Processed.PROCESSED
    assert world.feed_types().count("order.received") == 1


async def test_7_a_shipment_sent_twice_is_recorded_once() -> None:
    world = make_world("topi", retry=POLICY)
    order = await world.receive(order_doc())
    await accept_order(world.hub, order_id=order.id)
    items = [LineQuantity(line_id=line_ids(order)["L1"], quantity=1)]

    first = await record_shipment(
        world.hub, order_id=order.id, items=items, carrier="dhl", tracking_number="JD1"
    )
    again = await record_shipment(
        world.hub, order_id=order.id, items=items, carrier="dhl", tracking_number="JD1"
    )

    assert again.command_id == first.command_id
    assert again.details["replayed"] is True
    assert len(world.order().shipments) == 1
    assert [c.kind.value for c in world.commands()].count("ship") == 1


async def test_8_a_whole_order_cancel_after_a_partial_shipment_names_its_units() -> None:
    world = make_world("topi", capabilities={"seller_cancellation": "line"})
    order = await world.receive(order_doc())
    await accept_order(world.hub, order_id=order.id)
    ids = line_ids(order)
    await record_shipment(
        world.hub,
        order_id=order.id,
        items=[LineQuantity(line_id=ids["L1"], quantity=1)],
        tracking_number="T-8",
    )

    receipt = await cancel_order(world.hub, order_id=order.id, reason=Reason.OUT_OF_STOCK)

    payload = world.db.commands[receipt.command_id].payload
    assert payload["whole_order"] is False  # a unit already left
    assert sorted((i["line_id"], i["quantity"]) for i in payload["lines"]) == sorted(
        [(ids["L1"], 1), (ids["L2"], 1)]
    )


async def test_9_a_lost_cancellation_webhook_is_healed_by_the_refresh() -> None:
    world = make_world("topi", retry=POLICY)
    order = await world.receive(order_doc())
    await accept_order(world.hub, order_id=order.id)
    world.account().channel_shows(
        order_doc(
            status="canceled",
            cancellations=[
                {
                    "id": "X1",
                    "initiator": "customer",
                    "reason": "customer_request",
                    "state": "accepted",
                }
            ],
        )
    )  # the channel cancelled; its webhook never came

    world.clock.advance(3601)
    assert await refresh_stale(world.hub, older_than_seconds=3600, limit=10) == (1, 0)
    await process_message(world.hub, world.queue.messages[-1])

    healed = world.order()
    assert healed.status is OrderStatus.CANCELLED
    assert healed.channel_status == "canceled"


async def test_10_one_orders_messages_apply_in_the_order_they_arrived() -> None:
    world = make_world("topi", retry=POLICY)
    cities = ["Berlin", "Hamburg", "Munich"]
    statuses = ["created", "acknowledged", "acknowledged"]
    ids = [
        await store(world, order_doc(status=s, shipping_address={"city": c}), f"wh-10-{n}")
        for n, (c, s) in enumerate(zip(cities, statuses, strict=True))
    ]
    # a second worker picks the last one first: it waits for the earlier ones
    assert await process_message(world.hub, ids[2]) is Processed.WAITING
    assert await process_message(world.hub, ids[1]) is Processed.WAITING
    assert await process_message(world.hub, ids[0]) is Processed.PROCESSED
    for message_id in ids[1:]:
        assert await process_message(world.hub, message_id) is Processed.PROCESSED

    order = world.order()
    assert order.shipping_address is not None
    assert order.shipping_address.city == "Munich"
    assert order.channel_status == "acknowledged"


async def test_12_the_orders_list_pages_by_commit_order_and_misses_no_change() -> None:
    world = make_world("topi", retry=POLICY)
    for n in range(3):
        await world.receive(order_doc(id=f"CO-{n}"))
    first_page = await list_orders(world.hub, OrderFilter(), after_seq=None, limit=2)
    # the first order changes after it was read: it comes again after the others
    await accept_order(world.hub, order_id=first_page[0].id)
    rest = await list_orders(world.hub, OrderFilter(), after_seq=first_page[-1].last_seq, limit=9)
    assert [o.channel_order_id for o in [*first_page, *rest]] == ["CO-0", "CO-1", "CO-2", "CO-0"]
