"""The test channel's order documents (what it sends) and their canonical snapshots."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Final

import msgspec

from orderhub.domain.model import (
    CancellationSnapshot,
    ChannelSnapshot,
    FulfilmentSnapshot,
    LineSnapshot,
)
from orderhub.domain.snapshots import ShipmentSnapshot
from orderhub.domain.values import (
    Address,
    Customer,
    FulfilledBy,
    Initiator,
    Money,
    Price,
    Reason,
    RequestState,
)
from orderhub.testing.channel.profiles import OCTOPIA_REASON_CODES, OCTOPIA_SUPPLY_MODES

# --- intake -------------------------------------------------------------------------------


class InvalidTestOrder(ValueError):
    """A test channel message that cannot be read as an order document."""


NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Positive = Annotated[int, msgspec.Meta(gt=0)]


class _Parcel(msgspec.Struct, kw_only=True):
    """A parcel the channel reports on a line (Octopia ``lines[].parcels[]``: the parcel
    number is the tracking number). ``quantity``: the line's units in it (default all)."""

    number: str
    carrier: str | None = None
    tracking_url: str | None = None
    quantity: Positive | None = None


class _Line(msgspec.Struct, kw_only=True):
    id: str
    title: str
    quantity: Positive
    sku: str | None = None
    price: NonNegative | None = None
    requires_serial: bool = False
    parent: str | None = None
    fulfilment: str | None = None
    supply_mode: str | None = None  # Octopia: Seller, Fulfillment, Xdock
    parcels: list[_Parcel] = msgspec.field(default_factory=list)


class _Fulfilment(msgspec.Struct, kw_only=True):
    id: str
    fulfilled_by: FulfilledBy = FulfilledBy.SELLER


class _Counters(msgspec.Struct, kw_only=True):
    accepted: NonNegative = 0
    rejected: NonNegative = 0
    shipped: NonNegative = 0
    delivered: NonNegative = 0


class _CancelledLine(msgspec.Struct, kw_only=True):
    line: str
    quantity: Positive


class _Cancellation(msgspec.Struct, kw_only=True):
    id: str
    initiator: Initiator
    reason: str
    state: RequestState = RequestState.REQUESTED
    lines: list[_CancelledLine] = msgspec.field(default_factory=list)


class _Customer(msgspec.Struct, kw_only=True):
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    company: str | None = None


class _Address(msgspec.Struct, kw_only=True):
    name: str | None = None
    company: str | None = None
    line1: str | None = None
    line2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    region: str | None = None
    country_code: str | None = None
    phone: str | None = None


class TestOrderDocument(msgspec.Struct, kw_only=True):
    """The intake document (see the module docstring)."""

    __test__ = False  # not a pytest class

    id: str
    status: str
    lines: list[_Line]
    fulfilments: list[_Fulfilment] = msgspec.field(default_factory=list)
    counters: dict[str, _Counters] = msgspec.field(default_factory=dict)
    released: bool = False
    cancellations: list[_Cancellation] = msgspec.field(default_factory=list)
    number: str | None = None
    seller_reference: str | None = None
    currency: str = "EUR"
    placed_at: datetime | None = None
    ship_by: datetime | None = None
    customer: _Customer | None = None
    shipping_address: _Address | None = None
    updated_at: datetime | None = None
    """The channel's update stamp, if it gives one: the newer stamp wins."""
    sales_channel: str | None = None
    """Octopia: the sales channel the order was placed on (``CDISFR``...)."""


_decoder: Final = msgspec.json.Decoder(TestOrderDocument | list[TestOrderDocument])


def decode_orders(body: bytes) -> list[TestOrderDocument]:
    try:
        decoded = _decoder.decode(body)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise InvalidTestOrder(f"not a test channel order document: {exc}") from exc
    return decoded if isinstance(decoded, list) else [decoded]


def to_snapshot(doc: TestOrderDocument) -> ChannelSnapshot:
    line_ids = {line.id for line in doc.lines}
    if len(line_ids) != len(doc.lines):
        raise InvalidTestOrder(f"order {doc.id}: line ids repeat")
    for line_id in doc.counters:
        if line_id not in line_ids:
            raise InvalidTestOrder(f"order {doc.id}: counters for unknown line {line_id!r}")
    for cancellation in doc.cancellations:
        for item in cancellation.lines:
            if item.line not in line_ids:
                raise InvalidTestOrder(
                    f"order {doc.id}: cancellation {cancellation.id} names unknown line "
                    f"{item.line!r}"
                )
    lines = tuple(_line_snapshot(doc, line) for line in doc.lines)
    fulfilments = _fulfilments(doc)
    if any(line.supply_mode for line in doc.lines):
        lines = tuple(_by_supply_mode(line, ls) for line, ls in zip(doc.lines, lines, strict=True))
    return ChannelSnapshot(
        channel_order_id=doc.id,
        channel_status=doc.status,
        lines=lines,
        order_number=doc.number,
        seller_reference=doc.seller_reference,
        customer=Customer(**msgspec.structs.asdict(doc.customer)) if doc.customer else None,
        shipping_address=(
            Address(**msgspec.structs.asdict(doc.shipping_address))
            if doc.shipping_address
            else None
        ),
        currency=doc.currency,
        placed_at=doc.placed_at,
        ship_by=doc.ship_by,
        updated_at=doc.updated_at,
        fulfilments=fulfilments,
        released=doc.released,
        cancellations=tuple(_cancellation_snapshot(doc, c) for c in doc.cancellations),
        shipments=_shipments(doc),
        extras={"sales_channel": doc.sales_channel} if doc.sales_channel else {},
    )


def _fulfilments(doc: TestOrderDocument) -> tuple[FulfilmentSnapshot, ...]:
    """The document's fulfilments, or (Octopia) one per supply mode of its lines: the
    seller's first, so that it stays the order's default."""
    modes = [line.supply_mode for line in doc.lines if line.supply_mode]
    if not modes:
        return tuple(
            FulfilmentSnapshot(channel_fulfilment_id=f.id, fulfilled_by=f.fulfilled_by)
            for f in doc.fulfilments
        )
    if doc.fulfilments or any(line.fulfilment for line in doc.lines):
        raise InvalidTestOrder(f"order {doc.id}: give supply modes or fulfilments, not both")
    if len(modes) != len(doc.lines):
        raise InvalidTestOrder(f"order {doc.id}: a supply mode for every line, or for none")
    unknown = sorted(set(modes) - set(OCTOPIA_SUPPLY_MODES))
    if unknown:
        known = ", ".join(OCTOPIA_SUPPLY_MODES)
        raise InvalidTestOrder(f"order {doc.id}: unknown supply mode {unknown[0]!r} ({known})")
    ordered = sorted(set(modes), key=list(OCTOPIA_SUPPLY_MODES).index)
    return tuple(
        FulfilmentSnapshot(
            channel_fulfilment_id=mode,
            fulfilled_by=OCTOPIA_SUPPLY_MODES[mode],
            extras={"supply_mode": mode},
        )
        for mode in ordered
    )


def _by_supply_mode(line: _Line, ls: LineSnapshot) -> LineSnapshot:
    return dataclasses.replace(
        ls,
        channel_fulfilment_id=line.supply_mode,
        extras={**ls.extras, "supply_mode": line.supply_mode},
    )


def _shipments(doc: TestOrderDocument) -> tuple[ShipmentSnapshot, ...]:
    """The parcels the channel reports, one per parcel number (a parcel may carry several
    lines): the channel's own for lines it ships, or its echo of the seller's."""
    parcels: dict[str, list[tuple[_Parcel, _Line]]] = {}
    for line in doc.lines:
        for parcel in line.parcels:
            parcels.setdefault(parcel.number, []).append((parcel, line))
    shipments = []
    for number, entries in parcels.items():
        first = entries[0][0]
        shipments.append(
            ShipmentSnapshot(
                channel_shipment_id=number,
                lines=tuple(
                    (line.id, parcel.quantity or line.quantity) for parcel, line in entries
                ),
                carrier=first.carrier,
                tracking_number=number,
                tracking_url=first.tracking_url,
            )
        )
    return tuple(shipments)


def _line_snapshot(doc: TestOrderDocument, line: _Line) -> LineSnapshot:
    counters = doc.counters.get(line.id, _Counters())
    price = (
        Price(gross=Money(amount=line.price, currency=doc.currency))
        if line.price is not None
        else None
    )
    return LineSnapshot(
        channel_line_id=line.id,
        sku=line.sku,
        title=line.title,
        quantity=line.quantity,
        unit_price=price,
        parent_channel_line_id=line.parent,
        channel_fulfilment_id=line.fulfilment,
        requires_serial_number=line.requires_serial,
        accepted=counters.accepted,
        rejected=counters.rejected,
        shipped=counters.shipped,
        delivered=counters.delivered,
    )


def _cancellation_snapshot(
    doc: TestOrderDocument, cancellation: _Cancellation
) -> CancellationSnapshot:
    return CancellationSnapshot(
        channel_cancellation_id=cancellation.id,
        initiator=cancellation.initiator,
        reason=_reason(doc, cancellation.reason),
        state=cancellation.state,
        channel_reason=cancellation.reason,
        lines=tuple((item.line, item.quantity) for item in cancellation.lines),
    )


def _reason(doc: TestOrderDocument, value: str) -> Reason:
    try:
        return Reason(value)
    except ValueError:
        pass
    if value in OCTOPIA_REASON_CODES:
        return OCTOPIA_REASON_CODES[value][0]
    raise InvalidTestOrder(f"order {doc.id}: unknown cancellation reason {value!r}")


def encode_order(doc: TestOrderDocument | Mapping[str, Any]) -> bytes:
    """The wire form of an order document (tests build them as dicts or structs)."""
    return msgspec.json.encode(doc)
