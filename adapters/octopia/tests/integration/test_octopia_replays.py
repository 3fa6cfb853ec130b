"""A command carried out again after its answer was lost (the worker died between the
call and the record): Octopia takes no idempotency key, so the adapter reads the order
first and nothing is done twice."""

from __future__ import annotations

import dataclasses

import pytest
from octopia_rig import OctopiaRig
from test_octopia_stories import decide_all, ready, ship_all

from orderhub.application.ports import CommandState
from orderhub.application.services import seller_commands
from orderhub.channels.spi import CommandKind, CommandView
from orderhub.domain.values import Decision, LineQuantity, Reason
from orderhub_octopia.client import OctopiaRejected
from orderhub_octopia.simulator import SimulatorControl


@pytest.mark.parametrize(("sales_channel", "lines"), [("CDISFR", [{}, {}]), ("OCTOBE", [{}])])
async def test_an_accepted_cancellation_request_sent_again_is_not_sent_twice(
    rig: OctopiaRig, sim: SimulatorControl, sales_channel: str, lines: list[dict[str, str]]
) -> None:
    order_id = await ready(rig, sim, sales_channel=sales_channel, lines=lines)
    sim.move(order_id, "cancel-request")
    await rig.polled(order_id)
    await decide_all(rig, order_id, Decision.ACCEPT)
    order = rig.order(order_id)
    [decided] = [c for c in rig.commands(order) if c.kind is CommandKind.DECIDE_CANCELLATION]
    assert decided.state is CommandState.SUCCEEDED
    details = sim.order(order_id)["cancellationDetails"]
    posts = len(sim.calls(method="POST", path="cancellation"))
    # the answer was lost: the same command, claimed again
    again = dataclasses.replace(CommandView.of(decided), fence=decided.fence + 1)
    outcome = await rig.octopia.execute(again, order)
    assert outcome.data.get("replayed") is True
    assert len(sim.calls(method="POST", path="cancellation")) == posts
    assert sim.order(order_id)["cancellationDetails"] == details


async def test_an_approval_sent_again_reads_the_order_first(
    rig: OctopiaRig, sim: SimulatorControl
) -> None:
    order_id = str(sim.create_order(sales_channel="CDISFR")["orderId"])
    order = await rig.polled(order_id)
    await seller_commands.accept_order(rig.hub, order_id=order.id)
    await rig.settle(order_id)
    assert sim.order(order_id)["status"] == "Accepted"
    [accepted] = [c for c in rig.commands(order) if c.kind is CommandKind.ACCEPT]
    posts = len(sim.calls(method="POST", path="approval-status"))
    # Octopia's answer to a second approval is not documented; a 409 is retried as
    # transient until the command fails, though the approval went through
    sim.add_fault("/orders/*/approval-status", status=409, times=10)
    again = dataclasses.replace(CommandView.of(accepted), fence=accepted.fence + 1)
    outcome = await rig.octopia.execute(again, rig.order(order_id))
    assert outcome.data.get("replayed") is True
    assert len(sim.calls(method="POST", path="approval-status")) == posts


async def test_a_whole_order_cancellation_after_a_line_cancellation_sent_again(
    rig: OctopiaRig, sim: SimulatorControl
) -> None:
    order_id = await ready(rig, sim, sales_channel="OCTOBE", lines=[{}, {}])
    order = rig.order(order_id)
    first = order.leaf_lines[0]
    await seller_commands.cancel_order(
        rig.hub,
        order_id=order.id,
        reason=Reason.SELLER_REFUSAL,
        lines=[LineQuantity(line_id=first.id, quantity=first.quantity)],
    )
    await rig.settle(order_id)
    await rig.polled(order_id)
    await seller_commands.cancel_order(rig.hub, order_id=order.id, reason=Reason.SELLER_REFUSAL)
    await rig.settle(order_id)
    assert sim.order(order_id)["status"] == "Cancelled"
    order = rig.order(order_id)
    cancel = [c for c in rig.commands(order) if c.kind is CommandKind.CANCEL][-1]
    assert cancel.state is CommandState.SUCCEEDED
    details = sim.order(order_id)["cancellationDetails"]
    again = dataclasses.replace(CommandView.of(cancel), fence=cancel.fence + 1)
    outcome = await rig.octopia.execute(again, order)
    assert outcome.data.get("replayed") is True
    assert sim.order(order_id)["cancellationDetails"] == details


async def test_a_cancellation_whose_lines_an_earlier_one_took_is_done_not_refused(
    rig: OctopiaRig, sim: SimulatorControl
) -> None:
    """The warehouse accepted a customer's request, then cancelled the whole order before
    the first call went: that one cancelled all that was left, and the second, sent for
    the first time, is refused by Octopia (nothing left to cancel). Octopia shows the
    lines cancelled by the seller: the second is done, not refused (which would undo it
    and flag the order)."""
    order_id = await ready(rig, sim, sales_channel="OCTOBE", lines=[{}, {}])
    order = rig.order(order_id)
    await seller_commands.cancel_order(rig.hub, order_id=order.id, reason=Reason.SELLER_REFUSAL)
    await rig.settle(order_id)
    assert sim.order(order_id)["status"] == "Cancelled"
    order = rig.order(order_id)
    [cancel] = [c for c in rig.commands(order) if c.kind is CommandKind.CANCEL]
    posts = len(sim.calls(method="POST", path="cancellation"))

    second = dataclasses.replace(CommandView.of(cancel), id="a-second-command", fence=1)
    outcome = await rig.octopia.execute(second, order)

    assert outcome.data.get("replayed") is True
    assert len(sim.calls(method="POST", path="cancellation")) == posts + 1  # tried, refused


async def test_a_cancellation_refused_with_no_seller_cancellation_listed_stays_refused(
    rig: OctopiaRig, sim: SimulatorControl
) -> None:
    """The other side of the one above: Octopia cancelled the order itself (no seller
    cancellation lists the lines), then refused the seller's: the refusal reaches the
    hub, which fails the command and undoes the decision for a person to see."""
    order_id = await ready(rig, sim, sales_channel="OCTOBE", lines=[{}, {}])
    order = rig.order(order_id)
    await seller_commands.cancel_order(rig.hub, order_id=order.id, reason=Reason.SELLER_REFUSAL)
    [cancel] = [c for c in rig.commands(order) if c.kind is CommandKind.CANCEL]
    sim.move(order_id, "cancel")  # before the seller's call goes

    with pytest.raises(OctopiaRejected):
        await rig.octopia.execute(CommandView.of(cancel), rig.order(order_id))


async def test_a_parcel_sent_again_after_octopia_dropped_its_carrier_is_still_done(
    rig: OctopiaRig, sim: SimulatorControl
) -> None:
    order_id = await ready(rig, sim, sales_channel="OCTOBE")
    await ship_all(rig, order_id)
    order = rig.order(order_id)
    [ship] = [c for c in rig.commands(order) if c.kind is CommandKind.SHIP]
    assert ship.state is CommandState.SUCCEEDED
    rig.octopia._carriers = {}  # the daily refresh no longer lists it
    again = dataclasses.replace(CommandView.of(ship), fence=ship.fence + 1)
    outcome = await rig.octopia.execute(again, order)
    assert outcome.data.get("replayed") is True
