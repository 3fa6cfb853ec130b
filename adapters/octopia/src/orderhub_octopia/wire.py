"""Octopia's wire format: the one module that knows what the Seller API v2 sends and expects.

Sources and confidence (``docs/channels/octopia.md`` lists every assumption): the team's
functional documentation (seed 003: states, supply modes, reason codes by state,
invoices) and ``shared/reference/octopia-orders-api.md`` (paths, bodies, headers). What
no source settles is a field of :class:`WireOptions`, set per account.

Every struct is keyword-only, frozen and tolerant of unknown fields; fields the hub does
not rely on have defaults, so a sparse order (no address before ``InPreparation``) decodes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final, Literal

import msgspec

# --- endpoints [doc] D3/D4/D5/D8, [sdk] C2/C3 -------------------------------------------

PRODUCTION_BASE_URL: Final = "https://api.octopia-io.net/seller/v2"
TOKEN_URL: Final = "https://auth.octopia-io.net/auth/realms/maas/protocol/openid-connect/token"
ORDERS: Final = "/orders"
ORDER: Final = "/orders/{order_id}"
ORDERS_COUNT: Final = "/orders/count"
APPROVAL: Final = "/orders/{order_id}/approval-status"
SHIPMENTS: Final = "/orders/{order_id}/shipments"
CARRIERS: Final = "/carriers"
FULL_CANCELLATION: Final = "/order-cancellation-requests"
PARTIAL_CANCELLATION: Final = "/order-partial-cancellation-requests"
INVOICE_DOCUMENTS: Final = "/orders/{order_id}/invoice-documents"
INVOICE_IMPORTS: Final = "/order-invoice-imports"
INVOICE_IMPORT: Final = "/order-invoice-imports/{import_id}"

SELLER_ID_HEADER: Final = "SellerId"
SALES_CHANNEL_HEADER: Final = "SalesChannelId"
MAX_PAGE_SIZE: Final = 100  # [measured] C1, [integrator] I1
TOKEN_TTL_SECONDS: Final = 7200  # [doc] D3: "available for 2h"
TOKENS_PER_HOUR: Final = 500  # [secondary] I3, C5: the token endpoint's quota

#: The permission (Keycloak client role) each call needs. Names follow the roles seen in a
#: decoded token (``ORDER-CANCELLATION-REQUESTS_POST``, ``SELLERS_GET``) [inferred pattern].
PERMISSIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "list orders": "ORDERS_GET",
        "count orders": "ORDERS_GET",
        "get order": "ORDERS_GET",
        "approve order": "ORDER-APPROVAL-STATUS_POST",
        "ship order": "ORDER-SHIPMENTS_POST",
        "list carriers": "CARRIERS_GET",
        "cancel order": "ORDER-CANCELLATION-REQUESTS_POST",
        "cancel lines": "ORDER-PARTIAL-CANCELLATION-REQUESTS_POST",
        "upload invoice": "ORDER-INVOICE-DOCUMENTS_POST",
        "import invoices": "ORDER-INVOICE-IMPORTS_POST",
        "read invoice import": "ORDER-INVOICE-IMPORTS_GET",
    }
)

# --- states [doc] D1, seed 003 ----------------------------------------------------------

PROCESSING: Final = "Processing"
WAITING_ACCEPTANCE: Final = "WaitingAcceptance"
ACCEPTED: Final = "Accepted"
REFUSED: Final = "Refused"
IN_PREPARATION: Final = "InPreparation"
SHIPPED: Final = "Shipped"
DELIVERED: Final = "Delivered"
CANCELLED: Final = "Cancelled"
REJECTED: Final = "Rejected"  # failed the marketplace's controls
CANCEL_REQUEST: Final = "CancelRequest"  # a line state [doc] D5
ORDER_STATES: Final = frozenset(
    {
        PROCESSING,
        WAITING_ACCEPTANCE,
        ACCEPTED,
        REFUSED,
        IN_PREPARATION,
        SHIPPED,
        DELIVERED,
        CANCELLED,
        REJECTED,
        CANCEL_REQUEST,
    }
)
#: states whose orders the seller may dispatch (and everything after)
RELEASED_STATES: Final = frozenset({IN_PREPARATION, SHIPPED, DELIVERED})
ACCEPTED_STATES: Final = frozenset({ACCEPTED, IN_PREPARATION, SHIPPED, DELIVERED})
SHIPPED_STATES: Final = frozenset({SHIPPED, DELIVERED})

SUPPLY_SELLER: Final = "Seller"
SUPPLY_FULFILLMENT: Final = "Fulfillment"
SUPPLY_XDOCK: Final = "Xdock"
SUPPLY_MODES: Final = (SUPPLY_SELLER, SUPPLY_FULFILLMENT, SUPPLY_XDOCK)

APPROVE: Final = "Accepted"
REFUSE: Final = "Refused"

# cancellation requests on the order (``cancellationDetails``) [inferred shape, C7 key]
REQUEST_PENDING: Final = frozenset({"Pending", "Requested", "InProgress"})
REQUEST_ACCEPTED: Final = frozenset({"Accepted", "Done", "Cancelled", "Validated"})
REQUEST_REJECTED: Final = frozenset({"Rejected", "Refused"})
BY_CUSTOMER: Final = "Customer"
BY_SELLER: Final = "Seller"
BY_SALES_CHANNEL: Final = "SalesChannel"

#: seed 003's table: reason code -> the order states it is allowed in
REASON_CODE_STATES: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "seller-refusal": (ACCEPTED, IN_PREPARATION),
        "customer-cancellation": (SHIPPED, DELIVERED),
        "customer-claim": (ACCEPTED, IN_PREPARATION, SHIPPED, DELIVERED),
        "refund-from-seller": (SHIPPED, DELIVERED),
        "customer-withdrawal": (SHIPPED, DELIVERED),
        "no-customer-withdrawal-in-store": (SHIPPED, DELIVERED),
        "reference-mistake": (SHIPPED, DELIVERED),
        "damaged": (SHIPPED, DELIVERED),
        "multiple-shipping": (SHIPPED, DELIVERED),
        "missing-product": (SHIPPED, DELIVERED),
        "breakdown-during-unpacking": (SHIPPED, DELIVERED),
        "delivery-impossible": (SHIPPED, DELIVERED),
        "customer-refusal": (SHIPPED, DELIVERED),
        "transport-damage": (SHIPPED, DELIVERED),
        "not-collected-at-the-collection-point": (SHIPPED, DELIVERED),
    }
)

# invoice import report statuses [inferred: the D6 value table is not public]
IMPORT_DONE: Final = frozenset({"Success", "Succeeded", "Accepted", "Completed", "Integrated"})
IMPORT_FAILED: Final = frozenset({"Rejected", "Failed", "Error", "Refused"})


@dataclass(frozen=True, kw_only=True, slots=True)
class WireOptions:
    """What the sources leave open, settable per account (``docs/channels/octopia.md``)."""

    approval_key: str = "approval_status"  # §7 #1, [sdk] 4 sources
    cancel_order_key: str = "orderSellerId"  # §7 #4: C3; C2 says ``orderId``
    refund_in_lines: bool = False  # §3: C3 puts shippingCostRefund in each line, C2 on top
    shipment_as_array: bool = True  # §7 #2: C1, C3, C4 post an array of parcels
    sort: str | None = None  # §7 #10: never relied on; e.g. "updatedAt"
    sales_channel_header: bool = False  # §7 #11: send SalesChannelId on order calls
    invoice_file_field: str = "file"  # §7 #17
    cancellation_details_key: str = "cancellationDetails"

    @classmethod
    def of(cls, raw: Mapping[str, Any] | None) -> WireOptions:
        try:
            return msgspec.convert(dict(raw or {}), type=cls, strict=True)
        except msgspec.ValidationError as exc:
            raise ValueError(f"octopia wire settings: {exc}") from None


# --- structs ----------------------------------------------------------------------------


class TokenResponse(msgspec.Struct, kw_only=True, frozen=True):
    access_token: str
    expires_in: float | None = None
    token_type: str | None = None


class Problem(msgspec.Struct, kw_only=True, frozen=True):
    """RFC 9457 problem, with the keys where Octopia puts the detail (and Keycloak's)."""

    type: str | None = None
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    instance: str | None = None
    message: str | None = None
    errors: dict[str, Any] | list[Any] | None = None
    trace_id: str | None = msgspec.field(default=None, name="traceId")
    error: str | None = None
    error_description: str | None = None


class Address(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    civility: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company_name: str | None = None
    company_vat_number: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    address_line3: str | None = None
    postal_code: str | None = None
    city: str | None = None
    state_or_region: str | None = None
    country_code: str | None = None
    phone: str | None = None
    email: str | None = None
    pickup_name: str | None = None
    pickup_id: str | None = None


class Offer(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    id: str | None = None
    seller_product_id: str | None = None
    product_id: str | None = None
    product_title: str | None = None
    product_gtin: str | None = None
    condition: str | None = None
    supply_mode: str = SUPPLY_SELLER


class Tax(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    code: str | None = None
    target: str | None = None
    amount: Decimal | None = None
    rate: Decimal | None = None


class Commission(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    amount_with_vat: Decimal | None = None
    amount_without_vat: Decimal | None = None
    amount_with_tax: Decimal | None = None  # C6's names
    amount_without_tax: Decimal | None = None
    rate: Decimal | None = None


class OfferPrice(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    unit_sales_price: Decimal | None = None
    shipping_cost: Decimal | None = None
    commission: Commission | None = None
    taxes: list[Tax] = msgspec.field(default_factory=list)


class Delivery(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    mode: str | None = None
    promised_at_min: dt.datetime | None = None
    promised_at_max: dt.datetime | None = None
    shipped_at_max: dt.datetime | None = None


class Parcel(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    parcel_number: str
    carrier_name: str | None = None
    tracking_url: str | None = None


class StatusEvent(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    status: str
    occurred_at: dt.datetime | None = None


class Line(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    order_line_id: str
    status: str
    quantity: int = 1
    offer: Offer = msgspec.field(default_factory=Offer)
    offer_price: OfferPrice | None = None
    selling_price: OfferPrice | None = None
    delivery: Delivery | None = None
    shipping_address: Address | None = None
    parcels: list[Parcel] = msgspec.field(default_factory=list)
    status_events: list[StatusEvent] = msgspec.field(default_factory=list)


class SalesChannel(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    id: str
    name: str | None = None


class Customer(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    reference: str | None = None


class RequestLine(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    order_line_id: str
    quantity: int | None = None


class CancellationDetail(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """One cancellation request on the order [inferred shape]."""

    cancellation_request_id: str
    status: str
    requested_by: str = BY_CUSTOMER
    reason: str | None = None
    lines: list[RequestLine] = msgspec.field(default_factory=list)  # empty: whole order
    created_at: dt.datetime | None = None


class Order(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    order_id: str
    status: str
    lines: list[Line]
    reference: str | None = None
    business_order: bool = False
    sales_channel: SalesChannel | None = None
    customer: Customer | None = None
    purchased_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    shipped_at_max: dt.datetime | None = None
    currency_code: str | None = None
    billing_address: Address | None = None
    cancellation_details: list[CancellationDetail] = msgspec.field(default_factory=list)


class OrderPage(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """``GET /orders``: the orders kept raw, so each is stored exactly as read."""

    items: list[msgspec.Raw] = msgspec.field(default_factory=list)
    items_per_page: int | None = None


class Carrier(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    code: str
    label: str
    additional_parameters_required: bool | None = None


class CancellationAnswer(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    cancellation_request_id: str | None = None
    id: str | None = None


class ImportAnswer(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    import_id: str | None = None
    id: str | None = None


class ImportReportLine(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    order_id: str | None = None
    status: str | None = None
    message: str | None = None


class ImportReport(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    import_id: str | None = None
    status: str
    message: str | None = None
    reports: list[ImportReportLine] = msgspec.field(default_factory=list)


# --- encoding and decoding --------------------------------------------------------------

_ENCODER: Final = msgspec.json.Encoder(decimal_format="number")


def encode(value: Any) -> bytes:
    return _ENCODER.encode(value)


def decode_order(body: bytes, *, details_key: str = "cancellationDetails") -> Order:
    """One order (raises ``msgspec.DecodeError``/``ValidationError`` when it is not one)."""
    if details_key != "cancellationDetails":
        raw = msgspec.json.decode(body)
        if isinstance(raw, dict) and details_key in raw:
            raw["cancellationDetails"] = raw.pop(details_key)
        return msgspec.convert(raw, type=Order)
    return msgspec.json.decode(body, type=Order)


def decode_problem(body: bytes) -> Problem | None:
    try:
        return msgspec.json.decode(body, type=Problem)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def approval_body(options: WireOptions, decision: Literal["Accepted", "Refused"]) -> bytes:
    return encode({options.approval_key: decision})


def shipment_body(
    options: WireOptions,
    *,
    parcel_number: str,
    carrier_name: str,
    tracking_url: str | None,
    line_ids: list[str],
) -> bytes:
    parcel: dict[str, Any] = {"parcelNumber": parcel_number, "carrierName": carrier_name}
    if tracking_url:
        parcel["trackingUrl"] = tracking_url
    parcel["orderLineIds"] = line_ids
    return encode([parcel] if options.shipment_as_array else parcel)


def cancellation_body(
    options: WireOptions,
    *,
    order_id: str,
    reason: str,
    refund_shipping: bool,
    lines: list[tuple[str, str | None]] | None,
) -> bytes:
    """Whole order (``lines`` None) or ``(lineId, offerId)`` pairs."""
    if lines is None:
        return encode(
            {
                options.cancel_order_key: order_id,
                "reason": reason,
                "shippingCostRefund": refund_shipping,
            }
        )
    items: list[dict[str, Any]] = []
    for line_id, offer_id in lines:
        item: dict[str, Any] = {"lineId": line_id, "reason": reason}
        if offer_id:
            item["offerId"] = offer_id
        if options.refund_in_lines:
            item["shippingCostRefund"] = refund_shipping
        items.append(item)
    body: dict[str, Any] = {"orderSellerId": order_id, "lines": items}
    if not options.refund_in_lines:
        body["shippingCostRefund"] = refund_shipping
    return encode(body)


def timestamp(value: dt.datetime) -> str:
    """ISO-8601 UTC with ``Z`` (§7 #9)."""
    if value.tzinfo is None:
        raise ValueError("timestamps sent to Octopia must be timezone-aware")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
