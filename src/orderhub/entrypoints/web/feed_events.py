"""What each feed event's ``data`` holds: one catalogue for the OpenAPI document (a schema
per event type, ``FeedEventData.<type>``) and the reference table of docs/feed.md (a test
keeps both in step with :class:`~orderhub.domain.events.EventType`).

Every event also carries ``seq``, ``type``, ``order_id``, ``channel`` and
``occurred_at`` outside ``data``. Fields a given event may lack are marked optional."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from litestar import Litestar
from litestar.openapi.spec import OpenAPIType, Reference, Schema

__all__ = ["EVENT_DATA", "EventData", "Field", "document_event_data", "event_data_schemas"]


@dataclass(frozen=True, slots=True)
class Field:
    kind: str  # a JSON Schema type, or "lines" / "items" / "fulfilment_lines"
    description: str
    optional: bool = False
    nullable: bool = False


@dataclass(frozen=True, slots=True)
class EventData:
    when: str
    fields: dict[str, Field]


_LINES: Final = Field("lines", "the lines concerned: `[{line_id, quantity}]`")
_PREVIOUS: Final = Field(
    "string", "the order's canonical status before", optional=True, nullable=True
)
_STATUS_REACHED: Final = "the order reached this status"
_FULFILMENT_LINES: Final = Field(
    "fulfilment_lines",
    "the fulfilment's lines as they stand: "
    "`[{line_id, channel_line_id, quantity, shipped, delivered, cancelled}]`",
)
_FULFILMENT: Final = {
    "fulfilment_id": Field("string", "the hub's fulfilment id"),
    "channel_fulfilment_id": Field("string", "the channel's id for it"),
    "fulfilled_by": Field("string", "who ships it: `seller` or `channel`"),
    "previous_status": Field("string", "the fulfilment's status before"),
    "lines": _FULFILMENT_LINES,
}
_INVOICE: Final = {
    "invoice_id": Field("string", "the hub's invoice id"),
    "number": Field("string", "the seller's invoice number"),
    "document_id": Field("string", "the stored PDF (`GET .../invoices/{id}/document`)"),
    "content_type": Field("string", "the document's media type"),
    "size": Field("integer", "the document's size in bytes"),
    "sha256": Field("string", "the document's SHA-256, hex"),
    "state": Field("string", "`pending`, `sent`, `accepted` or `rejected`"),
    "channel_invoice_id": Field("string", "the channel's id for it", nullable=True),
    "channel_reason": Field("string", "why the channel rejected it", nullable=True),
}
_COMMAND: Final = {
    "command_id": Field("string", "the channel command"),
    "kind": Field("string", "`accept`, `reject`, `ship`, `cancel`, `invoice`, ..."),
    "state": Field("string", "`succeeded` or `failed`"),
    "attempts": Field("integer", "calls made to the channel"),
    "error": Field("string", "the channel's last error", nullable=True),
    "result": Field("object", "what the adapter reported (channel ids...)", nullable=True),
}
_CANCELLATION: Final = {
    "reason": Field("string", "the cancellation reason (`out_of_stock`, `customer_request`...)"),
    "initiator": Field("string", "who asked: `seller`, `customer`, `channel`"),
    "lines": _LINES,
}

EVENT_DATA: Final[dict[str, EventData]] = {
    "order.received": EventData(
        "a channel's order is stored for the first time",
        {
            "channel_order_id": Field("string", "the order's id at its channel"),
            "status": Field("string", "its canonical status on arrival"),
        },
    ),
    "order.accepted": EventData("the seller accepted lines", {"lines": _LINES}),
    "order.ready_to_ship": EventData(
        "the warehouse may ship it (never for orders the channel ships)",
        {"previous_status": _PREVIOUS},
    ),
    "order.rejected": EventData(
        "every line is rejected: by the seller (`reason`, `lines`) or the channel "
        "(`previous_status`)",
        {
            "reason": Field("string", "the seller's reason", optional=True),
            "lines": Field("lines", "the lines rejected", optional=True),
            "previous_status": Field("string", "the status before", optional=True),
        },
    ),
    "order.lines_rejected": EventData(
        "the seller rejected some lines; the rest goes on",
        {"reason": Field("string", "the seller's reason"), "lines": _LINES},
    ),
    "order.shipment_recorded": EventData(
        "a shipment (parcel) is recorded, by the warehouse or reported by the channel",
        {
            "shipment_id": Field("string", "the hub's shipment id"),
            "fulfilment_id": Field("string", "the fulfilment it ships", nullable=True),
            "carrier": Field("string", "the carrier code"),
            "tracking_number": Field("string", "the tracking number", nullable=True),
            "tracking_url": Field("string", "the tracking page", nullable=True),
            "items": Field("items", "`[{line_id, quantity, serial_numbers}]`"),
            "source": Field("string", "`channel` when the channel reported it", optional=True),
        },
    ),
    "order.shipped": EventData(_STATUS_REACHED, {"previous_status": _PREVIOUS}),
    "order.delivered": EventData(
        _STATUS_REACHED + "; with a delivery record, its fulfilment and lines",
        {
            "previous_status": _PREVIOUS,
            "fulfilment_id": Field("string", "the fulfilment delivered", optional=True),
            "lines": Field("lines", "the units delivered", optional=True),
        },
    ),
    "order.cancellation_requested": EventData(
        "someone asks to cancel lines; the seller decides",
        {"cancellation_id": Field("string", "the request, to accept or refuse"), **_CANCELLATION},
    ),
    "order.cancellation_refused": EventData(
        "a cancellation request was refused",
        {"cancellation_id": Field("string", "the request")},
    ),
    "order.cancelled": EventData(
        "every line is cancelled: with `reason`, `initiator`, `lines`, or only "
        "`previous_status` when the channel's status said so",
        {
            **{
                name: Field(f.kind, f.description, optional=True)
                for name, f in _CANCELLATION.items()
            },
            "previous_status": Field("string", "the status before", optional=True),
        },
    ),
    "order.lines_cancelled": EventData("some lines are cancelled", dict(_CANCELLATION)),
    "order.return_requested": EventData(
        "a return (or a refund) is opened",
        {
            "return_id": Field("string", "the hub's return id"),
            "initiator": Field("string", "who opened it"),
            "reason": Field("string", "why"),
            "state": Field("string", "the return's state"),
            "lines": _LINES,
        },
    ),
    "order.updated": EventData(
        "something the warehouse may want to re-read changed (the channel's status, a part "
        "delivered, a cancellation request with nothing left to cancel)",
        {
            "channel_status": Field("string", "the channel's own status", nullable=True),
            "fulfilment_id": Field("string", "a fulfilment delivered", optional=True),
            "lines": Field("lines", "the units delivered", optional=True),
            "cancellation_id": Field("string", "the request concerned", optional=True),
            "cancellation_state": Field("string", "its state", optional=True),
        },
    ),
    "order.attention_required": EventData(
        "a person must look at the order",
        {
            "code": Field(
                "string", "the reason's code (`channel_conflict`, `invoice_rejected`...)"
            ),
            "detail": Field("string", "what happened, for a person"),
            "ref": Field("string", "what it is about (a command, an invoice)", nullable=True),
            "status": Field("string", "the order's canonical status"),
        },
    ),
    "order.attention_cleared": EventData(
        "a reason was resolved",
        {
            "code": Field("string", "the reason's code"),
            "ref": Field("string", "what it was about", nullable=True),
            "status": Field("string", "the order's canonical status"),
        },
    ),
    "fulfilment.shipped": EventData("a fulfilment the channel names is shipped", _FULFILMENT),
    "fulfilment.delivered": EventData("a fulfilment the channel names is delivered", _FULFILMENT),
    "fulfilment.cancelled": EventData("a fulfilment the channel names is cancelled", _FULFILMENT),
    "invoice.recorded": EventData("an invoice and its document are stored", _INVOICE),
    "invoice.accepted": EventData("the channel accepted an invoice", _INVOICE),
    "invoice.rejected": EventData("the channel rejected an invoice", _INVOICE),
    "command.succeeded": EventData("a channel command went through", _COMMAND),
    "command.failed": EventData("a channel command failed for good", _COMMAND),
    "operator.action": EventData(
        "a person acted from the console or the ops API",
        {
            "action": Field(
                "string",
                "`command_retried`, `command_abandoned`, `message_retried`, "
                "`attention_resolved`, ...",
            ),
            "by": Field("string", "who: the API key's name"),
            "command_id": Field("string", "the command acted on", optional=True),
            "message_id": Field("string", "the inbox message acted on", optional=True),
            "channel": Field("string", "the message's channel", optional=True),
            "account": Field("string", "the message's account", optional=True),
        },
    ),
}

_QUANTITY: Final = Schema(type=OpenAPIType.INTEGER, minimum=0)
_STRING: Final = Schema(type=OpenAPIType.STRING)
_SHAPES: Final = ("lines", "items", "fulfilment_lines")


def _item_schema(kind: str) -> Schema:
    properties: dict[str, Schema | Reference] = {"line_id": _STRING, "quantity": _QUANTITY}
    if kind == "items":
        properties["serial_numbers"] = Schema(type=OpenAPIType.ARRAY, items=_STRING)
    if kind == "fulfilment_lines":
        properties["channel_line_id"] = _STRING
        properties.update(shipped=_QUANTITY, delivered=_QUANTITY, cancelled=_QUANTITY)
    return Schema(type=OpenAPIType.OBJECT, properties=properties, required=sorted(properties))


def _field_schema(field: Field) -> Schema:
    if field.kind in _SHAPES:
        return Schema(
            type=OpenAPIType.ARRAY, items=_item_schema(field.kind), description=field.description
        )
    kind = OpenAPIType(field.kind)
    return Schema(
        type=[kind, OpenAPIType.NULL] if field.nullable else kind, description=field.description
    )


def event_data_schemas() -> dict[str, Schema]:
    """``FeedEventData.<type>``: the ``data`` of each event type, as OpenAPI components."""
    schemas: dict[str, Schema] = {}
    for type_, doc in EVENT_DATA.items():
        properties: dict[str, Schema | Reference] = {
            name: _field_schema(field) for name, field in doc.fields.items()
        }
        schemas[f"FeedEventData.{type_}"] = Schema(
            type=OpenAPIType.OBJECT,
            title=type_,
            description=f"`data` of `{type_}`: {doc.when}.",
            properties=properties,
            required=[name for name, field in doc.fields.items() if not field.optional],
        )
    return schemas


def document_event_data(app: Litestar) -> Litestar:
    """Add :func:`event_data_schemas` to the app's OpenAPI document (Litestar generates
    the components of its routes' types and replaces any given in its configuration)."""
    components = app.openapi_schema.components
    components.schemas = {**(components.schemas or {}), **event_data_schemas()}
    return app
