"""Domain events: what happened to an order, in the feed's public vocabulary."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    ORDER_RECEIVED = "order.received"
    ORDER_ACCEPTED = "order.accepted"
    ORDER_READY_TO_SHIP = "order.ready_to_ship"
    ORDER_REJECTED = "order.rejected"
    ORDER_LINES_REJECTED = "order.lines_rejected"
    ORDER_SHIPMENT_RECORDED = "order.shipment_recorded"
    ORDER_SHIPPED = "order.shipped"
    ORDER_DELIVERED = "order.delivered"
    ORDER_CANCELLATION_REQUESTED = "order.cancellation_requested"
    ORDER_CANCELLATION_REFUSED = "order.cancellation_refused"
    ORDER_CANCELLED = "order.cancelled"
    ORDER_LINES_CANCELLED = "order.lines_cancelled"
    ORDER_RETURN_REQUESTED = "order.return_requested"
    ORDER_UPDATED = "order.updated"
    ORDER_ATTENTION_REQUIRED = "order.attention_required"
    ORDER_ATTENTION_CLEARED = "order.attention_cleared"
    FULFILMENT_SHIPPED = "fulfilment.shipped"
    FULFILMENT_DELIVERED = "fulfilment.delivered"
    FULFILMENT_CANCELLED = "fulfilment.cancelled"
    INVOICE_RECORDED = "invoice.recorded"
    INVOICE_ACCEPTED = "invoice.accepted"
    INVOICE_REJECTED = "invoice.rejected"
    COMMAND_SUCCEEDED = "command.succeeded"
    COMMAND_FAILED = "command.failed"
    OPERATOR_ACTION = "operator.action"  # a person retried, abandoned or resynced something


@dataclass(frozen=True, kw_only=True, slots=True)
class OrderEvent:
    """One fact about one order. ``data`` holds JSON-ready values only."""

    type: EventType
    data: dict[str, Any] = field(default_factory=dict)
