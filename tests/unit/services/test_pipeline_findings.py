"""What the pipeline state machine (test_pipeline_machine.py) found, each as the smallest
story that shows it.

The first two failed on a2a7158 and pass since 2e64c03 (an abandoned shipment leaves
attention; every resync is stored and applied); the third failed since 2e64c03 (a
decision whose call gave up was kept) and passes since abandoning a decision undoes it.
They stay as regression tests."""

from __future__ import annotations

from orderhub.application.hub import RetryPolicy
from orderhub.application.services.dispatch import Dispatched, dispatch_command
from orderhub.application.services.intake import process_message
from orderhub.application.services.operations import abandon_command, resync_order
from orderhub.application.services.seller_commands import accept_order, record_shipment
from orderhub.channels.spi import PermanentChannelError, TransientChannelError
from orderhub.domain.values import LineQuantity, OrderStatus

from .support import line_ids, make_world, order_doc

POLICY = RetryPolicy(base_seconds=2.0, max_seconds=30.0, max_attempts=3, lease_seconds=60.0)
ONE_LINE = ({"id": "L1", "title": "Phone", "quantity": 1, "sku": "SKU-1"},)


async def test_an_abandoned_shipment_leaves_the_order_showing_what_the_channel_says() -> None:
    """A shipment the channel refused, then abandoned by the operator, is a fact of the hub
    the channel does not have. ``abandon_command`` promises that "the order keeps showing
    what the channel says". On a2a7158 the order showed ``shipped`` for good, with no
    attention reason and no failed command, while the channel held it confirmed with
    nothing shipped; a resync changed nothing (the attention code for it,
    ``channel_reports_less``, was raised nowhere)."""
    world = make_world("topi", retry=POLICY)
    order = await world.receive(order_doc(lines=ONE_LINE))
    accept = await accept_order(world.hub, order_id=order.id)
    assert await dispatch_command(world.hub, accept.command_id) is Dispatched.SUCCEEDED
    ship = await record_shipment(
        world.hub,
        order_id=order.id,
        items=[LineQuantity(line_id=line_ids(order)["L1"], quantity=1)],
        tracking_number="T-1",
    )
    world.account().fail_next(PermanentChannelError("400: no asset with that reference"))
    assert await dispatch_command(world.hub, ship.command_id) is Dispatched.FAILED
    await abandon_command(world.hub, ship.command_id)  # it will never be sent

    # the channel's truth: confirmed, nothing shipped
    world.account().channel_shows(
        order_doc(
            lines=ONE_LINE, status="confirmed", counters={"L1": {"accepted": 1}}, released=True
        )
    )
    stored = await resync_order(world.hub, order.id)
    await process_message(world.hub, stored.message_id)

    order = world.order()
    assert order.status is OrderStatus.READY_TO_SHIP or order.attention, (
        f"the hub shows {order.status.value} with no attention reason; the channel holds "
        "the order confirmed with nothing shipped"
    )


async def test_a_resync_heals_a_channel_status_set_back_by_a_late_webhook() -> None:
    """A webhook delivered again late, as a new message (new webhook id, old body, no
    update stamp: topi sends none), sets the channel status back from ``acknowledged`` to
    ``created``: the counters are equal, so the merge cannot tell that it is behind. An
    operator's resync should heal that; on a2a7158 the refresh's dedupe key was a hash of
    the body alone, so a resync that read the same ``acknowledged`` document as an earlier
    one was dropped as a duplicate and the hub kept showing ``created``."""
    world = make_world("topi", retry=POLICY)
    created = order_doc(status="created")
    await world.deliver_webhook(created, webhook_id="wh-1")
    order = world.order()

    world.account().channel_shows(order_doc(status="acknowledged"))
    first = await resync_order(world.hub, order.id)
    await process_message(world.hub, first.message_id)
    assert world.order().channel_status == "acknowledged"

    await world.deliver_webhook(created, webhook_id="wh-1-sent-again")  # late
    again = await resync_order(world.hub, order.id)  # the channel still shows acknowledged
    if not again.duplicate:
        await process_message(world.hub, again.message_id)

    assert world.order().channel_status == "acknowledged", (
        f"after a resync the hub shows channel status {world.order().channel_status!r}; the "
        f"channel shows 'acknowledged' (the resync was a duplicate: {again.duplicate})"
    )


async def test_an_abandoned_accept_that_gave_up_shows_what_the_channel_says() -> None:
    """An accept whose calls all failed transiently gives up; since 2e64c03 the decision is
    kept (the channel may have taken it), with an attention reason naming the command. The
    operator abandons it: the attention reason goes, and nothing else says that the
    channel never took the acceptance (unlike an abandoned shipment, which raises
    ``channel_reports_less``). The order shows ``ready_to_ship`` for good while the
    channel holds it ``acknowledged``, awaiting acceptance: a resync does not change that
    (the channel's zero does not lower the hub's counters), and the warehouse may ship an
    order the channel never confirmed."""
    world = make_world("topi", retry=POLICY)
    order = await world.receive(order_doc())
    accept = await accept_order(world.hub, order_id=order.id)
    world.account().fail_next(TransientChannelError("503: try later"), times=POLICY.max_attempts)
    outcomes = []
    for _ in range(POLICY.max_attempts):
        world.clock.advance(POLICY.max_seconds)
        outcomes.append(await dispatch_command(world.hub, accept.command_id))
    assert outcomes[-1] is Dispatched.FAILED
    await abandon_command(world.hub, accept.command_id)  # it will never be sent

    # the channel's truth: acknowledged, nothing accepted
    world.account().channel_shows(order_doc(status="acknowledged"))
    stored = await resync_order(world.hub, order.id)
    await process_message(world.hub, stored.message_id)

    order = world.order()
    assert order.status is OrderStatus.AWAITING_ACCEPTANCE or order.attention, (
        f"the hub shows {order.status.value} with no attention reason; the channel holds "
        f"the order {order.channel_status}, nothing accepted"
    )
