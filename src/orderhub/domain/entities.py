"""The parts of the Order aggregate: lines, fulfilments, shipments, cancellations, returns,
the reasons a person must look at an order, and what the channel last said of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from orderhub.domain.values import (
    FulfilledBy,
    FulfilmentStatus,
    Initiator,
    LineQuantity,
    Price,
    Reason,
    RequestState,
)


@dataclass(kw_only=True, slots=True)
class Unit:
    """One physical item of a line (topi asset), with its own channel id."""

    channel_unit_id: str
    serial_number: str | None = None
    shipped: bool = False


@dataclass(kw_only=True, slots=True)
class Line:
    id: str
    channel_line_id: str
    sku: str | None
    title: str
    quantity: int
    unit_price: Price | None = None
    parent_line_id: str | None = None
    fulfilment_id: str | None = None
    requires_serial_number: bool = False
    units: list[Unit] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    accepted: int = 0
    rejected: int = 0
    shipped: int = 0
    delivered: int = 0
    cancelled: int = 0

    @property
    def live(self) -> int:
        """Units neither rejected nor cancelled."""
        return self.quantity - self.rejected - self.cancelled

    @property
    def pending_acceptance(self) -> int:
        return self.quantity - self.accepted - self.rejected - self.cancelled

    @property
    def unshipped(self) -> int:
        return self.live - self.shipped


@dataclass(kw_only=True, slots=True)
class Fulfilment:
    id: str
    channel_fulfilment_id: str | None = None
    fulfilled_by: FulfilledBy = FulfilledBy.SELLER
    status: FulfilmentStatus = FulfilmentStatus.OPEN
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class ShipmentItem:
    line_id: str
    quantity: int
    serial_numbers: tuple[str, ...] = ()


@dataclass(kw_only=True, slots=True)
class Shipment:
    id: str
    fulfilment_id: str | None
    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None
    items: list[ShipmentItem]
    shipped_at: datetime
    channel_shipment_id: str | None = None


@dataclass(kw_only=True, slots=True)
class Cancellation:
    id: str
    initiator: Initiator
    reason: Reason
    state: RequestState
    requested_at: datetime
    lines: list[LineQuantity] = field(default_factory=list)  # empty: the whole order
    channel_reason: str | None = None
    channel_cancellation_id: str | None = None
    decided_at: datetime | None = None
    # the units it cancelled, and how many of them had been accepted (to give back if the
    # channel refuses the cancellation)
    units: list[LineQuantity] = field(default_factory=list)
    from_accepted: list[LineQuantity] = field(default_factory=list)


@dataclass(kw_only=True, slots=True)
class Return:
    id: str
    initiator: Initiator
    reason: Reason
    state: RequestState
    requested_at: datetime
    lines: list[LineQuantity] = field(default_factory=list)
    channel_reason: str | None = None
    channel_return_id: str | None = None


class InvoiceState(StrEnum):
    """Where an invoice is: ``pending`` (its command on its way to the channel), ``sent``
    (the channel took it for processing and decides later: the hub asks until it does),
    ``accepted`` or ``rejected`` (the channel's final word, with its reason)."""

    PENDING = "pending"
    SENT = "sent"
    ACCEPTED = "accepted"
    REJECTED = "rejected"

    @property
    def is_final(self) -> bool:
        return self in (InvoiceState.ACCEPTED, InvoiceState.REJECTED)


@dataclass(kw_only=True, slots=True)
class Invoice:
    """The seller's invoice for the order: a number and a stored document (``document_id``;
    the bytes live in the document store, as long as the order)."""

    id: str
    number: str
    document_id: str
    content_type: str
    size: int
    sha256: str
    state: InvoiceState
    recorded_at: datetime
    filename: str | None = None
    channel_invoice_id: str | None = None  # the channel's id (Octopia: the import id)
    channel_reason: str | None = None  # why the channel rejected it
    sent_at: datetime | None = None
    decided_at: datetime | None = None
    checks: int = 0  # how often the hub asked the channel for its verdict
    next_check_at: datetime | None = None  # when the hub asks next (state sent)
    check_fence: int = 0  # claims of a check ever made; a check records only under its own


class AttentionCode(StrEnum):
    """Why a person must look at an order: the hub and its channel disagree."""

    COMMAND_FAILED = "command_failed"  # the channel refused a decision, or gave up on a call
    CHANNEL_OVERRODE_DECISION = "channel_overrode_decision"  # the channel says otherwise
    CHANNEL_EDITED_LINES = "channel_edited_lines"  # a line added, a quantity changed
    CHANNEL_REPORTS_LESS = "channel_reports_less"  # a fact of ours the channel does not show
    INVOICE_REJECTED = "invoice_rejected"  # the channel refused an invoice (its reason says why)
    INVOICE_UNCONFIRMED = "invoice_unconfirmed"  # no verdict on an invoice after every check
    CANCELLED_AFTER_SHIPMENT = "cancelled_after_shipment"  # the channel cancelled units shipped


@dataclass(kw_only=True, slots=True)
class Attention:
    """One open reason. ``ref`` names what it is about (a command id, a line id)."""

    code: AttentionCode
    detail: str
    raised_at: datetime
    ref: str | None = None


@dataclass(kw_only=True, slots=True)
class ChannelLineView:
    """One line as the channel last reported it (its counters only ever grow)."""

    quantity: int
    accepted: int = 0
    rejected: int = 0
    shipped: int = 0
    delivered: int = 0


@dataclass(kw_only=True, slots=True)
class ChannelCancellationView:
    """A cancellation (or request) as the channel last reported it."""

    channel_cancellation_id: str
    initiator: Initiator
    reason: Reason
    state: RequestState
    channel_reason: str | None = None
    lines: list[tuple[str, int]] = field(default_factory=list)  # (channel line id, quantity)


@dataclass(kw_only=True, slots=True)
class ChannelView:
    """What the channel has said of the order: the highest counters it ever reported per
    line, its cancellations, and the stamp (``updated_at``) and arrival number of the
    newest message."""

    lines: dict[str, ChannelLineView] = field(default_factory=dict)
    released: bool = False
    updated_at: datetime | None = None
    seq: int | None = None
    cancellations: list[ChannelCancellationView] = field(default_factory=list)
