"""Request and response bodies of the HTTP API: msgspec Structs, separate from domain types.

Field names are the contract the warehouse (WMS) codes against. Request bodies refuse
unknown fields: a typo such as ``line`` for ``lines`` must not turn a partial acceptance
into a whole-order one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

import msgspec

from orderhub.application.limits import MAX_LINES_PER_ORDER
from orderhub.domain.entities import AttentionCode
from orderhub.domain.values import Decision, Reason

MAX_QUANTITY: Final = 2**31 - 1  # any count of units a warehouse handles; fits every integer column
Quantity = Annotated[int, msgspec.Meta(ge=1, le=MAX_QUANTITY, description="Units, at least one.")]
MAX_TEXT: Final = 500
MAX_ID: Final = 200
MAX_URL: Final = 2000
MAX_SERIALS_PER_ITEM: Final = 10_000
NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT)]
Id = Annotated[str, msgspec.Meta(max_length=MAX_ID)]
Url = Annotated[str, msgspec.Meta(max_length=MAX_URL)]
Serials = Annotated[list[NonEmpty], msgspec.Meta(max_length=MAX_SERIALS_PER_ITEM)]


class _Response(msgspec.Struct, kw_only=True):
    pass


# --- problems (RFC 9457) -----------------------------------------------------------------


class FieldError(_Response):
    field: str
    message: str
    source: str | None = None


class Problem(_Response, omit_defaults=True):
    """An ``application/problem+json`` document. ``type`` is stable per ``rule``."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    rule: str
    request_id: str | None = None
    errors: list[FieldError] | None = None
    checks: dict[str, bool] | None = None


# --- commands ------------------------------------------------------------------------------


class LineQuantityIn(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    line_id: NonEmpty
    quantity: Quantity


Lines = Annotated[
    list[LineQuantityIn],
    msgspec.Meta(max_length=MAX_LINES_PER_ORDER, description="At most one per line of the order."),
]


class ShipmentItemIn(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    line_id: NonEmpty
    quantity: Quantity
    serial_numbers: Serials = []


class AcceptRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    lines: Lines | None = None


class RejectRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    reason: Reason
    lines: Lines | None = None


class ShipmentRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    carrier: NonEmpty
    tracking_number: NonEmpty
    items: Annotated[
        list[ShipmentItemIn], msgspec.Meta(min_length=1, max_length=MAX_LINES_PER_ORDER)
    ]
    fulfilment_id: Id | None = None
    tracking_url: Url | None = None
    final: bool = False
    """True for a short ship: close the fulfilment, cancelling what did not ship."""


class DeliveryRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    fulfilment_id: Id | None = None


class CloseFulfilmentRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """No fields: the fulfilment is named in the path."""


class CancellationRequest(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Either the seller cancels (``reason``, optional ``lines``) or decides an open
    cancellation request (``decision``, optional ``cancellation_id``, and ``lines`` where
    the channel decides line by line: the lines of the request this decision is for)."""

    reason: Reason | None = None
    lines: Lines | None = None
    decision: Decision | None = None
    cancellation_id: Id | None = None


class CommandReceiptOut(_Response):
    command_id: str
    order_id: str
    kind: str
    state: str
    order_status: str
    details: dict[str, Any] = {}


# --- orders --------------------------------------------------------------------------------


class MoneyOut(_Response):
    amount: int
    currency: str


class PriceOut(_Response):
    gross: MoneyOut
    net: MoneyOut | None = None
    tax_rate: str | None = None


class AddressOut(_Response):
    name: str | None = None
    company: str | None = None
    line1: str | None = None
    line2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    region: str | None = None
    country_code: str | None = None
    phone: str | None = None


class CustomerOut(_Response):
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    vat_number: str | None = None


class UnitOut(_Response):
    channel_unit_id: str
    serial_number: str | None
    shipped: bool


class LineOut(_Response):
    id: str
    channel_line_id: str
    sku: str | None
    title: str
    quantity: int
    accepted: int
    rejected: int
    shipped: int
    delivered: int
    cancelled: int
    unit_price: PriceOut | None
    parent_line_id: str | None
    fulfilment_id: str | None
    requires_serial_number: bool
    units: list[UnitOut]
    extras: dict[str, Any]


class FulfilmentOut(_Response):
    id: str
    channel_fulfilment_id: str | None
    fulfilled_by: str
    status: str


class LineQuantityOut(_Response):
    line_id: str
    quantity: int


class ShipmentItemOut(_Response):
    line_id: str
    quantity: int
    serial_numbers: list[str]


class ShipmentOut(_Response):
    id: str
    fulfilment_id: str | None
    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None
    items: list[ShipmentItemOut]
    shipped_at: datetime
    channel_shipment_id: str | None


class CancellationOut(_Response):
    id: str
    initiator: str
    reason: str
    state: str
    requested_at: datetime
    decided_at: datetime | None
    lines: list[LineQuantityOut]
    """Empty: the whole order."""
    channel_reason: str | None
    channel_cancellation_id: str | None


class ReturnOut(_Response):
    id: str
    initiator: str
    reason: str
    state: str
    requested_at: datetime
    lines: list[LineQuantityOut]
    channel_reason: str | None
    channel_return_id: str | None


class InvoiceOut(_Response):
    """The seller's invoice and the channel's word on it."""

    id: str
    number: str
    state: str
    """pending (on its way), sent (the channel decides later), accepted or rejected."""
    document_id: str
    content_type: str
    size: int
    sha256: str
    filename: str | None
    recorded_at: datetime
    sent_at: datetime | None
    decided_at: datetime | None
    channel_invoice_id: str | None
    """The channel's id for it (Octopia: the import id)."""
    channel_reason: str | None
    """Why the channel rejected it."""
    checks: int
    """How often the hub asked the channel for its verdict."""
    next_check_at: datetime | None


class ChannelCommandOut(_Response):
    id: str
    seq: int
    """The command's place among the order's commands: they reach the channel in this order."""
    kind: str
    state: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    held_by: str | None = None
    """Pending behind this failed command of the order, until an operator retries or
    abandons it."""


class AttentionOut(_Response):
    """Why a person must look at the order: the hub and its channel disagree."""

    code: str
    """command_failed, channel_overrode_decision or channel_edited_lines."""
    detail: str
    raised_at: datetime
    ref: str | None
    """What it is about: a command id, a line id."""


class OrderOut(_Response):
    id: str
    channel: str
    account: str
    channel_order_id: str
    order_number: str | None
    seller_reference: str | None
    status: str
    channel_status: str
    cancellation_requested: bool
    customer: CustomerOut | None
    shipping_address: AddressOut | None
    billing_address: AddressOut | None
    currency: str | None
    placed_at: datetime
    ship_by: datetime | None
    lines: list[LineOut]
    fulfilments: list[FulfilmentOut]
    shipments: list[ShipmentOut]
    cancellations: list[CancellationOut]
    returns: list[ReturnOut]
    extras: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    needs_attention: bool
    attention: list[AttentionOut]
    fulfilled_by: str
    """Who ships the lines: ``seller`` (the warehouse, every line), ``channel`` (the
    marketplace, every line: nothing for the warehouse to do) or ``mixed``."""
    last_seq: int
    """The feed sequence of the order's newest event (the orders list pages by it)."""
    capabilities: dict[str, Any] | None = None
    """What the channel allows for this order (its sales channel's rules), as
    ``GET /channels`` shows an account's; null for an order stored before it was kept."""
    invoices: list[InvoiceOut] = []
    """The seller's invoices, oldest first (``GET .../invoices/{id}/document``: the PDF)."""


class OrderDetailOut(OrderOut):
    """One order with the channel calls that are still pending (held ones included) or
    have failed."""

    pending_commands: list[ChannelCommandOut] = []
    failed_commands: list[ChannelCommandOut] = []


class OrderPage(_Response):
    orders: list[OrderOut]
    next_cursor: str | None
    """Pass as ``cursor`` for the next page; null at the end."""


# --- feed ----------------------------------------------------------------------------------


class FeedEventOut(_Response):
    seq: int
    type: str
    order_id: str | None
    channel: str | None
    occurred_at: datetime
    data: dict[str, Any]


class FeedPage(_Response):
    events: list[FeedEventOut]
    next_cursor: int
    """Pass as ``after`` for the next call."""


# --- channels ------------------------------------------------------------------------------


class AccountOut(_Response):
    name: str
    capabilities: dict[str, Any]


class ChannelOut(_Response):
    name: str
    distribution: str
    version: str
    accounts: list[AccountOut]


class ChannelList(_Response):
    channels: list[ChannelOut]


# --- operations ----------------------------------------------------------------------------


class OpsCommandOut(_Response):
    id: str
    order_id: str
    channel: str
    account: str
    kind: str
    seq: int
    state: str
    held_by: str | None
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    payload: dict[str, Any]
    result: dict[str, Any]


class OpsCommandList(_Response):
    commands: list[OpsCommandOut]


class InboxMessageOut(_Response):
    id: str
    seq: int | None
    channel: str
    account: str
    order_key: str | None
    source: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    received_at: datetime
    processed_at: datetime | None
    dedupe_key: str
    headers: dict[str, str]
    body: str
    """The raw body as text (undecodable bytes replaced)."""


class InboxMessageList(_Response):
    messages: list[InboxMessageOut]


class ResyncOut(_Response):
    """The channel's answer was stored in the inbox; it is applied like any message."""

    message_id: str
    duplicate: bool
    """The channel shows what the hub already stored: nothing new to apply."""


class AttentionResolveRequest(
    msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True
):
    code: AttentionCode | None = None
    """Only this reason (default: every reason not about a failed command)."""


class AttentionResolved(_Response):
    cleared: int


# --- intake and health ---------------------------------------------------------------------


class WebhookAck(_Response):
    message_id: str
    duplicate: bool


class Health(_Response):
    status: str


class Readiness(_Response):
    status: str
    checks: dict[str, bool]
