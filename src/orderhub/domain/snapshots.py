"""What a channel observes of one order, in canonical terms. Adapters build these; the
aggregate merges them (see :mod:`orderhub.domain.merge`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orderhub.domain.entities import Unit
from orderhub.domain.values import (
    Address,
    Customer,
    FulfilledBy,
    Initiator,
    Price,
    Reason,
    RequestState,
)


@dataclass(frozen=True, kw_only=True, slots=True)
class LineSnapshot:
    """A line as the channel sends it, with the counters the channel has seen so far."""

    channel_line_id: str
    sku: str | None
    title: str
    quantity: int
    unit_price: Price | None = None
    parent_channel_line_id: str | None = None
    channel_fulfilment_id: str | None = None
    requires_serial_number: bool = False
    units: tuple[Unit, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)
    accepted: int = 0
    rejected: int = 0
    shipped: int = 0
    delivered: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class FulfilmentSnapshot:
    channel_fulfilment_id: str
    fulfilled_by: FulfilledBy = FulfilledBy.SELLER
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class CancellationSnapshot:
    """A cancellation the channel reports. ``state`` requested: the seller (or channel) decides."""

    channel_cancellation_id: str
    initiator: Initiator
    reason: Reason
    state: RequestState
    channel_reason: str | None = None
    lines: tuple[tuple[str, int], ...] = ()  # (channel_line_id, quantity); empty: whole order


@dataclass(frozen=True, kw_only=True, slots=True)
class ShipmentSnapshot:
    """A parcel the channel reports: one it shipped itself (a line fulfilled by the
    channel) or the echo of one the seller sent (matched by ``channel_shipment_id`` to the
    id the shipment command's answer gave)."""

    channel_shipment_id: str
    lines: tuple[tuple[str, int], ...]  # (channel_line_id, quantity)
    carrier: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    shipped_at: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelSnapshot:
    """Everything an adapter knows about one order at one moment, in canonical terms.

    ``updated_at``: the channel's own update stamp of the order, when it gives one. Between
    two snapshots that both carry one, the newer stamp wins (whatever their arrival order);
    otherwise the order in which the hub received them decides."""

    channel_order_id: str
    channel_status: str
    lines: tuple[LineSnapshot, ...]
    order_number: str | None = None
    seller_reference: str | None = None
    customer: Customer | None = None
    shipping_address: Address | None = None
    billing_address: Address | None = None
    currency: str | None = None
    placed_at: datetime | None = None
    ship_by: datetime | None = None
    fulfilments: tuple[FulfilmentSnapshot, ...] = ()
    released: bool = False  # the channel allows dispatch
    cancellations: tuple[CancellationSnapshot, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None
    shipments: tuple[ShipmentSnapshot, ...] = ()
