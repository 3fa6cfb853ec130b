"""The ``spresso`` profile's wire: Spresso's Order object as a webhook body, its
signature, its natural dedupe key, and the fulfilment calls (see the Spresso reference).

Webhook body: the Spresso Order object (strict JSON), with an optional ``event`` field
(``order_fulfillable`` or ``order_cancelled``; absent: ``order_cancelled`` when the order's
``status`` is ``cancelled``, else ``order_fulfillable``)::

    {"event": "order_fulfillable", "id": "65820634daf0b556858ed591", "orderNo": 19618657,
     "createdAt": "2026-01-05T10:00:00.000Z", "status": "sent_to_fulfiller",
     "statusHistory": [{"status": "sent_to_fulfiller", "updatedAt": "..."}],
     "user": {"id": "u1", "email": "...", "telephoneNumber": "..."},
     "shippingAddress": {"firstName": "...", "lastName": "...", "addressLine1": "...",
                         "city": "...", "postalCode": "...", "country": "USA"},
     "orderVariants": [{"id": "ov1", "quantity": 2,
                        "variant": {"id": "V1", "sku": "SKU-1", "name": "Coffee"}}],
     "fulfillments": [{"id": "F1", "fulfillmentMethod": "carrier_delivery",
                       "status": "order_placed",
                       "fulfillmentVariants": [{"variant": "V1", "quantity": 1}]}, ...]}

Each fulfilment's variant is one line keyed ``F:V`` (fulfilment id : variant id), so a
variant split over two fulfilments stays two lines. A body without ``fulfillments`` is
read as the test channel's own document (see :mod:`orderhub.testing.channel`).

Signature: ``X-Spresso-Hmac-SHA256``, the base64 HMAC-SHA256 of the raw body keyed with
the account's client secret (setting ``client_secrets``: several during a rotation)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import msgspec

from orderhub.channels.signatures import body_signature, verify_body_signature
from orderhub.channels.spi import AccountConfig, CommandKind, FollowUp, WebhookVerdict
from orderhub.domain.model import (
    CancellationSnapshot,
    ChannelSnapshot,
    Fulfilment,
    FulfilmentSnapshot,
    LineSnapshot,
    Order,
)
from orderhub.domain.values import (
    Address,
    Customer,
    FulfilledBy,
    FulfilmentStatus,
    Initiator,
    Reason,
    RequestState,
)
from orderhub.testing.channel.documents import InvalidTestOrder

SIGNATURE_HEADER: Final = "X-Spresso-Hmac-SHA256"
SCHEME: Final = "spresso-hmac"
ORDER_FULFILLABLE: Final = "order_fulfillable"
ORDER_CANCELLED: Final = "order_cancelled"
CARRIER_DELIVERY: Final = "carrier_delivery"
IN_TRANSIT: Final = "in_transit"
DELIVERED: Final = "delivered"
CANCELLED: Final = "cancelled"
VARIANT_EXTRA: Final = "variant"
_COUNTRIES: Final = {"USA": "US", "DEU": "DE", "FRA": "FR", "GBR": "GB", "CAN": "CA"}


class InvalidSpressoOrder(InvalidTestOrder):
    """A Spresso webhook body that cannot be read as an Order."""


class _StatusEntry(msgspec.Struct, rename="camel", kw_only=True):
    status: str
    updated_at: datetime


class _User(msgspec.Struct, rename="camel", kw_only=True):
    id: str | None = None
    email: str | None = None
    telephone_number: str | None = None


class _Address(msgspec.Struct, rename="camel", kw_only=True):
    first_name: str | None = None
    last_name: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    country: str | None = None
    telephone_number: str | None = None


class _Variant(msgspec.Struct, rename="camel", kw_only=True):
    id: str
    sku: str | None = None
    upc: str | None = None
    name: str | None = None


class _OrderVariant(msgspec.Struct, rename="camel", kw_only=True):
    id: str
    quantity: int
    variant: _Variant
    fulfilled_quantity: int | None = None


class _FulfillmentVariant(msgspec.Struct, rename="camel", kw_only=True):
    variant: str
    quantity: int


class _Fulfillment(msgspec.Struct, rename="camel", kw_only=True):
    id: str
    fulfillment_variants: list[_FulfillmentVariant]
    status: str | None = None
    fulfillment_method: str | None = None
    fulfiller_location: str | None = None
    created_at: datetime | None = None
    status_history: list[_StatusEntry] = msgspec.field(default_factory=list)


class SpressoOrder(msgspec.Struct, rename="camel", kw_only=True):
    id: str
    status: str
    fulfillments: list[_Fulfillment]
    event: str | None = None
    order_no: int | None = None
    created_at: datetime | None = None
    status_history: list[_StatusEntry] = msgspec.field(default_factory=list)
    financial_status: str | None = None
    user: _User | None = None
    shipping_address: _Address | None = None
    order_variants: list[_OrderVariant] = msgspec.field(default_factory=list)

    @property
    def event_name(self) -> str:
        if self.event:
            return self.event
        return ORDER_CANCELLED if self.status == CANCELLED else ORDER_FULFILLABLE

    @property
    def updated_at(self) -> datetime | None:
        stamps = [entry.updated_at for entry in self.status_history]
        return max(stamps) if stamps else self.created_at


def is_spresso(body: bytes) -> bool:
    """A Spresso Order (it has ``fulfillments``), not the test channel's own document."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return isinstance(parsed, dict) and "fulfillments" in parsed


def decode(body: bytes) -> SpressoOrder:
    try:
        return msgspec.json.decode(body, type=SpressoOrder)
    except msgspec.DecodeError as exc:
        raise InvalidSpressoOrder(f"not a Spresso order: {exc}") from exc


def dedupe_key(order: SpressoOrder) -> str:
    """Spresso gives no event id: event, order id, order status and its newest status time."""
    stamp = order.updated_at.isoformat() if order.updated_at else ""
    return f"{order.event_name}:{order.id}:{order.status}:{stamp}"


def line_key(fulfilment_id: str, variant_id: str) -> str:
    return f"{fulfilment_id}:{variant_id}"


def to_snapshot(order: SpressoOrder) -> ChannelSnapshot:
    variants = {ov.variant.id: ov.variant for ov in order.order_variants}
    lines: list[LineSnapshot] = []
    for f in order.fulfillments:
        if f.fulfillment_method not in (None, CARRIER_DELIVERY):
            raise InvalidSpressoOrder(
                f"order {order.id}: fulfillment {f.id} is {f.fulfillment_method!r}; only "
                f"{CARRIER_DELIVERY} is handled"
            )
        for fv in f.fulfillment_variants:
            if fv.quantity < 1:
                raise InvalidSpressoOrder(f"order {order.id}: {f.id}/{fv.variant} has no units")
            known = variants.get(fv.variant)
            lines.append(
                LineSnapshot(
                    channel_line_id=line_key(f.id, fv.variant),
                    sku=known.sku if known else None,
                    title=(known.name or known.sku or fv.variant) if known else fv.variant,
                    quantity=fv.quantity,
                    channel_fulfilment_id=f.id,
                    extras={VARIANT_EXTRA: fv.variant, "upc": known.upc if known else None},
                )
            )
    return ChannelSnapshot(
        channel_order_id=order.id,
        channel_status=order.status,
        lines=tuple(lines),
        order_number=str(order.order_no) if order.order_no is not None else None,
        customer=_customer(order),
        shipping_address=_address(order.shipping_address),
        placed_at=order.created_at,
        updated_at=order.updated_at,
        fulfilments=tuple(
            FulfilmentSnapshot(
                channel_fulfilment_id=f.id,
                fulfilled_by=FulfilledBy.SELLER,
                extras={"fulfiller_location": f.fulfiller_location},
            )
            for f in order.fulfillments
        ),
        released=True,  # fulfillable: paid, past the grace period, nothing to accept
        cancellations=_cancellations(order),
        extras={"order_no": order.order_no, "financial_status": order.financial_status},
    )


def _customer(order: SpressoOrder) -> Customer | None:
    address, user = order.shipping_address, order.user
    if user is None and address is None:
        return None
    name = " ".join(p for p in (address.first_name, address.last_name) if p) if address else ""
    return Customer(
        name=name or None,
        email=user.email if user else None,
        phone=user.telephone_number if user else None,
    )


def _address(address: _Address | None) -> Address | None:
    if address is None:
        return None
    country = address.country
    return Address(
        name=" ".join(p for p in (address.first_name, address.last_name) if p) or None,
        line1=address.address_line1,
        line2=address.address_line2,
        postal_code=address.postal_code,
        city=address.city,
        region=address.state,
        country_code=_COUNTRIES.get(country, country) if country else None,
        phone=address.telephone_number,
    )


def _cancellations(order: SpressoOrder) -> tuple[CancellationSnapshot, ...]:
    if order.event_name == ORDER_CANCELLED or order.status == CANCELLED:
        return (
            CancellationSnapshot(
                channel_cancellation_id=f"{order.id}:{CANCELLED}",
                initiator=Initiator.CHANNEL,
                reason=Reason.CHANNEL_CANCELLED,
                state=RequestState.ACCEPTED,
                channel_reason=ORDER_CANCELLED,
            ),
        )
    return tuple(
        CancellationSnapshot(
            channel_cancellation_id=f"{f.id}:{CANCELLED}",
            initiator=Initiator.CHANNEL,
            reason=Reason.CHANNEL_CANCELLED,
            state=RequestState.ACCEPTED,
            channel_reason=CANCELLED,
            lines=tuple((line_key(f.id, fv.variant), fv.quantity) for fv in f.fulfillment_variants),
        )
        for f in order.fulfillments
        if f.status == CANCELLED
    )


# --- webhooks -------------------------------------------------------------------------------


def client_secrets(config: AccountConfig) -> tuple[str, ...]:
    raw = config.settings.get("client_secrets") or ()
    if isinstance(raw, str):
        return (raw,)
    return tuple(str(secret) for secret in raw)


def sign(secret: str, body: bytes) -> dict[str, str]:
    """The header a Spresso webhook carries (what the channel server sends)."""
    return {SIGNATURE_HEADER: body_signature(secret, body)}


def verify(
    headers: Mapping[str, str], body: bytes, secrets: Sequence[str]
) -> WebhookVerdict | None:
    """None without the header (not this scheme: the account's configured methods decide)."""
    wanted = SIGNATURE_HEADER.lower()
    presented = next((v for k, v in headers.items() if k.lower() == wanted), None)
    return verify_body_signature(presented, body, secrets, scheme=SCHEME)


# --- outbound -------------------------------------------------------------------------------


def variant_of(line_extras: Mapping[str, Any], channel_line_id: str) -> str:
    variant = line_extras.get(VARIANT_EXTRA)
    return str(variant) if variant else channel_line_id.rpartition(":")[2]


def close_fulfilment(order: Order, fulfilment: Fulfilment) -> Sequence[FollowUp]:
    """A fulfilment our warehouse shipped (whole, or closed short) goes ``in_transit`` with
    every variant's fulfilled quantity, frozen now (a short ship: fewer; the rest is
    cancelled ``out_of_stock`` in the hub and not charged by Spresso)."""
    if (
        fulfilment.status is not FulfilmentStatus.SHIPPED
        or fulfilment.fulfilled_by is not FulfilledBy.SELLER
        or fulfilment.channel_fulfilment_id is None
    ):
        return ()
    lines = [line for line in order.leaf_lines if line.fulfilment_id == fulfilment.id]
    return (
        FollowUp(
            kind=CommandKind.CLOSE_FULFILMENT,
            payload={
                "fulfilment_id": fulfilment.id,
                "channel_fulfilment_id": fulfilment.channel_fulfilment_id,
                "status": IN_TRANSIT,
                "variants": [
                    {
                        "line_id": line.id,
                        "variant": variant_of(line.extras, line.channel_line_id),
                        "quantity": line.quantity,
                        "fulfilled_quantity": line.shipped,
                    }
                    for line in lines
                ],
            },
        ),
    )


def request(kind: CommandKind, payload: Mapping[str, Any], order: Order) -> dict[str, Any] | None:
    """The Spresso call a command makes (``method``, ``path``, ``body``); None: no call
    (a short close is carried by the ``in_transit`` that follows it)."""
    fulfilment_id = payload.get("fulfilment_id")
    fulfilment = order.fulfilment(fulfilment_id) if isinstance(fulfilment_id, str) else None
    channel_id = (fulfilment.channel_fulfilment_id if fulfilment else None) or fulfilment_id
    path = f"/v1/fulfillments/{channel_id}"
    if kind is CommandKind.SHIP:
        lines = {line.id: line for line in order.lines}
        tracking = payload.get("tracking_number")
        body: dict[str, Any] = {
            "carrier": str(payload.get("carrier") or "").lower(),
            "carrierReferenceId": tracking,
            "trackingNumber": tracking,
            "shipmentVariants": [
                {
                    "variant": variant_of(
                        lines[i["line_id"]].extras, lines[i["line_id"]].channel_line_id
                    ),
                    "quantity": i["quantity"],
                }
                for i in payload.get("items") or ()
            ],
        }
        if payload.get("tracking_url"):
            body["trackingUrl"] = payload["tracking_url"]
        return {"method": "PUT", "path": f"{path}/shipments", "body": body}
    if kind is CommandKind.CLOSE_FULFILMENT:
        variants = [
            {"variant": v["variant"], "fulfilledQuantity": v["fulfilled_quantity"]}
            for v in payload.get("variants") or ()
        ]
        body = {"status": IN_TRANSIT, "fulfillmentVariants": variants}
        return {"method": "PUT", "path": path, "body": body}
    if kind is CommandKind.DELIVER:
        return {"method": "PUT", "path": path, "body": {"status": DELIVERED}}
    return None
