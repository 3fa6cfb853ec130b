"""Orders the kit takes through their lives: along the driver's channel paths (intake
only), and through the warehouse's commands (fulfil, reject, cancel)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

from orderhub.application.services import seller_commands
from orderhub.application.services.common import CommandReceipt
from orderhub.channels.spi import CommandKind
from orderhub.domain.capabilities import Capabilities
from orderhub.domain.model import ChannelSnapshot
from orderhub.domain.values import OrderStatus, Reason
from orderhub.testing.conformance.driver import ConformanceDriver, Delivery
from orderhub.testing.conformance.rig import HubRig, fingerprint
from orderhub.testing.conformance.scripts import cancel_reason, parcels, ship, unsupported

Issue = Callable[[], Awaitable[CommandReceipt]]
Script = Callable[[HubRig, str], AsyncIterator[tuple[CommandKind, Issue]]]


@dataclass(kw_only=True)
class Step:
    """One stop of a walk: the channel's state, the messages it brought (the refresh
    read last, where the adapter has one), what they map to, and the hub's view."""

    state: str
    deliveries: list[Delivery] = field(default_factory=list)
    snapshots: list[ChannelSnapshot] = field(default_factory=list)
    hub: dict[str, Any] = field(default_factory=dict)


async def place(driver: ConformanceDriver, rig: HubRig) -> str:
    """A new order at the channel, received by the hub (no command sent yet)."""
    channel_order_id = await driver.create_order()
    await rig.deliver_new(channel_order_id)
    rig.order(channel_order_id)  # the hub has it, or the failed messages say why
    return channel_order_id


async def move(driver: ConformanceDriver, channel_order_id: str, state: str) -> None:
    if await driver.channel_state(channel_order_id) != state:
        await driver.move_to(channel_order_id, state)
    reached = await driver.channel_state(channel_order_id)
    assert reached == state, f"the driver moved order {channel_order_id} to {reached}, not {state}"


async def walk(
    driver: ConformanceDriver, rig: HubRig, path: tuple[str, ...] | list[str]
) -> tuple[str, list[Step]]:
    """Take a new order along ``path`` at the channel, delivering every message to the
    hub as it comes (commands are never sent); each step's record."""
    channel_order_id = await driver.create_order()
    steps = []
    for state in path:
        await move(driver, channel_order_id, state)
        step = Step(state=state)
        step.deliveries = await rig.deliver_new(channel_order_id)
        refreshed = await rig.refresh(channel_order_id) if rig.find(channel_order_id) else None
        if refreshed is not None:
            step.deliveries.append(refreshed)
            await rig.deliver([refreshed])
        step.snapshots = await mapped(rig, channel_order_id, step.deliveries)
        step.hub = fingerprint(rig.order(channel_order_id))
        steps.append(step)
    return channel_order_id, steps


async def mapped(
    rig: HubRig, channel_order_id: str, deliveries: list[Delivery]
) -> list[ChannelSnapshot]:
    """What the adapter maps the messages to now (a thin message reads the channel now)."""
    found: list[ChannelSnapshot] = []
    for delivery in deliveries:
        snapshots = await rig.account.snapshots(delivery.body, delivery.headers)
        found.extend(s for s in snapshots if s.channel_order_id == channel_order_id)
    return found


# --- the warehouse's scripts -----------------------------------------------------------


def caps_of(rig: HubRig, channel_order_id: str) -> Capabilities:
    return rig.order(channel_order_id).capabilities or rig.account.capabilities


async def release(rig: HubRig, channel_order_id: str) -> None:
    """An accepted order the channel has not released yet: the channel releases it (its
    first state documented as ready_to_ship)."""
    if rig.order(channel_order_id).status is not OrderStatus.ACCEPTED:
        return
    states = [s for s, status in rig.driver.statuses.items() if status is OrderStatus.READY_TO_SHIP]
    assert states, "the order waits for the channel's release, but no state is ready_to_ship"
    await move(rig.driver, channel_order_id, states[0])
    await rig.settle(channel_order_id)


async def _accept(rig: HubRig, channel_order_id: str) -> CommandReceipt:
    return await seller_commands.accept_order(rig.hub, order_id=rig.order(channel_order_id).id)


async def fulfil(rig: HubRig, channel_order_id: str) -> AsyncIterator[tuple[CommandKind, Issue]]:
    """Accept (where the channel has acceptance), ship everything in the parcels the
    channel allows, confirm delivery (where the seller reports it). The caller issues
    each command and settles before asking for the next."""
    caps = caps_of(rig, channel_order_id)
    never = unsupported(caps)
    if CommandKind.ACCEPT not in never:
        yield CommandKind.ACCEPT, partial(_accept, rig, channel_order_id)
        await release(rig, channel_order_id)
    order = rig.order(channel_order_id)
    for number, parcel in enumerate(parcels(order, caps), start=1):
        yield CommandKind.SHIP, partial(ship, rig.hub, order, parcel, number)
    if CommandKind.DELIVER not in never:
        yield (
            CommandKind.DELIVER,
            partial(seller_commands.confirm_delivery, rig.hub, order_id=order.id),
        )


async def reject(rig: HubRig, channel_order_id: str) -> AsyncIterator[tuple[CommandKind, Issue]]:
    """Reject the whole order while it awaits acceptance (where the channel has rejection)."""
    if CommandKind.REJECT in unsupported(caps_of(rig, channel_order_id)):
        return
    order_id = rig.order(channel_order_id).id
    yield (
        CommandKind.REJECT,
        partial(
            seller_commands.reject_order, rig.hub, order_id=order_id, reason=Reason.OUT_OF_STOCK
        ),
    )


async def cancel(rig: HubRig, channel_order_id: str) -> AsyncIterator[tuple[CommandKind, Issue]]:
    """Cancel the whole order (where the seller may): first accepted, where a reason
    needs it."""
    caps = caps_of(rig, channel_order_id)
    never = unsupported(caps)
    if CommandKind.CANCEL in never:
        return
    order = rig.order(channel_order_id)
    if cancel_reason(order, caps) is None and CommandKind.ACCEPT not in never:
        yield CommandKind.ACCEPT, partial(_accept, rig, channel_order_id)
        await release(rig, channel_order_id)
        order = rig.order(channel_order_id)
    reason = cancel_reason(order, caps)
    if reason is not None:
        yield (
            CommandKind.CANCEL,
            partial(seller_commands.cancel_order, rig.hub, order_id=order.id, reason=reason),
        )


SCRIPTS: Final[dict[str, Script]] = {"fulfil": fulfil, "reject": reject, "cancel": cancel}
