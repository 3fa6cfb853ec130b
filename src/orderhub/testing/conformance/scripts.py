"""The warehouse's commands the kit issues, chosen from what the channel declares
(:class:`Capabilities`), never from the channel's name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from orderhub.application.hub import Hub
from orderhub.application.services import seller_commands
from orderhub.application.services.common import CommandReceipt
from orderhub.channels.spi import CommandKind
from orderhub.domain.capabilities import Capabilities, DeliveryConfirmation, Scope
from orderhub.domain.entities import Line
from orderhub.domain.model import Order
from orderhub.domain.values import Decision, FulfilledBy, LineQuantity, OrderStatus, Reason

TRACKING_HOST: Final = "https://track.example"


@dataclass(frozen=True, kw_only=True, slots=True)
class Parcel:
    fulfilment_id: str | None
    items: tuple[LineQuantity, ...]


def unsupported(caps: Capabilities) -> frozenset[CommandKind]:
    """The commands the capabilities say the channel cannot carry out at all."""
    kinds = {
        CommandKind.ACCEPT: caps.acceptance is Scope.NONE,
        CommandKind.REJECT: caps.rejection is Scope.NONE,
        CommandKind.SHIP: caps.shipment is Scope.NONE,
        CommandKind.DELIVER: caps.delivery_confirmation is not DeliveryConfirmation.SELLER,
        CommandKind.CANCEL: caps.seller_cancellation is Scope.NONE,
        CommandKind.DECIDE_CANCELLATION: not caps.cancellation_requests,
    }
    return frozenset(kind for kind, refused in kinds.items() if refused)


def _ours(order: Order, line: Line) -> bool:
    if line.fulfilment_id is None:
        return True
    return order.fulfilment(line.fulfilment_id).fulfilled_by is FulfilledBy.SELLER


def _item(order: Order, line: Line, quantity: int) -> LineQuantity:
    """``quantity`` units of ``line``, with serial numbers where the line needs them
    (unique per order and per channel: the channel order id is part of each)."""
    serials: tuple[str, ...] = ()
    if line.requires_serial_number:
        first = line.shipped + 1
        serials = tuple(
            f"SN-{order.channel_order_id}-{line.channel_line_id}-{n}"
            for n in range(first, first + quantity)
        )
    return LineQuantity(line_id=line.id, quantity=quantity, serial_numbers=serials)


def parcels(order: Order, caps: Capabilities) -> list[Parcel]:
    """What is left to ship, in as many parcels as the channel allows: a line each where
    it takes partial shipments per line, else one per fulfilment (or one for the order)."""
    open_lines = [ln for ln in order.leaf_lines if _ours(order, ln) and ln.unshipped > 0]
    by_fulfilment: dict[str | None, list[Line]] = {}
    for line in open_lines:
        key = line.fulfilment_id if caps.multiple_fulfilments else None
        by_fulfilment.setdefault(key, []).append(line)
    found: list[Parcel] = []
    for fulfilment_id, lines in by_fulfilment.items():
        if caps.shipment is Scope.LINE and caps.partial_shipment:
            found.extend(
                Parcel(fulfilment_id=fulfilment_id, items=(_item(order, ln, ln.unshipped),))
                for ln in lines
            )
        else:
            items = tuple(_item(order, ln, ln.unshipped) for ln in lines)
            found.append(Parcel(fulfilment_id=fulfilment_id, items=items))
    return found


async def ship(hub: Hub, order: Order, parcel: Parcel, number: int) -> CommandReceipt:
    return await seller_commands.record_shipment(
        hub,
        order_id=order.id,
        items=list(parcel.items),
        fulfilment_id=parcel.fulfilment_id,
        carrier="conformance-carrier",
        tracking_number=f"CT-{order.channel_order_id}-{number}",
        tracking_url=f"{TRACKING_HOST}/{order.channel_order_id}/{number}",
    )


def cancel_reason(order: Order, caps: Capabilities) -> Reason | None:
    """A reason the channel takes for a seller cancellation in the order's status (any
    where it lists none); None: no reason is allowed now."""
    if not caps.cancellation_reasons:
        return Reason.OUT_OF_STOCK
    for reason, statuses in caps.cancellation_reasons.items():
        if order.status in statuses:
            return reason
    return None


Probe = Callable[[Hub, Order, Capabilities], Awaitable[CommandReceipt]]


async def _accept(hub: Hub, order: Order, caps: Capabilities) -> CommandReceipt:
    return await seller_commands.accept_order(hub, order_id=order.id)


async def _reject(hub: Hub, order: Order, caps: Capabilities) -> CommandReceipt:
    return await seller_commands.reject_order(hub, order_id=order.id, reason=Reason.OUT_OF_STOCK)


async def _ship(hub: Hub, order: Order, caps: Capabilities) -> CommandReceipt:
    lines = [ln for ln in order.leaf_lines if _ours(order, ln)] or order.leaf_lines
    items = [_item(order, ln, ln.unshipped) for ln in lines if ln.unshipped > 0]
    if not items:  # nothing left: ask for one unit all the same, the hub must say no
        items = [_item(order, lines[0], 1)]
    fulfilment_id = lines[0].fulfilment_id if caps.multiple_fulfilments else None
    parcel = Parcel(fulfilment_id=fulfilment_id, items=tuple(items))
    return await ship(hub, order, parcel, 1)


async def _deliver(hub: Hub, order: Order, caps: Capabilities) -> CommandReceipt:
    return await seller_commands.confirm_delivery(hub, order_id=order.id)


async def _cancel(hub: Hub, order: Order, caps: Capabilities) -> CommandReceipt:
    reason = cancel_reason(order, caps) or next(iter(caps.cancellation_reasons))
    return await seller_commands.cancel_order(hub, order_id=order.id, reason=reason)


async def _decide(hub: Hub, order: Order, caps: Capabilities) -> CommandReceipt:
    return await seller_commands.decide_cancellation(
        hub, order_id=order.id, decision=Decision.ACCEPT
    )


PROBES: Final[dict[CommandKind, Probe]] = {
    CommandKind.ACCEPT: _accept,
    CommandKind.REJECT: _reject,
    CommandKind.SHIP: _ship,
    CommandKind.DELIVER: _deliver,
    CommandKind.CANCEL: _cancel,
    CommandKind.DECIDE_CANCELLATION: _decide,
}
"""One attempt at each warehouse command, on an order in whatever state it is in."""


def ready(order: Order) -> bool:
    return order.status is OrderStatus.READY_TO_SHIP
