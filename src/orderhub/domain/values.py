"""Value objects and the public vocabulary of the canonical model (names are a contract)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class OrderStatus(StrEnum):
    AWAITING_ACCEPTANCE = "awaiting_acceptance"
    ACCEPTED = "accepted"
    READY_TO_SHIP = "ready_to_ship"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    REJECTED = "rejected"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({OrderStatus.REJECTED, OrderStatus.CANCELLED})


class Initiator(StrEnum):
    CUSTOMER = "customer"
    CHANNEL = "channel"
    SELLER = "seller"
    CARRIER = "carrier"


class Reason(StrEnum):
    CUSTOMER_REQUEST = "customer_request"
    SELLER_REFUSAL = "seller_refusal"
    OUT_OF_STOCK = "out_of_stock"
    CUSTOMER_CLAIM = "customer_claim"
    SELLER_REFUND = "seller_refund"
    CUSTOMER_WITHDRAWAL = "customer_withdrawal"
    NOT_COLLECTED_IN_STORE = "not_collected_in_store"
    WRONG_REFERENCE = "wrong_reference"
    DAMAGED = "damaged"
    DUPLICATE_SHIPMENT = "duplicate_shipment"
    MISSING_ITEM = "missing_item"
    DEFECTIVE_ON_ARRIVAL = "defective_on_arrival"
    DELIVERY_IMPOSSIBLE = "delivery_impossible"
    REFUSED_BY_CUSTOMER = "refused_by_customer"
    TRANSPORT_DAMAGE = "transport_damage"
    NOT_COLLECTED_AT_PICKUP_POINT = "not_collected_at_pickup_point"
    RISK_DECLINED = "risk_declined"
    CHANNEL_CANCELLED = "channel_cancelled"
    OTHER = "other"


class FulfilledBy(StrEnum):
    SELLER = "seller"
    CHANNEL = "channel"


class OrderFulfilledBy(StrEnum):
    """Who ships an order's lines: ``seller`` (our warehouse, every line), ``channel``
    (someone else, every line: Octopia's Fulfillment and Xdock), or ``mixed``."""

    SELLER = "seller"
    CHANNEL = "channel"
    MIXED = "mixed"


class FulfilmentStatus(StrEnum):
    OPEN = "open"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class RequestState(StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    REFUSED = "refused"


class Decision(StrEnum):
    ACCEPT = "accept"
    REFUSE = "refuse"


@dataclass(frozen=True, kw_only=True, slots=True)
class Money:
    """An amount in integer minor units (cents) of one currency."""

    amount: int
    currency: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Price:
    """A unit price: ``gross`` is what the customer pays; net and tax rate if the channel says."""

    gross: Money
    net: Money | None = None
    tax_rate: str | None = None  # decimal string, e.g. "0.19": no float rounding in money


@dataclass(frozen=True, kw_only=True, slots=True)
class Address:
    name: str | None = None
    company: str | None = None
    line1: str | None = None
    line2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    region: str | None = None
    country_code: str | None = None
    phone: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Customer:
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    vat_number: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class LineQuantity:
    """``quantity`` units of one line, optionally with the serial numbers of the units shipped."""

    line_id: str
    quantity: int
    serial_numbers: tuple[str, ...] = ()
