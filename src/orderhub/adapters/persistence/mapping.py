"""Rows <-> domain objects, written out by hand.

The domain never learns it is stored: these functions are the only place that knows both
shapes. An order is a row of indexed scalar columns plus a JSON ``document`` holding the
rest of the aggregate. Enums are stored by value, datetimes as ISO 8601 in UTC inside the
document (``UTCDateTime`` in columns), tuples as lists; every reader restores the exact
domain type. ``DOCUMENT_VERSION`` lets a later migration recognise old documents.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from orderhub.application.ports import (
    ChannelCommand,
    CommandKind,
    CommandState,
    FeedEntry,
    InboxMessage,
    InboxState,
)
from orderhub.domain.model import (
    Cancellation,
    Fulfilment,
    Line,
    Order,
    Return,
    Shipment,
    ShipmentItem,
    Unit,
)
from orderhub.domain.values import (
    Address,
    Customer,
    FulfilledBy,
    FulfilmentStatus,
    Initiator,
    LineQuantity,
    Money,
    OrderStatus,
    Price,
    Reason,
    RequestState,
)

DOCUMENT_VERSION: Final = 1

Row = Mapping[Any, Any]  # RowMapping or a plain dict
Json = dict[str, Any]


# --- datetimes ---------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: give it a timezone (UTC)")
    return value.astimezone(UTC)


def _dt_out(value: datetime) -> str:
    return _utc(value).isoformat()


def _dt_in(value: str) -> datetime:
    return _utc(datetime.fromisoformat(value))


def _opt_dt_out(value: datetime | None) -> str | None:
    return None if value is None else _dt_out(value)


def _opt_dt_in(value: str | None) -> datetime | None:
    return None if value is None else _dt_in(value)


# --- value objects -----------------------------------------------------------------------


def _money_out(money: Money) -> Json:
    return {"amount": money.amount, "currency": money.currency}


def _money_in(data: Json) -> Money:
    return Money(amount=data["amount"], currency=data["currency"])


def _price_out(price: Price | None) -> Json | None:
    if price is None:
        return None
    return {
        "gross": _money_out(price.gross),
        "net": None if price.net is None else _money_out(price.net),
        "tax_rate": price.tax_rate,
    }


def _price_in(data: Json | None) -> Price | None:
    if data is None:
        return None
    net = data.get("net")
    return Price(
        gross=_money_in(data["gross"]),
        net=None if net is None else _money_in(net),
        tax_rate=data.get("tax_rate"),
    )


_ADDRESS_FIELDS: Final = (
    "name",
    "company",
    "line1",
    "line2",
    "postal_code",
    "city",
    "region",
    "country_code",
    "phone",
)
_CUSTOMER_FIELDS: Final = ("name", "email", "phone", "company", "vat_number")


def _address_out(address: Address | None) -> Json | None:
    if address is None:
        return None
    return {name: getattr(address, name) for name in _ADDRESS_FIELDS}


def _address_in(data: Json | None) -> Address | None:
    if data is None:
        return None
    return Address(**{name: data.get(name) for name in _ADDRESS_FIELDS})


def _customer_out(customer: Customer | None) -> Json | None:
    if customer is None:
        return None
    return {name: getattr(customer, name) for name in _CUSTOMER_FIELDS}


def _customer_in(data: Json | None) -> Customer | None:
    if data is None:
        return None
    return Customer(**{name: data.get(name) for name in _CUSTOMER_FIELDS})


def _quantity_out(item: LineQuantity) -> Json:
    return {
        "line_id": item.line_id,
        "quantity": item.quantity,
        "serial_numbers": list(item.serial_numbers),
    }


def _quantity_in(data: Json) -> LineQuantity:
    return LineQuantity(
        line_id=data["line_id"],
        quantity=data["quantity"],
        serial_numbers=tuple(data.get("serial_numbers", ())),
    )


# --- parts of the aggregate ----------------------------------------------------------------


def _unit_out(unit: Unit) -> Json:
    return {
        "channel_unit_id": unit.channel_unit_id,
        "serial_number": unit.serial_number,
        "shipped": unit.shipped,
    }


def _unit_in(data: Json) -> Unit:
    return Unit(
        channel_unit_id=data["channel_unit_id"],
        serial_number=data.get("serial_number"),
        shipped=data.get("shipped", False),
    )


def _line_out(line: Line) -> Json:
    return {
        "id": line.id,
        "channel_line_id": line.channel_line_id,
        "sku": line.sku,
        "title": line.title,
        "quantity": line.quantity,
        "unit_price": _price_out(line.unit_price),
        "parent_line_id": line.parent_line_id,
        "fulfilment_id": line.fulfilment_id,
        "requires_serial_number": line.requires_serial_number,
        "units": [_unit_out(unit) for unit in line.units],
        "extras": line.extras,
        "accepted": line.accepted,
        "rejected": line.rejected,
        "shipped": line.shipped,
        "delivered": line.delivered,
        "cancelled": line.cancelled,
    }


def _line_in(data: Json) -> Line:
    return Line(
        id=data["id"],
        channel_line_id=data["channel_line_id"],
        sku=data["sku"],
        title=data["title"],
        quantity=data["quantity"],
        unit_price=_price_in(data.get("unit_price")),
        parent_line_id=data.get("parent_line_id"),
        fulfilment_id=data.get("fulfilment_id"),
        requires_serial_number=data.get("requires_serial_number", False),
        units=[_unit_in(unit) for unit in data.get("units", ())],
        extras=dict(data.get("extras", {})),
        accepted=data["accepted"],
        rejected=data["rejected"],
        shipped=data["shipped"],
        delivered=data["delivered"],
        cancelled=data["cancelled"],
    )


def _fulfilment_out(fulfilment: Fulfilment) -> Json:
    return {
        "id": fulfilment.id,
        "channel_fulfilment_id": fulfilment.channel_fulfilment_id,
        "fulfilled_by": fulfilment.fulfilled_by.value,
        "status": fulfilment.status.value,
        "extras": fulfilment.extras,
    }


def _fulfilment_in(data: Json) -> Fulfilment:
    return Fulfilment(
        id=data["id"],
        channel_fulfilment_id=data.get("channel_fulfilment_id"),
        fulfilled_by=FulfilledBy(data["fulfilled_by"]),
        status=FulfilmentStatus(data["status"]),
        extras=dict(data.get("extras", {})),
    )


def _shipment_out(shipment: Shipment) -> Json:
    return {
        "id": shipment.id,
        "fulfilment_id": shipment.fulfilment_id,
        "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number,
        "tracking_url": shipment.tracking_url,
        "items": [
            {
                "line_id": item.line_id,
                "quantity": item.quantity,
                "serial_numbers": list(item.serial_numbers),
            }
            for item in shipment.items
        ],
        "shipped_at": _dt_out(shipment.shipped_at),
        "channel_shipment_id": shipment.channel_shipment_id,
    }


def _shipment_in(data: Json) -> Shipment:
    return Shipment(
        id=data["id"],
        fulfilment_id=data.get("fulfilment_id"),
        carrier=data.get("carrier"),
        tracking_number=data.get("tracking_number"),
        tracking_url=data.get("tracking_url"),
        items=[
            ShipmentItem(
                line_id=item["line_id"],
                quantity=item["quantity"],
                serial_numbers=tuple(item.get("serial_numbers", ())),
            )
            for item in data["items"]
        ],
        shipped_at=_dt_in(data["shipped_at"]),
        channel_shipment_id=data.get("channel_shipment_id"),
    )


def _cancellation_out(cancellation: Cancellation) -> Json:
    return {
        "id": cancellation.id,
        "initiator": cancellation.initiator.value,
        "reason": cancellation.reason.value,
        "state": cancellation.state.value,
        "requested_at": _dt_out(cancellation.requested_at),
        "lines": [_quantity_out(item) for item in cancellation.lines],
        "channel_reason": cancellation.channel_reason,
        "channel_cancellation_id": cancellation.channel_cancellation_id,
        "decided_at": _opt_dt_out(cancellation.decided_at),
    }


def _cancellation_in(data: Json) -> Cancellation:
    return Cancellation(
        id=data["id"],
        initiator=Initiator(data["initiator"]),
        reason=Reason(data["reason"]),
        state=RequestState(data["state"]),
        requested_at=_dt_in(data["requested_at"]),
        lines=[_quantity_in(item) for item in data.get("lines", ())],
        channel_reason=data.get("channel_reason"),
        channel_cancellation_id=data.get("channel_cancellation_id"),
        decided_at=_opt_dt_in(data.get("decided_at")),
    )


def _return_out(ret: Return) -> Json:
    return {
        "id": ret.id,
        "initiator": ret.initiator.value,
        "reason": ret.reason.value,
        "state": ret.state.value,
        "requested_at": _dt_out(ret.requested_at),
        "lines": [_quantity_out(item) for item in ret.lines],
        "channel_reason": ret.channel_reason,
        "channel_return_id": ret.channel_return_id,
    }


def _return_in(data: Json) -> Return:
    return Return(
        id=data["id"],
        initiator=Initiator(data["initiator"]),
        reason=Reason(data["reason"]),
        state=RequestState(data["state"]),
        requested_at=_dt_in(data["requested_at"]),
        lines=[_quantity_in(item) for item in data.get("lines", ())],
        channel_reason=data.get("channel_reason"),
        channel_return_id=data.get("channel_return_id"),
    )


# --- the order -----------------------------------------------------------------------------


def order_to_row(order: Order) -> dict[str, Any]:
    """The ``orders`` row of ``order`` (``version`` as the order carries it)."""
    return {
        "id": order.id,
        "channel": order.channel,
        "account": order.account,
        "channel_order_id": order.channel_order_id,
        "status": order.status.value,
        "channel_status": order.channel_status,
        "cancellation_requested": order.cancellation_requested,
        "order_number": order.order_number,
        "placed_at": _utc(order.placed_at),
        "ship_by": None if order.ship_by is None else _utc(order.ship_by),
        "created_at": _utc(order.created_at),
        "updated_at": _utc(order.updated_at),
        "version": order.version,
        "document": {
            "v": DOCUMENT_VERSION,
            "seller_reference": order.seller_reference,
            "acceptance_required": order.acceptance_required,
            "released": order.released,
            "currency": order.currency,
            "customer": _customer_out(order.customer),
            "shipping_address": _address_out(order.shipping_address),
            "billing_address": _address_out(order.billing_address),
            "lines": [_line_out(line) for line in order.lines],
            "fulfilments": [_fulfilment_out(f) for f in order.fulfilments],
            "shipments": [_shipment_out(s) for s in order.shipments],
            "cancellations": [_cancellation_out(c) for c in order.cancellations],
            "returns": [_return_out(r) for r in order.returns],
            "extras": order.extras,
        },
    }


def order_from_row(row: Row) -> Order:
    document: Json = row["document"]
    if document.get("v") != DOCUMENT_VERSION:
        raise ValueError(
            f"order {row['id']}: document version {document.get('v')!r}, "
            f"this code reads {DOCUMENT_VERSION}: run the migrations"
        )
    return Order(
        id=row["id"],
        channel=row["channel"],
        account=row["account"],
        channel_order_id=row["channel_order_id"],
        channel_status=row["channel_status"],
        acceptance_required=document["acceptance_required"],
        released=document["released"],
        status=OrderStatus(row["status"]),
        lines=[_line_in(line) for line in document["lines"]],
        placed_at=row["placed_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        order_number=row["order_number"],
        seller_reference=document.get("seller_reference"),
        customer=_customer_in(document.get("customer")),
        shipping_address=_address_in(document.get("shipping_address")),
        billing_address=_address_in(document.get("billing_address")),
        currency=document.get("currency"),
        ship_by=row["ship_by"],
        fulfilments=[_fulfilment_in(f) for f in document.get("fulfilments", ())],
        shipments=[_shipment_in(s) for s in document.get("shipments", ())],
        cancellations=[_cancellation_in(c) for c in document.get("cancellations", ())],
        returns=[_return_in(r) for r in document.get("returns", ())],
        extras=dict(document.get("extras", {})),
        version=row["version"],
    )


# --- outbox, inbox, feed ---------------------------------------------------------------------


def command_to_row(command: ChannelCommand) -> dict[str, Any]:
    return {
        "id": command.id,
        "order_id": command.order_id,
        "channel": command.channel,
        "account": command.account,
        "kind": command.kind.value,
        "payload": command.payload,
        "created_at": command.created_at,
        "state": command.state.value,
        "attempts": command.attempts,
        "next_attempt_at": command.next_attempt_at,
        "last_error": command.last_error,
        "lease_until": command.lease_until,
        "finished_at": command.finished_at,
        "result": command.result,
    }


def command_from_row(row: Row) -> ChannelCommand:
    return ChannelCommand(
        id=row["id"],
        order_id=row["order_id"],
        channel=row["channel"],
        account=row["account"],
        kind=CommandKind(row["kind"]),
        payload=dict(row["payload"]),
        created_at=row["created_at"],
        state=CommandState(row["state"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        lease_until=row["lease_until"],
        finished_at=row["finished_at"],
        result=dict(row["result"]),
    )


def message_to_row(message: InboxMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "channel": message.channel,
        "account": message.account,
        "dedupe_key": message.dedupe_key,
        "body": message.body,
        "headers": dict(message.headers),
        "received_at": message.received_at,
        "source": message.source,
        "state": message.state.value,
        "attempts": message.attempts,
        "last_error": message.last_error,
        "processed_at": message.processed_at,
    }


def message_from_row(row: Row) -> InboxMessage:
    return InboxMessage(
        id=row["id"],
        channel=row["channel"],
        account=row["account"],
        dedupe_key=row["dedupe_key"],
        body=bytes(row["body"]),
        headers=dict(row["headers"]),
        received_at=row["received_at"],
        source=row["source"],
        state=InboxState(row["state"]),
        attempts=row["attempts"],
        last_error=row["last_error"],
        processed_at=row["processed_at"],
    )


def feed_entry_from_row(row: Row) -> FeedEntry:
    return FeedEntry(
        seq=row["seq"],
        type=row["type"],
        order_id=row["order_id"],
        channel=row["channel"],
        occurred_at=row["occurred_at"],
        data=dict(row["data"]),
    )
