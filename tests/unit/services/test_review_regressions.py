"""What the adversarial review of issue 6 found, each as the smallest story that showed it
(all failed before their fixes; the reviewer's proofs, kept)."""

from __future__ import annotations

from orderhub.application.hub import RetryPolicy
from orderhub.application.services import dispatch
from orderhub.application.services.dispatch import Dispatched, dispatch_command
from orderhub.application.services.intake import process_message
from orderhub.application.services.operations import (
    abandon_command,
    held_commands,
    refresh_stale,
    resync_order,
    retry_command,
    sweep,
)
from orderhub.application.services.seller_commands import (
    accept_order,
    cancel_order,
    record_shipment,
    reject_order,
)
from orderhub.channels.spi import PermanentChannelError, TransientChannelError
from orderhub.domain.values import LineQuantity, OrderStatus, Reason

from .support import World, line_ids, make_world, order_doc

POLICY = RetryPolicy(base_seconds=2.0, max_seconds=60.0, max_attempts=3, lease_seconds=120.0)
ONE = ({"id": "L1", "title": "Phone", "quantity": 2, "sku": "SKU-1"},)
CANCELLED = [
    {"id": "C1", "initiator": "customer", "reason": "customer_request", "state": "accepted"}
]


def events(world: World, command_id: str) -> list[str]:
    return [e.type for e in world.db.feed if e.data.get("command_id") == command_id]


async def test_a_failing_acknowledge_does_not_overwrite_the_accept_in_flight() -> None:
    world = make_world("topi", retry=POLICY, acknowledge_on_receipt=True)
    order = await world.receive(order_doc())
    [ack] = [c for c in world.commands() if c.kind.value == "acknowledge"]
    accept_id = (await accept_order(world.hub, order_id=order.id)).command_id
    claim = await dispatch._claim(world.hub, accept_id)  # a worker is in the accept's call
    assert isinstance(claim, dispatch.Claim)

    world.account().fail_next(PermanentChannelError("ack refused"))
    assert await dispatch_command(world.hub, ack.id) is Dispatched.FAILED

    accept = world.db.commands[accept_id]
    assert (accept.fence, accept.attempts, accept.held_by) == (1, 1, None)  # untouched
    assert accept.lease_until is not None
    outcome = await dispatch._succeed(world.hub, claim.command, dispatch.CommandOutcome())
    assert outcome is Dispatched.SUCCEEDED  # the worker in the call records its outcome
    assert events(world, accept_id) == ["command.succeeded"]


async def test_an_operators_retry_shuts_out_the_claims_made_before_it() -> None:
    world = make_world("topi", retry=RetryPolicy(max_attempts=1, lease_seconds=120.0))
    order = await world.receive(order_doc())
    command_id = (await accept_order(world.hub, order_id=order.id)).command_id
    stale = await dispatch._claim(world.hub, command_id)  # worker A, its call hangs
    assert isinstance(stale, dispatch.Claim)
    world.clock.advance(121)
    assert await dispatch_command(world.hub, command_id) is Dispatched.FAILED  # cap, at claim
    await retry_command(world.hub, command_id)

    late = await dispatch._give_up(world.hub, stale.command, "a late refusal", status=409)

    assert late is Dispatched.STALE
    assert events(world, command_id) == ["command.failed"]
    assert world.order().status is OrderStatus.READY_TO_SHIP  # the retried accept stands
    assert await dispatch_command(world.hub, command_id) is Dispatched.SUCCEEDED


async def test_a_command_independent_of_a_failed_one_is_not_held_and_is_swept() -> None:
    world = make_world("topi", retry=POLICY, acknowledge_on_receipt=True)
    order = await world.receive(order_doc())
    [ack] = [c for c in world.commands() if c.kind.value == "acknowledge"]
    accept_id = (await accept_order(world.hub, order_id=order.id)).command_id
    world.account().fail_next(PermanentChannelError("ack refused"))
    assert await dispatch_command(world.hub, ack.id) is Dispatched.FAILED
    world.queue.commands.clear()  # the accept's own hand-off was lost

    world.clock.advance(3600)
    assert (await sweep(world.hub, requeue_after_seconds=120)).commands == 1
    assert await held_commands(world.hub) == []
    assert await dispatch_command(world.hub, accept_id) is Dispatched.SUCCEEDED


async def test_a_refused_reject_does_not_reopen_an_order_the_channel_cancelled() -> None:
    world = make_world("topi", retry=POLICY)
    order = await world.receive(order_doc(lines=ONE))
    reject_id = (
        await reject_order(world.hub, order_id=order.id, reason=Reason.OUT_OF_STOCK)
    ).command_id
    await world.deliver_webhook(
        order_doc(lines=ONE, status="canceled", cancellations=CANCELLED)
    )  # the customer cancelled before the reject reached the channel
    world.account().fail_next(PermanentChannelError("409: the order is canceled"))
    assert await dispatch_command(world.hub, reject_id) is Dispatched.FAILED

    refused = world.order()
    assert refused.status is OrderStatus.CANCELLED
    assert refused.channel_status == "canceled"


async def test_undoing_a_reject_never_overfills_a_line() -> None:
    world = make_world("octopia", retry=POLICY)
    order = await world.receive(order_doc(lines=ONE))
    line = line_ids(order)["L1"]
    one = [LineQuantity(line_id=line, quantity=1)]
    accept = (await accept_order(world.hub, order_id=order.id, lines=one)).command_id
    assert await dispatch_command(world.hub, accept) is Dispatched.SUCCEEDED
    await world.deliver_webhook(
        order_doc(lines=ONE, status="accepted", released=True, counters={"L1": {"accepted": 1}})
    )
    ship = (
        await record_shipment(world.hub, order_id=order.id, items=one, tracking_number="T1")
    ).command_id
    assert await dispatch_command(world.hub, ship) is Dispatched.SUCCEEDED
    reject = (
        await reject_order(world.hub, order_id=order.id, reason=Reason.OUT_OF_STOCK, lines=one)
    ).command_id
    await world.deliver_webhook(
        order_doc(
            lines=ONE,
            status="refused",
            counters={"L1": {"accepted": 1, "shipped": 1, "rejected": 2}},
        )
    )
    world.account().fail_next(PermanentChannelError("400: already refused"))
    assert await dispatch_command(world.hub, reject) is Dispatched.FAILED

    line_after = world.order().lines[0]
    assert min(line_after.accepted, line_after.rejected, line_after.cancelled) >= 0
    assert line_after.accepted + line_after.rejected + line_after.cancelled <= 2


async def test_a_cancellation_of_lines_the_hub_does_not_know_cancels_nothing_else() -> None:
    l3 = {"id": "L3", "title": "Cable", "quantity": 1, "sku": "SKU-3"}
    world = make_world("spresso")
    await world.receive(order_doc(lines=ONE, updated_at="2026-01-01T10:00:00Z"))
    await world.deliver_webhook(
        order_doc(lines=ONE, status="processing", updated_at="2026-01-01T12:00:00Z")
    )
    await world.deliver_webhook(  # late (an older stamp): it added L3 and cancelled only L3
        order_doc(
            lines=(*ONE, l3),
            status="processing",
            updated_at="2026-01-01T11:00:00Z",
            cancellations=[{**CANCELLED[0], "id": "C9", "lines": [{"line": "L3", "quantity": 1}]}],
        )
    )
    order = world.order()
    assert order.lines[0].cancelled == 0
    assert [a.code.value for a in order.attention] == ["channel_edited_lines"]


async def test_the_channel_echoing_the_sellers_cancellation_cancels_once() -> None:
    world = make_world("octopia")
    order = await world.receive(order_doc(lines=ONE))
    one = [LineQuantity(line_id=line_ids(order)["L1"], quantity=1)]
    accept = (await accept_order(world.hub, order_id=order.id)).command_id
    assert await dispatch_command(world.hub, accept) is Dispatched.SUCCEEDED
    cancel = (
        await cancel_order(world.hub, order_id=order.id, reason=Reason.SELLER_REFUSAL, lines=one)
    ).command_id
    assert await dispatch_command(world.hub, cancel) is Dispatched.SUCCEEDED

    await world.deliver_webhook(
        order_doc(
            lines=ONE,
            status="accepted",
            counters={"L1": {"accepted": 2}},
            cancellations=[
                {
                    "id": "OCT-C1",
                    "initiator": "seller",
                    "reason": "seller-refusal",
                    "state": "accepted",
                    "lines": [{"line": "L1", "quantity": 1}],
                }
            ],
        )
    )
    after = world.order()
    assert after.lines[0].cancelled == 1
    [cancellation] = after.cancellations
    assert cancellation.channel_cancellation_id == "OCT-C1"


async def test_waiting_commands_never_starve_a_lost_one() -> None:
    world = make_world("topi", retry=RetryPolicy(base_seconds=600, max_seconds=600))
    world.account().fail_next(TransientChannelError("503 topi down"), times=10**6)
    for n in range(30):  # each accept backs off; each order's shipment waits behind it
        order = await world.receive(order_doc(id=f"CO-{n}"))
        accept = (await accept_order(world.hub, order_id=order.id)).command_id
        await dispatch_command(world.hub, accept)
        await record_shipment(
            world.hub,
            order_id=order.id,
            tracking_number=f"T{n}",
            items=[LineQuantity(line_id=line_ids(order)["L2"], quantity=1)],
        )
    world.clock.advance(121)
    new = await world.receive(order_doc(id="CO-NEW"))
    lost = (await accept_order(world.hub, order_id=new.id)).command_id
    world.queue.commands.clear()  # its hand-off was lost

    queued: list[str] = []
    for _ in range(10):  # five minutes of sweeps of five rows each
        world.clock.advance(30)
        await sweep(world.hub, requeue_after_seconds=120, limit=5, page=5)
        queued += [command_id for command_id, _ in world.queue.commands]
        world.queue.commands.clear()
    assert lost in queued


async def test_one_order_the_adapter_cannot_refresh_stops_none_of_the_others() -> None:
    world = make_world("topi")
    for n in range(3):
        await world.receive(order_doc(id=f"CO-{n}"))
        world.account().channel_shows(order_doc(id=f"CO-{n}", status="canceled"))
        world.clock.advance(1)
    world.clock.advance(7200)
    world.account().fail_next_intake(KeyError("'assets'"))  # an adapter bug on CO-0

    assert await refresh_stale(world.hub, older_than_seconds=3600, limit=50) == (2, 1)


async def test_an_abandoned_shipment_keeps_attention_the_channel_never_took_it() -> None:
    world = make_world("topi", retry=POLICY)
    order = await world.receive(order_doc(lines=ONE))
    accept = (await accept_order(world.hub, order_id=order.id)).command_id
    assert await dispatch_command(world.hub, accept) is Dispatched.SUCCEEDED
    ship = (
        await record_shipment(
            world.hub,
            order_id=order.id,
            items=[LineQuantity(line_id=line_ids(order)["L1"], quantity=1)],
            tracking_number="T-1",
        )
    ).command_id
    world.account().fail_next(PermanentChannelError("400: no asset with that reference"))
    assert await dispatch_command(world.hub, ship) is Dispatched.FAILED
    await abandon_command(world.hub, ship)

    [reason] = world.order().attention
    assert (reason.code.value, reason.ref) == ("channel_reports_less", ship)
    assert world.order().status is OrderStatus.PARTIALLY_SHIPPED  # the parcel left


async def test_every_resync_is_applied_even_when_the_channel_shows_the_same() -> None:
    world = make_world("topi")
    created = order_doc(status="created")
    await world.deliver_webhook(created, webhook_id="wh-1")
    order = world.order()
    world.account().channel_shows(order_doc(status="acknowledged"))
    first = await resync_order(world.hub, order.id)
    await process_message(world.hub, first.message_id)

    await world.deliver_webhook(created, webhook_id="wh-1-again")  # a late copy, no stamp
    again = await resync_order(world.hub, order.id)  # the channel shows the same as before
    assert not again.duplicate
    await process_message(world.hub, again.message_id)
    assert world.order().channel_status == "acknowledged"
