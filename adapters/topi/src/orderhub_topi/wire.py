"""topi's wire format: the one module that knows what topi sends and expects.

Sources (see ``docs/channels/topi.md`` for the full list of facts and assumptions):

* topi Seller API OpenAPI 1.0.0 (``shared/reference/topi-seller-api.openapi.yaml``):
  paths ``/v1/orders/{id}``, ``/v1/orders/{id}/{acknowledge,accept,reject}``,
  ``/v1/orders/paginated``, ``/v1/shipment``; schemas ``FullOrderResult``,
  ``OrderResult``, ``OrderLineItem``/``BaseOrderLineItem``, ``Asset``,
  ``MoneyAmount``, ``CreateRequestBody``/``SerialNumberByAsset``/``Shipment``,
  ``OrdersSummaryPaginated``, ``Error``.
* topi docs "Core Resources: Order" and the order-webhook paragraph of the API
  reference (seeds 001 and 002).

Every struct is keyword-only, frozen and tolerant of unknown fields, so a field
topi adds tomorrow does not break decoding. Fields the OpenAPI marks as required
but the hub never reads get a default, so a sloppy payload still decodes; the
fields the hub relies on stay required.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any, Final

import msgspec

__all__ = [
    "ASSET_CREATED",
    "ASSET_SHIPPED",
    "ASSET_STATUSES",
    "CONTRACT_PAY_NOW",
    "CONTRACT_RENT",
    "NO_SERIAL_NUMBER",
    "ORDER_ACCEPTED",
    "ORDER_ACKNOWLEDGED",
    "ORDER_CANCELED",
    "ORDER_COMPLETED",
    "ORDER_CONFIRMED",
    "ORDER_CREATED",
    "ORDER_PARTIALLY_FULFILLED",
    "ORDER_REJECTED",
    "ORDER_STATUSES",
    "TERMINAL_ORDER_STATUSES",
    "WEBHOOK_ORDER_STATUSES",
    "Asset",
    "CompanyInfo",
    "CustomerInfo",
    "FirstPartyService",
    "FullOrderResult",
    "MoneyAmount",
    "OrderLine",
    "OrderLineItem",
    "OrderResult",
    "OrderSummary",
    "OrderWebhook",
    "OrdersSummaryPaginated",
    "PaginationMetadata",
    "PostalAddress",
    "SalesAgent",
    "SellerInfo",
    "SellerProductReference",
    "SerialNumberByAsset",
    "SetMetadataRequest",
    "Shipment",
    "ShipmentRequest",
    "ShippingAddress",
    "ShippingInfo",
    "TokenResponse",
    "TopiErrorBody",
    "asset_requires_serial_number",
    "decode_error_body",
    "decode_webhook",
    "encode",
    "rent_product_keys",
    "webhook_event_name",
]

# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------

# Order statuses (FullOrderResult.status enum; docs "Core Resources: Order").
ORDER_CREATED: Final = "created"
ORDER_ACKNOWLEDGED: Final = "acknowledged"
ORDER_CONFIRMED: Final = "confirmed"
#: In the OpenAPI enum but not in the documented state table; never produced by
#: the simulator. Treat like ``confirmed`` if it ever shows up.
ORDER_ACCEPTED: Final = "accepted"
ORDER_PARTIALLY_FULFILLED: Final = "partially_fulfilled"
ORDER_COMPLETED: Final = "completed"
ORDER_CANCELED: Final = "canceled"
ORDER_REJECTED: Final = "rejected"

ORDER_STATUSES: Final = frozenset(
    {
        ORDER_CREATED,
        ORDER_ACKNOWLEDGED,
        ORDER_CONFIRMED,
        ORDER_ACCEPTED,
        ORDER_PARTIALLY_FULFILLED,
        ORDER_COMPLETED,
        ORDER_CANCELED,
        ORDER_REJECTED,
    }
)
#: "once an order is canceled or rejected it cannot be changed"; completed has
#: nothing left to do (a later customer cancellation is a return).
TERMINAL_ORDER_STATUSES: Final = frozenset({ORDER_COMPLETED, ORDER_CANCELED, ORDER_REJECTED})

#: API reference (order webhook): "We will ping the URL provided whenever an order
#: has changed its status to: created, partially_fulfilled, completed, canceled,
#: or rejected". No webhook for acknowledged/confirmed: those are our own calls.
WEBHOOK_ORDER_STATUSES: Final = frozenset(
    {ORDER_CREATED, ORDER_PARTIALLY_FULFILLED, ORDER_COMPLETED, ORDER_CANCELED, ORDER_REJECTED}
)

# Asset statuses (Asset.status enum).
ASSET_CREATED: Final = "created"
ASSET_SHIPPED: Final = "shipped"
ASSET_RETURNED: Final = "returned"
ASSET_COMPLETED: Final = "completed"
ASSET_REJECTED: Final = "rejected"
ASSET_STATUSES: Final = frozenset(
    {ASSET_CREATED, ASSET_SHIPPED, ASSET_RETURNED, ASSET_COMPLETED, ASSET_REJECTED}
)

# Order line contract types (BaseOrderLineItem.contract_type enum).
CONTRACT_RENT: Final = "rent"
CONTRACT_PAY_NOW: Final = "pay_now"

#: "explicitly pass an empty string "" as the serial_number" for an asset
#: without a serial number (API reference, "Assets without serial numbers").
NO_SERIAL_NUMBER: Final = ""


# --------------------------------------------------------------------------
# Shared value types
# --------------------------------------------------------------------------


class _Wire(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=False):
    """Base for every topi payload."""


class _Request(_Wire, frozen=True, omit_defaults=True):
    """Base for request bodies: unset optional fields are left out, not sent as null.

    Metadata is sent as strings (OpenAPI: string values, max 400 chars) but decoded as any
    JSON value (its description says "any JSON information"), so an order whose metadata
    someone else filled never fails to decode."""


class MoneyAmount(_Wire, frozen=True):
    """``MoneyAmount``: integer minor units (cents). ``tax_rate`` is the rate x 10,000
    (19 % = 1900); order payloads do not carry it, pricing payloads may."""

    currency: str
    gross: int
    net: int
    tax_rate: int | None = None


class SellerProductReference(_Wire, frozen=True):
    """The seller's own product reference (e.g. ``source="sku"``)."""

    source: str
    reference: str


class PostalAddress(_Wire, frozen=True):
    line1: str
    postal_code: str
    city: str
    country_code: str
    line2: str | None = None
    region: str | None = None


class ShippingAddress(_Wire, frozen=True):
    """Shipping address. ``FullOrderResult`` names the recipient ``recipient_name``;
    the order webhook payload documents ``name``. Both are accepted."""

    line1: str
    postal_code: str
    city: str
    country_code: str
    line2: str | None = None
    region: str | None = None
    recipient_name: str | None = None
    name: str | None = None

    @property
    def recipient(self) -> str | None:
        return self.recipient_name or self.name


class CompanyInfo(_Wire, frozen=True):
    name: str | None = None
    billing_address: PostalAddress | None = None
    tax_number: str | None = None
    vat_number: str | None = None


class CustomerInfo(_Wire, frozen=True):
    full_name: str | None = None
    email: str | None = None
    phone_number: str | None = None
    customer_group: str | None = None
    company: CompanyInfo | None = None


class SalesAgent(_Wire, frozen=True):
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    external_agent_id: str | None = None


class SellerInfo(_Wire, frozen=True):
    """The subset of ``SellerInfo`` the hub may use; the rest is ignored."""

    id: str | None = None
    name: str | None = None
    pretty_name: str | None = None
    currency: str | None = None
    #: Which ``SellerProductReference.source`` this seller uses as its main one.
    product_reference_source: str | None = None


class ShippingInfo(_Wire, frozen=True):
    seller_shipping_reference: str | None = None
    price: MoneyAmount | None = None
    is_in_store_pickup: bool | None = None


class FirstPartyService(_Wire, frozen=True):
    id: str
    type: str
    monthly_price: MoneyAmount | None = None
    additional_values: dict[str, str] | None = None


# --------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------


class Asset(_Wire, frozen=True):
    """One physical unit to fulfil (one per unit of quantity of a line or sub-line)."""

    id: str
    product_id: str
    title: str
    seller_product_references: list[SellerProductReference]
    status: str
    serial_number: str | None = None
    tracking_url: str | None = None


class OrderLine(_Wire, frozen=True):
    """``BaseOrderLineItem``: an order line without sub-lines (used for sub-lines)."""

    title: str
    quantity: int
    contract_type: str
    seller_product_references: list[SellerProductReference]
    product_id: str | None = None
    pretty_id: str | None = None
    subtitle: str | None = None
    duration: int | None = None
    unit_price: MoneyAmount | None = None
    monthly_price: MoneyAmount | None = None
    base_rental_price: MoneyAmount | None = None
    selected_first_party_services: list[FirstPartyService] = msgspec.field(default_factory=list)


class OrderLineItem(OrderLine, frozen=True):
    """``OrderLineItem``: a top-level order line; a bundle carries ``sublines``."""

    sublines: list[OrderLine] = msgspec.field(default_factory=list)


class OrderResult(_Wire, frozen=True):
    """``OrderResult``: what acknowledge/accept/reject answer (no lines, no customer)."""

    id: str
    status: str
    assets: list[Asset] = msgspec.field(default_factory=list)
    offer_id: str | None = None
    seller_offer_reference: str | None = None
    metadata: dict[str, Any] | None = None


class FullOrderResult(_Wire, frozen=True):
    """``FullOrderResult``: ``GET /v1/orders/{id}``."""

    id: str
    status: str
    created_at: dt.datetime
    assets: list[Asset]
    order_lines: list[OrderLineItem]
    offer_id: str | None = None
    seller_offer_reference: str | None = None
    offer_created_at: dt.datetime | None = None
    canceled_at: dt.datetime | None = None
    customer_info: CustomerInfo | None = None
    shipping_address: ShippingAddress | None = None
    shipping_info: ShippingInfo | None = None
    sales_agent: SalesAgent | None = None
    seller_info: SellerInfo | None = None
    metadata: dict[str, Any] | None = None
    tracking_urls: list[str] = msgspec.field(default_factory=list)


class OrderSummary(_Wire, frozen=True):
    """``OrderSummary``: one row of ``GET /v1/orders/paginated``."""

    id: str
    status: str
    created_at: dt.datetime
    offer_id: str | None = None
    seller_offer_reference: str | None = None
    agent_name: str | None = None
    company_name: str | None = None
    full_name: str | None = None


class PaginationMetadata(_Wire, frozen=True):
    page: int | None = None
    page_size: int | None = None
    total_count: int | None = None
    total_pages: int | None = None


class OrdersSummaryPaginated(_Wire, frozen=True):
    """``OrdersSummaryPaginated``: ``GET /v1/orders/paginated``."""

    orders: list[OrderSummary]
    pagination: PaginationMetadata = msgspec.field(default_factory=PaginationMetadata)


class SetMetadataRequest(_Request, frozen=True):
    """``SetMetadataRequestBody``: ``PATCH /v1/orders/{id}`` (string values, max 400 chars)."""

    metadata: dict[str, str]


# --------------------------------------------------------------------------
# Shipments
# --------------------------------------------------------------------------


class SerialNumberByAsset(_Wire, frozen=True):
    """One shipped unit. topi identifies the unit by the seller product reference (not the
    asset id): ship two units of the same product with two entries. ``serial_number`` is
    ``""`` (:data:`NO_SERIAL_NUMBER`) for a unit without one."""

    seller_product_reference: SellerProductReference
    serial_number: str

    @classmethod
    def for_asset(
        cls, asset: Asset, serial_number: str = NO_SERIAL_NUMBER, *, source: str | None = None
    ) -> SerialNumberByAsset:
        """The entry for ``asset``, using its reference from ``source`` (else its first one)."""
        refs = asset.seller_product_references
        if not refs:
            raise ValueError(f"asset {asset.id} has no seller product reference")
        ref = next((r for r in refs if r.source == source), refs[0]) if source else refs[0]
        return cls(seller_product_reference=ref, serial_number=serial_number)


class ShipmentRequest(_Request, frozen=True):
    """``CreateRequestBody``: ``POST /v1/shipment``."""

    order_id: str
    serial_numbers: list[SerialNumberByAsset]
    tracking_url: str | None = None
    metadata: dict[str, str] | None = None


class Shipment(_Wire, frozen=True):
    """``Shipment``: the answer to ``POST /v1/shipment``."""

    serial_numbers: list[SerialNumberByAsset] = msgspec.field(default_factory=list)
    tracking_url: str | None = None
    metadata: dict[str, Any] | None = None


# --------------------------------------------------------------------------
# Webhooks
# --------------------------------------------------------------------------


class OrderWebhook(_Wire, frozen=True):
    """The order webhook: the documented fields only (id, assets, metadata, offer_id,
    seller_offer_reference, status, shipping_address). Thin: fetch the full order.

    topi documents no envelope and no event field; the event name is derived from the
    status (``order.created``, ``order.canceled``...). An ``event`` field, if topi sends
    one, is kept and wins.
    """

    id: str
    status: str
    assets: list[Asset] = msgspec.field(default_factory=list)
    metadata: dict[str, Any] | None = None
    offer_id: str | None = None
    seller_offer_reference: str | None = None
    shipping_address: ShippingAddress | None = None
    event: str | None = None

    @property
    def event_name(self) -> str:
        return self.event or webhook_event_name(self.status)


def webhook_event_name(status: str) -> str:
    """``order.<status>``, the naming the topi docs use (``order.created``...)."""
    return f"order.{status}"


class _Envelope(_Wire, frozen=True):
    data: OrderWebhook
    event: str | None = None
    type: str | None = None


def decode_webhook(body: bytes | str) -> OrderWebhook:
    """Decode an order webhook body.

    The documented shape is the flat order object. Should topi wrap it as
    ``{"event"|"type": ..., "data": {...}}`` the wrapped object is decoded and the
    envelope's event name kept. Raises ``msgspec.ValidationError``/``DecodeError``.
    """
    raw = msgspec.json.decode(body)
    if isinstance(raw, dict) and "id" not in raw and isinstance(raw.get("data"), dict):
        env = msgspec.convert(raw, _Envelope, strict=False)
        event = env.event or env.type
        return msgspec.structs.replace(env.data, event=event) if event else env.data
    return msgspec.convert(raw, OrderWebhook)


def decode_full_order(body: bytes | str) -> FullOrderResult:
    """The whole order as ``GET /v1/orders/{id}`` answers it (stored by a refresh)."""
    return msgspec.json.decode(body, type=FullOrderResult)


# --------------------------------------------------------------------------
# Errors and auth
# --------------------------------------------------------------------------


class TopiErrorBody(_Wire, frozen=True):
    """``Error`` (goa error, content type ``application/vnd.goa.error``)."""

    name: str = ""
    id: str = ""
    message: str = ""
    temporary: bool = False
    timeout: bool = False
    fault: bool = False


def decode_error_body(body: bytes) -> TopiErrorBody | None:
    """topi's Error body, or None when the body is something else (401/403 send a bare
    JSON string, a proxy may send HTML)."""
    try:
        raw = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    if isinstance(raw, str):
        return TopiErrorBody(message=raw)
    if isinstance(raw, dict) and isinstance(raw.get("error"), str):
        # OAuth2 token endpoint error (RFC 6749 section 5.2).
        description = raw.get("error_description")
        message = description if isinstance(description, str) and description else raw["error"]
        return TopiErrorBody(name=raw["error"], message=message)
    if isinstance(raw, dict) and ("message" in raw or "name" in raw):
        try:
            return msgspec.convert(raw, TopiErrorBody, strict=False)
        except msgspec.ValidationError:
            return None
    return None


class TokenResponse(_Wire, frozen=True):
    """OAuth2 token endpoint answer (RFC 6749 section 5.1)."""

    access_token: str
    token_type: str = "Bearer"
    expires_in: int | None = None
    scope: str | None = None


# --------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------


def _line_keys(line: OrderLine) -> set[str]:
    keys = {f"ref:{r.source}:{r.reference}" for r in line.seller_product_references}
    if line.product_id:
        keys.add(f"product:{line.product_id}")
    return keys


def _asset_keys(asset: Asset) -> set[str]:
    keys = {f"ref:{r.source}:{r.reference}" for r in asset.seller_product_references}
    keys.add(f"product:{asset.product_id}")
    return keys


def _all_lines(order_lines: Iterable[OrderLineItem]) -> Iterable[OrderLine]:
    for line in order_lines:
        yield line
        yield from line.sublines


def rent_product_keys(order_lines: Iterable[OrderLineItem]) -> frozenset[str]:
    """Match keys (product id, seller references) of every rent line and rent sub-line."""
    keys: set[str] = set()
    for line in _all_lines(order_lines):
        if line.contract_type == CONTRACT_RENT:
            keys |= _line_keys(line)
    return frozenset(keys)


def asset_requires_serial_number(asset: Asset, order_lines: Sequence[OrderLineItem]) -> bool:
    """Whether topi will insist on a serial number for ``asset`` when it ships.

    topi: "every asset that has a rent option requires a serial number even if it has
    been directly purchased". An order does not say which products *could* be rented,
    only how each line was contracted, so the hub's rule is: an asset needs a serial
    number when it matches a line or sub-line with ``contract_type == "rent"`` by
    ``product_id`` or by a shared seller product reference (when a product is both
    rented and bought in one order, every asset of it needs one).
    A directly purchased (``pay_now``) unit of a rentable product is not detectable
    here; topi refuses such a shipment with a 400 and its message says why.
    """
    return bool(_asset_keys(asset) & rent_product_keys(order_lines))


_ENCODER: Final = msgspec.json.Encoder()


def encode(value: Any) -> bytes:
    """JSON-encode a wire struct (datetimes as RFC 3339)."""
    return _ENCODER.encode(value)
