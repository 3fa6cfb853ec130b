"""Builders for domain tests: orders of each test channel profile, as a channel sends them."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from orderhub.domain.capabilities import Capabilities
from orderhub.domain.events import OrderEvent
from orderhub.domain.model import (
    CancellationSnapshot,
    ChannelSnapshot,
    FulfilmentSnapshot,
    LineSnapshot,
    Order,
)
from orderhub.domain.values import FulfilledBy, Initiator, LineQuantity, Reason, RequestState
from orderhub.testing.channel import octopia_like, spresso_like, topi_like

NOW: Final = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
LATER: Final = NOW + timedelta(minutes=5)

PROFILES: Final[Mapping[str, Callable[[], Capabilities]]] = {
    "topi": topi_like,
    "octopia": octopia_like,
    "spresso": spresso_like,
}

#: the feed's public vocabulary (canonical-model.md)
CONTRACT_EVENTS: Final = frozenset(
    {
        "order.received",
        "order.accepted",
        "order.ready_to_ship",
        "order.rejected",
        "order.lines_rejected",
        "order.shipment_recorded",
        "order.shipped",
        "order.delivered",
        "order.cancellation_requested",
        "order.cancellation_refused",
        "order.cancelled",
        "order.lines_cancelled",
        "order.return_requested",
        "order.updated",
        "order.attention_required",
        "order.attention_cleared",
        "fulfilment.shipped",
        "fulfilment.delivered",
        "fulfilment.cancelled",
        "invoice.recorded",
        "invoice.accepted",
        "invoice.rejected",
        "command.succeeded",
        "command.failed",
        "operator.action",
    }
)


class Ids:
    """``new_id`` for the aggregate: readable, ordered ids."""

    def __init__(self, prefix: str = "h") -> None:
        self._counter = itertools.count(1)
        self.prefix = prefix

    def __call__(self) -> str:
        return f"{self.prefix}{next(self._counter)}"


@dataclass(frozen=True, kw_only=True)
class L:
    """A channel line: id, quantity, and what the channel has seen of it."""

    id: str
    quantity: int = 1
    sku: str | None = None
    requires_serial: bool = False
    parent: str | None = None
    fulfilment: str | None = None
    accepted: int = 0
    rejected: int = 0
    shipped: int = 0
    delivered: int = 0


@dataclass(frozen=True, kw_only=True)
class C:
    """A channel cancellation."""

    id: str
    state: RequestState = RequestState.REQUESTED
    initiator: Initiator = Initiator.CUSTOMER
    reason: Reason = Reason.CUSTOMER_REQUEST
    lines: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Doc:
    """An order as the channel shows it at one moment."""

    lines: Sequence[L] = (L(id="L1", quantity=2), L(id="L2", quantity=1))
    status: str = "new"
    id: str = "CO-1"
    released: bool = False
    fulfilments: Sequence[tuple[str, FulfilledBy]] = ()
    cancellations: Sequence[C] = ()
    extras: dict[str, Any] = field(default_factory=dict)

    def snapshot(self) -> ChannelSnapshot:
        return ChannelSnapshot(
            channel_order_id=self.id,
            channel_status=self.status,
            lines=tuple(
                LineSnapshot(
                    channel_line_id=line.id,
                    sku=line.sku or f"SKU-{line.id}",
                    title=f"item {line.id}",
                    quantity=line.quantity,
                    parent_channel_line_id=line.parent,
                    channel_fulfilment_id=line.fulfilment,
                    requires_serial_number=line.requires_serial,
                    accepted=line.accepted,
                    rejected=line.rejected,
                    shipped=line.shipped,
                    delivered=line.delivered,
                )
                for line in self.lines
            ),
            fulfilments=tuple(
                FulfilmentSnapshot(channel_fulfilment_id=fid, fulfilled_by=by)
                for fid, by in self.fulfilments
            ),
            released=self.released,
            cancellations=tuple(
                CancellationSnapshot(
                    channel_cancellation_id=c.id,
                    initiator=c.initiator,
                    reason=c.reason,
                    state=c.state,
                    lines=c.lines,
                )
                for c in self.cancellations
            ),
            extras=self.extras,
        )


def receive(caps: Capabilities, doc: Doc | None = None, *, ids: Ids | None = None) -> Order:
    return Order.receive(
        (doc or Doc()).snapshot(),
        order_id="O-1",
        channel="testchannel",
        account="main",
        caps=caps,
        now=NOW,
        new_id=ids or Ids(),
    )


def apply(order: Order, caps: Capabilities, doc: Doc, *, ids: Ids | None = None) -> None:
    order.apply(doc.snapshot(), caps=caps, now=LATER, new_id=ids or Ids("x"))


def line_id(order: Order, channel_line_id: str) -> str:
    return next(line.id for line in order.lines if line.channel_line_id == channel_line_id)


def fulfilment_id(order: Order, channel_fulfilment_id: str) -> str:
    return next(f.id for f in order.fulfilments if f.channel_fulfilment_id == channel_fulfilment_id)


def lq(order: Order, channel_line_id: str, quantity: int, *serials: str) -> LineQuantity:
    return LineQuantity(
        line_id=line_id(order, channel_line_id), quantity=quantity, serial_numbers=serials
    )


def counters(order: Order, channel_line_id: str) -> dict[str, int]:
    line = next(line for line in order.lines if line.channel_line_id == channel_line_id)
    return {
        "accepted": line.accepted,
        "rejected": line.rejected,
        "shipped": line.shipped,
        "delivered": line.delivered,
        "cancelled": line.cancelled,
    }


def own_events(order: Order) -> list[OrderEvent]:
    """The order's events without the ``fulfilment.*`` ones (tested on their own)."""
    return [e for e in order.events if not e.type.value.startswith("fulfilment.")]


def take_events(order: Order, *, fulfilments: bool = False) -> list[str]:
    """The types of the events raised since the last call, which it forgets (as a commit);
    the order's own, and with ``fulfilments`` the ``fulfilment.*`` ones too (they have
    tests of their own)."""
    types = [
        event.type.value
        for event in order.events
        if fulfilments or not event.type.value.startswith("fulfilment.")
    ]
    order.events.clear()
    return types


def fingerprint(order: Order) -> tuple[Any, ...]:
    """Everything a refused command must leave as it was."""
    return (
        order.status,
        order.released,
        order.channel_status,
        tuple(
            (line.accepted, line.rejected, line.shipped, line.delivered, line.cancelled)
            for line in order.lines
        ),
        tuple((u.shipped, u.serial_number) for line in order.lines for u in line.units),
        len(order.shipments),
        tuple((c.id, c.state) for c in order.cancellations),
        tuple((r.id, r.state) for r in order.returns),
        tuple(f.status for f in order.fulfilments),
        len(order.events),
    )


def ship(
    order: Order,
    caps: Capabilities,
    items: Iterable[LineQuantity],
    *,
    shipment_id: str = "S1",
    fulfilment_id: str | None = None,
    final: bool = False,
) -> None:
    order.record_shipment(
        caps,
        shipment_id=shipment_id,
        items=list(items),
        now=LATER,
        fulfilment_id=fulfilment_id,
        carrier="dhl",
        tracking_number=f"T-{shipment_id}",
        final=final,
    )
