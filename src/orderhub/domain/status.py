"""The canonical status, derived from line counters: never set by hand."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from orderhub.domain.entities import Line
from orderhub.domain.events import EventType
from orderhub.domain.values import FulfilmentStatus, OrderStatus

STATUS_EVENT: Final = {
    OrderStatus.READY_TO_SHIP: EventType.ORDER_READY_TO_SHIP,
    OrderStatus.SHIPPED: EventType.ORDER_SHIPPED,
    OrderStatus.DELIVERED: EventType.ORDER_DELIVERED,
    OrderStatus.REJECTED: EventType.ORDER_REJECTED,
    OrderStatus.CANCELLED: EventType.ORDER_CANCELLED,
}
"""The feed event announcing that an order reached a status (where it has one)."""

FULFILMENT_EVENT: Final = {
    FulfilmentStatus.SHIPPED: EventType.FULFILMENT_SHIPPED,
    FulfilmentStatus.DELIVERED: EventType.FULFILMENT_DELIVERED,
    FulfilmentStatus.CANCELLED: EventType.FULFILMENT_CANCELLED,
}
"""The feed event announcing that a fulfilment is done (shipped whole, or closed short),
delivered, or cancelled."""


def derive_status(
    lines: Iterable[Line], *, acceptance_required: bool, released: bool
) -> OrderStatus:
    """The canonical status, computed from the leaf lines' counters only."""
    total = live = accepted = shipped = delivered = cancelled = 0
    for line in lines:
        total += line.quantity
        live += line.live
        accepted += line.accepted
        shipped += line.shipped
        delivered += line.delivered
        cancelled += line.cancelled
    if live == 0 and total > 0:
        return OrderStatus.CANCELLED if cancelled > 0 else OrderStatus.REJECTED
    if shipped == 0:
        if acceptance_required and accepted < live:
            return OrderStatus.AWAITING_ACCEPTANCE
        if not released:
            return OrderStatus.ACCEPTED
        return OrderStatus.READY_TO_SHIP
    if shipped < live:
        return OrderStatus.PARTIALLY_SHIPPED
    if delivered < shipped:
        return OrderStatus.SHIPPED
    return OrderStatus.DELIVERED


def fulfilment_status(lines: Iterable[Line], current: FulfilmentStatus) -> FulfilmentStatus:
    """A fulfilment's status from its leaf lines (``current`` when it has none)."""
    lines = list(lines)
    live = sum(line.live for line in lines)
    if live == 0:
        return FulfilmentStatus.CANCELLED if lines else current
    shipped = sum(line.shipped for line in lines)
    if shipped < live:
        return FulfilmentStatus.OPEN
    delivered = sum(line.delivered for line in lines)
    return FulfilmentStatus.DELIVERED if delivered >= shipped else FulfilmentStatus.SHIPPED
