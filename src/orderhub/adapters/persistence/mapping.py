"""Rows <-> domain objects, by msgspec.

The domain never learns it is stored: this module is the only place that knows both
shapes. An order is a row of indexed scalar columns plus a JSON ``document`` holding the
rest of the aggregate; :func:`msgspec.to_builtins` writes it (enums by value, datetimes as
ISO 8601, tuples as lists) and :func:`msgspec.convert` reads it back into the exact domain
types, so a field added to the aggregate is stored without code here. ``DOCUMENT_VERSION``
lets a later migration recognise old documents; version 1 documents (written before the
order kept its channel view and attention list) read the same, the new parts empty.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import msgspec

from orderhub.application.ports import ChannelCommand, FeedEntry, InboxMessage
from orderhub.domain.model import Order

DOCUMENT_VERSION: Final = 2
READABLE_VERSIONS: Final = frozenset({1, 2})

Row = Mapping[Any, Any]  # RowMapping or a plain dict

ORDER_COLUMNS: Final = (
    "id",
    "channel",
    "account",
    "channel_order_id",
    "status",
    "channel_status",
    "order_number",
    "placed_at",
    "ship_by",
    "created_at",
    "updated_at",
    "version",
)
"""Order fields stored as columns; ``last_seq`` is a column the unit of work keeps."""
_NOT_STORED: Final = frozenset({"events", "last_seq"})
_DOCUMENT_FIELDS: Final = tuple(
    f.name
    for f in dataclasses.fields(Order)
    if f.name not in ORDER_COLUMNS and f.name not in _NOT_STORED
)

T = TypeVar("T")


def utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is refused (its meaning would depend on the
    machine), as :class:`~orderhub.adapters.persistence.coltypes.UTCDateTime` does."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()}: give it a timezone (UTC)")
    return value.astimezone(UTC)


def _flat(obj: Any) -> dict[str, Any]:
    """A flat dataclass as column values: enums by value, datetimes and bytes kept."""
    out: dict[str, Any] = msgspec.to_builtins(obj, builtin_types=(datetime, bytes))
    return out


def _from_columns(row: Row, type_: type[T]) -> T:
    # column names come as ``quoted_name`` (a str subclass): msgspec wants plain str keys
    fields = {str(name): value for name, value in row.items()}
    return msgspec.convert(fields, type_)


# --- the order -----------------------------------------------------------------------------


def _builtin(value: Any) -> Any:
    """What msgspec cannot encode by itself: read-only mappings (capability tables)."""
    if isinstance(value, Mapping):
        return dict(value)
    raise NotImplementedError(f"cannot store a {type(value).__name__}")


def order_to_row(order: Order) -> dict[str, Any]:
    """The ``orders`` row of ``order`` (``version`` as the order carries it)."""
    # deterministic: sets (capabilities) as sorted lists and dicts by key, so that equal
    # orders give equal rows (change tracking compares them as bytes)
    document = msgspec.to_builtins(
        {name: getattr(order, name) for name in _DOCUMENT_FIELDS},
        enc_hook=_builtin,
        order="deterministic",
    )
    document["v"] = DOCUMENT_VERSION
    row = {name: getattr(order, name) for name in ORDER_COLUMNS}
    row["status"] = order.status.value
    for name in ("placed_at", "created_at", "updated_at"):
        row[name] = utc(row[name])
    row["ship_by"] = None if order.ship_by is None else utc(order.ship_by)
    row["cancellation_requested"] = order.cancellation_requested
    row["needs_attention"] = order.needs_attention
    row["fulfilled_by"] = order.fulfilled_by.value
    check = order.next_invoice_check
    row["next_invoice_check"] = None if check is None else utc(check)
    row["document"] = document
    return row


def order_from_row(row: Row) -> Order:
    document = dict(row["document"])
    version = document.pop("v", None)
    if version not in READABLE_VERSIONS:
        raise ValueError(
            f"order {row['id']}: document version {version!r}, this code reads "
            f"{sorted(READABLE_VERSIONS)}: run the migrations"
        )
    fields = {name: row[name] for name in ORDER_COLUMNS}
    fields["last_seq"] = row.get("last_seq") or 0
    document = {str(name): value for name, value in document.items()}
    return msgspec.convert({**document, **fields}, Order)


# --- outbox, inbox, feed ---------------------------------------------------------------------


def command_to_row(command: ChannelCommand) -> dict[str, Any]:
    return _flat(command)


def command_from_row(row: Row) -> ChannelCommand:
    return _from_columns(row, ChannelCommand)


def message_to_row(message: InboxMessage) -> dict[str, Any]:
    row = _flat(message)
    if row["seq"] is None:
        del row["seq"]  # drawn by the database on insert
    return row


def message_from_row(row: Row) -> InboxMessage:
    return _from_columns({**row, "body": bytes(row["body"])}, InboxMessage)


def feed_entry_from_row(row: Row) -> FeedEntry:
    return _from_columns(row, FeedEntry)
