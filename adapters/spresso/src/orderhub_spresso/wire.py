"""Spresso's wire format: the one module that knows what Spresso sends and expects.

Sources and their confidence are in ``docs/channels/spresso.md``: Spresso's Order
Fulfillment overview (seed 004), the public Data Model, Update Fulfillment, Create/Update
Shipment and Webhook Verification pages, and, where those are silent, the sibling Price
Optimization SDKs (token endpoint) and Shopify's equivalents. Everything the sources
leave open is a constant here or a setting of the account, never spread through the code.

Every struct is keyword-only and tolerant of unknown fields (Spresso's payload reference
is not public: what we do not read must not break decoding); only what the hub relies on
is required.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Final

import msgspec

# --- endpoints [doc]: relative paths; the base URL is the account's ----------------------

FULFILLMENT_PATH: Final = "/v1/fulfillments/{fulfillment_id}"
SHIPMENTS_PATH: Final = "/v1/fulfillments/{fulfillment_id}/shipments"
#: [sibling] the Price Optimization SDKs' token endpoint, relative to the base URL.
TOKEN_PATH: Final = "/identity/v1/public/token"
#: [sibling] the audience those SDKs ask for.
DEFAULT_AUDIENCE: Final = "https://spresso-api"
#: [inferred] webhook registration: shape unknown (see registration.py, swappable).
WEBHOOKS_PATH: Final = "/v1/webhooks"
WEBHOOK_PATH: Final = "/v1/webhooks/{webhook_id}"

# --- headers ------------------------------------------------------------------------------

SIGNATURE_HEADER: Final = "X-Spresso-Hmac-SHA256"  # [doc] base64 HMAC-SHA256, client secret
SIGNATURE_SCHEME: Final = "spresso-hmac"  # the metric label of the check
#: [inferred] Spresso documents no idempotency header; sent anyway (harmless if ignored),
#: the command id: the simulator replays an answer for a key it has seen.
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"

# --- events [doc] ---------------------------------------------------------------------------

ORDER_FULFILLABLE: Final = "order_fulfillable"
ORDER_CANCELLED: Final = "order_cancelled"
EVENTS: Final = (ORDER_FULFILLABLE, ORDER_CANCELLED)
#: [inferred] body fields that may name the event (none is documented)
EVENT_FIELDS: Final = ("event", "type", "topic", "eventType")
#: [inferred] envelope fields that may hold the Order
ENVELOPE_FIELDS: Final = ("order", "data", "payload")

# --- statuses ---------------------------------------------------------------------------

# fulfilment statuses [doc-example] S2, [doc] S1
ORDER_PLACED: Final = "order_placed"
RECEIVED_BY_FULFILLER: Final = "received_by_fulfiller"
PREPARING_ITEMS: Final = "preparing_items"
PREPARING_ITEMS_COMPLETE: Final = "preparing_items_complete"
IN_TRANSIT: Final = "in_transit"
DELIVERED: Final = "delivered"
CANCELLED: Final = "cancelled"  # [inferred] the pattern of the others
PROGRESS: Final = (ORDER_PLACED, RECEIVED_BY_FULFILLER, PREPARING_ITEMS, PREPARING_ITEMS_COMPLETE)
SHIPPED_STATUSES: Final = frozenset({IN_TRANSIT, DELIVERED})

# order statuses: [doc-example] created, on_fulfillment_queue, sent_to_fulfiller;
# [inferred] cancelled; in_transit / delivered once every live fulfilment is (Foxtrot shows
# "Completed"; the wire value is unknown and the adapter derives nothing from it).
ORDER_SENT_TO_FULFILLER: Final = "sent_to_fulfiller"
ORDER_ON_FULFILLMENT_QUEUE: Final = "on_fulfillment_queue"

CARRIER_DELIVERY: Final = "carrier_delivery"  # the only fulfilment method handled

#: [doc-example] lowercase carrier codes (ups, fedex seen); the rest [inferred]. The
#: account's ``carriers`` setting maps the WMS's codes onto these and may add others.
CARRIERS: Final = frozenset({"ups", "fedex", "usps", "dhl", "ontrac", "lasership"})

#: [doc-example] "USA" in the example: 3-letter codes, normalised to alpha-2 for the WMS.
ALPHA3: Final = {
    "USA": "US", "CAN": "CA", "MEX": "MX", "GBR": "GB", "IRL": "IE", "DEU": "DE",
    "FRA": "FR", "ESP": "ES", "ITA": "IT", "NLD": "NL", "BEL": "BE", "LUX": "LU",
    "AUT": "AT", "CHE": "CH", "DNK": "DK", "SWE": "SE", "NOR": "NO", "FIN": "FI",
    "POL": "PL", "PRT": "PT", "CZE": "CZ", "AUS": "AU", "NZL": "NZ", "JPN": "JP",
    "PRI": "PR", "GUM": "GU", "VIR": "VI", "ASM": "AS", "MNP": "MP",
}  # fmt: skip


class WireError(ValueError):
    """A body that is not what Spresso sends (bad JSON, a missing field, a wrong type)."""


# --- the Order object [doc-example] S2 ---------------------------------------------------


class StatusEntry(msgspec.Struct, rename="camel", kw_only=True):
    status: str
    updated_at: dt.datetime | None = None


class User(msgspec.Struct, rename="camel", kw_only=True):
    id: str | None = None
    email: str | None = None
    telephone_number: str | None = None


class ShippingAddress(msgspec.Struct, rename="camel", kw_only=True):
    first_name: str | None = None
    last_name: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    telephone_number: str | None = None


class Variant(msgspec.Struct, rename="camel", kw_only=True):
    id: str
    sku: str | None = None
    upc: str | None = None
    name: str | None = None


class OrderVariant(msgspec.Struct, rename="camel", kw_only=True):
    id: str | None = None
    quantity: int = 0
    variant: Variant | None = None
    fulfilled_quantity: int | None = None


class FulfillmentVariant(msgspec.Struct, rename="camel", kw_only=True):
    variant: str
    quantity: int
    #: [inferred] what an in_transit update settled (Spresso shows it at order level)
    fulfilled_quantity: int | None = None


class Fulfillment(msgspec.Struct, rename="camel", kw_only=True):
    id: str
    fulfillment_variants: list[FulfillmentVariant]
    status: str | None = None
    fulfillment_method: str | None = None
    fulfiller_location: str | None = None
    created_at: dt.datetime | None = None
    status_history: list[StatusEntry] = msgspec.field(default_factory=list)


class Order(msgspec.Struct, rename="camel", kw_only=True):
    id: str
    status: str
    fulfillments: list[Fulfillment]
    order_no: int | None = None
    created_at: dt.datetime | None = None
    status_history: list[StatusEntry] = msgspec.field(default_factory=list)
    financial_status: str | None = None
    user: User | None = None
    shipping_address: ShippingAddress | None = None
    order_variants: list[OrderVariant] = msgspec.field(default_factory=list)

    @property
    def updated_at(self) -> dt.datetime | None:
        """The newest status time of the order or its fulfilments (Spresso has no other);
        a stamp without a zone is UTC (one of each would not compare)."""
        stamps = [_utc(e.updated_at) for e in self.status_history if e.updated_at]
        for f in self.fulfillments:
            stamps.extend(_utc(e.updated_at) for e in f.status_history if e.updated_at)
        return max(stamps) if stamps else self.created_at


def _utc(stamp: dt.datetime) -> dt.datetime:
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=dt.UTC)


class Webhook(msgspec.Struct, kw_only=True, frozen=True):
    """One webhook: its event (from the body, or inferred) and the Order it carries."""

    event: str
    order: Order


# --- outbound bodies [doc] S1, S3, S4 ------------------------------------------------------


class ShipmentVariant(msgspec.Struct, kw_only=True):
    variant: str
    quantity: int


class ShipmentRequest(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    carrier: str
    carrier_reference_id: str
    tracking_number: str
    shipment_variants: list[ShipmentVariant]
    tracking_url: str | None = None


class FulfilledVariant(msgspec.Struct, rename="camel", kw_only=True):
    variant: str
    fulfilled_quantity: int


class FulfillmentUpdate(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    status: str
    fulfillment_variants: list[FulfilledVariant] | None = None
    external_order_id: str | None = None
    external_order_status: str | None = None


# --- auth [sibling] S10 ------------------------------------------------------------------------


class TokenRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    client_id: str
    client_secret: str
    audience: str
    grant_type: str  # always sent ("client_credentials"): not a default, never omitted
    scope: str | None = None


class TokenResponse(msgspec.Struct, kw_only=True):
    access_token: str
    expires_in: float | None = None
    token_type: str | None = None
    scope: str | None = None


# --- webhook registration [inferred]: see registration.py ------------------------------------


class WebhookRegistration(msgspec.Struct, kw_only=True):
    id: str
    url: str
    event: str


class WebhookRegistrationRequest(msgspec.Struct, kw_only=True):
    url: str
    event: str


# --- decoding -------------------------------------------------------------------------------


def _event_of(doc: dict[str, Any], order: Order, topic: str | None) -> str:
    for name in EVENT_FIELDS:
        value = doc.get(name)
        if isinstance(value, str) and value in EVENTS:
            return value
    if topic in EVENTS:
        return str(topic)
    return ORDER_CANCELLED if order.status == CANCELLED else ORDER_FULFILLABLE


def decode_webhook(body: bytes, topic: str | None = None) -> Webhook:
    """The Order of a webhook body, bare or in an envelope (``order``/``data``/``payload``),
    and its event: a body field if one names it, else ``topic`` (the event the URL it was
    sent to names: one registration per event), else ``order_cancelled`` for a cancelled
    order, ``order_fulfillable`` otherwise."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise WireError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise WireError("not a JSON object")
    inner: Any = doc
    if "fulfillments" not in doc:
        inner = next(
            (doc[k] for k in ENVELOPE_FIELDS if isinstance(doc.get(k), dict)),
            doc,
        )
    try:
        order = msgspec.convert(inner, type=Order)
    except msgspec.ValidationError as exc:
        raise WireError(f"not a Spresso order: {exc}") from exc
    return Webhook(event=_event_of(doc, order, topic), order=order)


def decode_order(body: bytes) -> Order | None:
    """An API answer as an Order, or None when it is something else (not documented)."""
    try:
        return decode_webhook(body).order
    except WireError:
        return None


def order_id_of(body: bytes) -> str | None:
    try:
        return decode_webhook(body).order.id
    except WireError:
        return None


def dedupe_key(webhook: Webhook) -> str:
    """Spresso sends no event id: event, order id, order status, newest status time and a
    digest of the fulfilment statuses (a fulfilment-level change shows in no stamp)."""
    order = webhook.order
    stamp = order.updated_at.isoformat() if order.updated_at else ""
    statuses = ",".join(f"{f.id}={f.status or ''}" for f in order.fulfillments)
    return f"{webhook.event}:{order.id}:{order.status}:{stamp}:{statuses}"


def decode_error(body: bytes) -> str:
    """Spresso's error text: a ``message``/``error``/``detail`` field, else the body itself."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(doc, dict):
        for key in ("message", "error_description", "error", "detail"):
            if isinstance(doc.get(key), str) and doc[key]:
                return str(doc[key])[:500]
    return text[:500]


_ENCODER: Final = msgspec.json.Encoder()


def encode(value: Any) -> bytes:
    return _ENCODER.encode(value)


def compact(value: Any) -> bytes:
    """As Spresso's Node sample would serialise it (``JSON.stringify``)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
