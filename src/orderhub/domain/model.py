"""The canonical model in one import: the Order aggregate, its parts and the snapshots
channels send. The code lives in the modules named below; this one only gathers it."""

from __future__ import annotations

from orderhub.domain.entities import (
    Attention,
    AttentionCode,
    Cancellation,
    ChannelLineView,
    ChannelView,
    Fulfilment,
    Invoice,
    InvoiceState,
    Line,
    Return,
    Shipment,
    ShipmentItem,
    Unit,
)
from orderhub.domain.order import Order, check_unambiguous
from orderhub.domain.snapshots import (
    CancellationSnapshot,
    ChannelSnapshot,
    FulfilmentSnapshot,
    LineSnapshot,
)
from orderhub.domain.status import STATUS_EVENT, derive_status

__all__ = [
    "STATUS_EVENT",
    "Attention",
    "AttentionCode",
    "Cancellation",
    "CancellationSnapshot",
    "ChannelLineView",
    "ChannelSnapshot",
    "ChannelView",
    "Fulfilment",
    "FulfilmentSnapshot",
    "Invoice",
    "InvoiceState",
    "Line",
    "LineSnapshot",
    "Order",
    "Return",
    "Shipment",
    "ShipmentItem",
    "Unit",
    "check_unambiguous",
    "derive_status",
]
