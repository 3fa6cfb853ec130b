"""The simulator's in-memory topi: orders, their rules, tokens. No HTTP here."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

import msgspec

from orderhub_topi.wire import (
    ASSET_CREATED,
    ASSET_REJECTED,
    ASSET_SHIPPED,
    CONTRACT_PAY_NOW,
    CONTRACT_RENT,
    NO_SERIAL_NUMBER,
    ORDER_ACKNOWLEDGED,
    ORDER_CANCELED,
    ORDER_COMPLETED,
    ORDER_CONFIRMED,
    ORDER_CREATED,
    ORDER_PARTIALLY_FULFILLED,
    ORDER_REJECTED,
    Asset,
    CustomerInfo,
    FullOrderResult,
    MoneyAmount,
    OrderLine,
    OrderLineItem,
    OrderResult,
    OrderSummary,
    OrderWebhook,
    PaginationMetadata,
    SellerInfo,
    SellerProductReference,
    ShipmentRequest,
    ShippingAddress,
    ShippingInfo,
)

_PRODUCT_NAMESPACE: Final = uuid.UUID("5b0c7f4e-3f0e-4a55-9a43-6f0b6d1f3c11")
DEFAULT_PAGE_SIZE: Final = 20
MAX_PAGE_SIZE: Final = 100


class SimError(Exception):
    """A refusal rendered as topi's Error body (``application/vnd.goa.error``)."""

    def __init__(self, status_code: int, name: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.name = name
        self.message = message


def not_found(order_id: str) -> SimError:
    return SimError(404, "not_found", f"order {order_id} not found")


def bad_request(message: str) -> SimError:
    return SimError(400, "bad_request", message)


# --------------------------------------------------------------------------
# Control-API input: a customer order
# --------------------------------------------------------------------------


class SubLineSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A bundle component. Quantity and, unless given, contract terms follow the parent
    ("each subline maintains the same contract terms and quantity as the parent")."""

    title: str
    sku: str
    source: str = "sku"
    contract_type: str | None = None
    duration: int | None = None
    #: Whether the product can be rented (so needs a serial number when shipped).
    #: Default: the line's contract type is rent.
    rent_option: bool | None = None
    product_id: str | None = None
    subtitle: str = ""
    unit_price: MoneyAmount | None = None
    monthly_price: MoneyAmount | None = None


class LineSpec(SubLineSpec, kw_only=True, forbid_unknown_fields=True):
    quantity: int = 1
    sublines: list[SubLineSpec] = msgspec.field(default_factory=list)


class OrderSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Body of ``POST /_sim/orders``."""

    lines: list[LineSpec]
    seller_offer_reference: str | None = None
    customer: CustomerInfo | None = None
    shipping_address: ShippingAddress | None = None
    created_at: dt.datetime | None = None
    currency: str = "EUR"
    metadata: dict[str, str] | None = None


# --------------------------------------------------------------------------
# Ids
# --------------------------------------------------------------------------


def time_ordered_id(when: dt.datetime) -> str:
    """A UUIDv7 whose order follows ``when`` to the microsecond (rand_a holds the
    sub-millisecond fraction), so sorting by id equals sorting by created_at."""
    micros = int(when.timestamp() * 1_000_000)
    millis, sub_ms = divmod(micros, 1000)
    sub = sub_ms * 4096 // 1000  # 12 bits
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | sub << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


def product_id_for(source: str, sku: str) -> str:
    return str(uuid.uuid5(_PRODUCT_NAMESPACE, f"{source}:{sku}"))


# --------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------


@dataclass
class SimOrder:
    id: str
    offer_id: str
    seller_offer_reference: str
    status: str
    created_at: dt.datetime
    customer_info: CustomerInfo
    shipping_address: ShippingAddress
    order_lines: list[OrderLineItem]
    assets: list[Asset]
    #: Assets of products with a rent option: shipping them needs a serial number.
    serial_required: set[str] = field(default_factory=set)
    metadata: dict[str, str] = field(default_factory=dict)
    tracking_urls: list[str] = field(default_factory=list)
    canceled_at: dt.datetime | None = None
    currency: str = "EUR"

    def full(self) -> FullOrderResult:
        return FullOrderResult(
            id=self.id,
            status=self.status,
            created_at=self.created_at,
            offer_created_at=self.created_at - dt.timedelta(minutes=5),
            canceled_at=self.canceled_at,
            assets=list(self.assets),
            order_lines=list(self.order_lines),
            offer_id=self.offer_id,
            seller_offer_reference=self.seller_offer_reference,
            customer_info=self.customer_info,
            shipping_address=self.shipping_address,
            shipping_info=ShippingInfo(
                seller_shipping_reference="Sandbox Shipping Service",
                price=MoneyAmount(currency=self.currency, gross=0, net=0),
                is_in_store_pickup=False,
            ),
            seller_info=SellerInfo(
                id="00000000-0000-4000-8000-000000000001",
                name="Simulated Seller",
                currency=self.currency,
                product_reference_source="sku",
            ),
            metadata=dict(self.metadata),
            tracking_urls=list(self.tracking_urls),
        )

    def result(self) -> OrderResult:
        return OrderResult(
            id=self.id,
            status=self.status,
            assets=list(self.assets),
            offer_id=self.offer_id,
            seller_offer_reference=self.seller_offer_reference,
            metadata=dict(self.metadata),
        )

    def summary(self) -> OrderSummary:
        company = self.customer_info.company
        return OrderSummary(
            id=self.id,
            status=self.status,
            created_at=self.created_at,
            offer_id=self.offer_id,
            seller_offer_reference=self.seller_offer_reference,
            agent_name="",
            company_name=company.name if company and company.name else "",
            full_name=self.customer_info.full_name or "",
        )

    def webhook(self) -> OrderWebhook:
        addr = self.shipping_address
        # The webhook documents the recipient as "name" (FullOrderResult: recipient_name).
        hook_addr = msgspec.structs.replace(addr, name=addr.recipient, recipient_name=None)
        return OrderWebhook(
            id=self.id,
            status=self.status,
            assets=list(self.assets),
            metadata=dict(self.metadata),
            offer_id=self.offer_id,
            seller_offer_reference=self.seller_offer_reference,
            shipping_address=hook_addr,
        )


def _default_prices(contract_type: str, currency: str) -> tuple[MoneyAmount, MoneyAmount]:
    unit = MoneyAmount(currency=currency, gross=119000, net=100000)
    monthly = (
        MoneyAmount(currency=currency, gross=5950, net=5000)
        if contract_type == CONTRACT_RENT
        else MoneyAmount(currency=currency, gross=0, net=0)
    )
    return unit, monthly


def _build_line(
    spec: SubLineSpec,
    *,
    quantity: int,
    contract_type: str,
    duration: int,
    currency: str,
    sublines: list[OrderLine] | None = None,
) -> OrderLineItem:
    unit, monthly = _default_prices(contract_type, currency)
    return OrderLineItem(
        title=spec.title,
        subtitle=spec.subtitle,
        quantity=quantity,
        contract_type=contract_type,
        duration=duration,
        product_id=spec.product_id or product_id_for(spec.source, spec.sku),
        pretty_id=spec.sku,
        seller_product_references=[SellerProductReference(source=spec.source, reference=spec.sku)],
        unit_price=spec.unit_price or unit,
        monthly_price=spec.monthly_price or monthly,
        base_rental_price=spec.monthly_price or monthly,
        selected_first_party_services=[],
        sublines=sublines or [],
    )


def _check_contract(contract_type: str) -> str:
    if contract_type not in (CONTRACT_RENT, CONTRACT_PAY_NOW):
        raise bad_request(f"contract_type must be rent or pay_now, not {contract_type!r}")
    return contract_type


def build_order(spec: OrderSpec, *, now: dt.datetime) -> SimOrder:
    """A new order in status created, one asset per unit of every line and sub-line."""
    if not spec.lines:
        raise bad_request("an order needs at least one line")
    created_at = spec.created_at or now
    if created_at.tzinfo is None:
        raise bad_request("created_at must carry a timezone")
    order_id = time_ordered_id(created_at)
    lines: list[OrderLineItem] = []
    assets: list[Asset] = []
    serial_required: set[str] = set()

    def add_assets(line: OrderLine, rent_option: bool) -> None:
        assert line.product_id is not None
        for _ in range(line.quantity):
            asset = Asset(
                id=str(uuid.uuid4()),
                product_id=line.product_id,
                title=line.title,
                seller_product_references=list(line.seller_product_references),
                status=ASSET_CREATED,
            )
            assets.append(asset)
            if rent_option:
                serial_required.add(asset.id)

    for spec_line in spec.lines:
        if spec_line.quantity < 1:
            raise bad_request(f"line {spec_line.sku}: quantity must be at least 1")
        contract = _check_contract(spec_line.contract_type or CONTRACT_RENT)
        duration = spec_line.duration
        if duration is None:
            duration = 12 if contract == CONTRACT_RENT else 0
        sublines: list[OrderLine] = []
        sub_rent: list[bool] = []
        for sub in spec_line.sublines:
            sub_contract = _check_contract(sub.contract_type or contract)
            sub_line = _build_line(
                sub,
                quantity=spec_line.quantity,
                contract_type=sub_contract,
                duration=sub.duration if sub.duration is not None else duration,
                currency=spec.currency,
            )
            # A sub-line is a BaseOrderLineItem: no nested sublines.
            sublines.append(
                OrderLine(**{f: getattr(sub_line, f) for f in OrderLine.__struct_fields__})
            )
            sub_rent.append(
                sub.rent_option if sub.rent_option is not None else sub_contract == CONTRACT_RENT
            )
        line = _build_line(
            spec_line,
            quantity=spec_line.quantity,
            contract_type=contract,
            duration=duration,
            currency=spec.currency,
            sublines=sublines,
        )
        lines.append(line)
        rent = (
            spec_line.rent_option
            if spec_line.rent_option is not None
            else contract == CONTRACT_RENT
        )
        add_assets(line, rent)
        for sub_line_, rent_ in zip(sublines, sub_rent, strict=True):
            add_assets(sub_line_, rent_)

    customer = spec.customer or CustomerInfo(
        full_name="Alice Example", email="alice@example.com", phone_number="+49 89 1234567"
    )
    address = spec.shipping_address or ShippingAddress(
        line1="Leopoldstr. 1",
        postal_code="80802",
        city="Munich",
        country_code="DE",
        region="Bavaria",
        recipient_name=customer.full_name,
    )
    return SimOrder(
        id=order_id,
        offer_id=str(uuid.uuid4()),
        seller_offer_reference=spec.seller_offer_reference or f"offer-{secrets.token_hex(4)}",
        status=ORDER_CREATED,
        created_at=created_at,
        customer_info=customer,
        shipping_address=address,
        order_lines=lines,
        assets=assets,
        serial_required=serial_required,
        metadata=dict(spec.metadata or {}),
        currency=spec.currency,
    )


@dataclass(frozen=True)
class Transition:
    order: SimOrder
    previous_status: str

    @property
    def changed(self) -> bool:
        return self.order.status != self.previous_status


def _refuse(order: SimOrder, action: str, allowed: Iterable[str]) -> SimError:
    allowed_text = " or ".join(f'"{s}"' for s in allowed)
    return SimError(
        422,
        "invalid_status",
        f'order {order.id} is in status "{order.status}": you can only {action} orders '
        f"that have been in the status {allowed_text}",
    )


@dataclass(frozen=True)
class ListQuery:
    limit: int = DEFAULT_PAGE_SIZE
    page: int = 1
    sort_desc: bool = False
    created_at_gt: dt.datetime | None = None
    created_at_gte: dt.datetime | None = None
    created_at_lt: dt.datetime | None = None
    created_at_lte: dt.datetime | None = None
    id_gt: str | None = None
    id_gte: str | None = None
    id_lt: str | None = None
    id_lte: str | None = None

    def matches(self, o: SimOrder) -> bool:
        oid = o.id.lower()
        checks = (
            self.created_at_gt is None or o.created_at > self.created_at_gt,
            self.created_at_gte is None or o.created_at >= self.created_at_gte,
            self.created_at_lt is None or o.created_at < self.created_at_lt,
            self.created_at_lte is None or o.created_at <= self.created_at_lte,
            self.id_gt is None or oid > self.id_gt.lower(),
            self.id_gte is None or oid >= self.id_gte.lower(),
            self.id_lt is None or oid < self.id_lt.lower(),
            self.id_lte is None or oid <= self.id_lte.lower(),
        )
        return all(checks)


class OrderBook:
    """All orders, with topi's rules for every transition."""

    def __init__(self, *, clock: Callable[[], dt.datetime]) -> None:
        self._clock = clock
        self.orders: dict[str, SimOrder] = {}

    def now(self) -> dt.datetime:
        return self._clock()

    def add(self, order: SimOrder) -> SimOrder:
        if order.id in self.orders:
            raise SimError(409, "conflict", f"order {order.id} already exists")
        self.orders[order.id] = order
        return order

    def create(self, spec: OrderSpec) -> Transition:
        order = self.add(build_order(spec, now=self.now()))
        return Transition(order, previous_status="")

    def get(self, order_id: str) -> SimOrder:
        order = self.orders.get(order_id)
        if order is None:
            raise not_found(order_id)
        return order

    def acknowledge(self, order_id: str) -> Transition:
        order = self.get(order_id)
        if order.status != ORDER_CREATED:
            raise _refuse(order, "acknowledge", [ORDER_CREATED])
        return self._move(order, ORDER_ACKNOWLEDGED)

    def accept(self, order_id: str) -> Transition:
        order = self.get(order_id)
        if order.status not in (ORDER_CREATED, ORDER_ACKNOWLEDGED):
            raise _refuse(order, "accept", [ORDER_CREATED, ORDER_ACKNOWLEDGED])
        return self._move(order, ORDER_CONFIRMED)

    def reject(self, order_id: str) -> Transition:
        order = self.get(order_id)
        if order.status not in (ORDER_CREATED, ORDER_ACKNOWLEDGED):
            raise _refuse(order, "reject", [ORDER_CREATED, ORDER_ACKNOWLEDGED])
        order.assets = [msgspec.structs.replace(a, status=ASSET_REJECTED) for a in order.assets]
        return self._move(order, ORDER_REJECTED)

    def cancel(self, order_id: str) -> Transition:
        """The customer cancels through topi (no seller endpoint does this)."""
        order = self.get(order_id)
        if order.status == ORDER_COMPLETED:
            raise SimError(
                409,
                "invalid_status",
                f"order {order.id} is completed: a cancellation is handled as a return",
            )
        if order.status in (ORDER_CANCELED, ORDER_REJECTED):
            raise SimError(409, "invalid_status", f'order {order.id} is already "{order.status}"')
        order.canceled_at = self.now()
        return self._move(order, ORDER_CANCELED)

    def set_metadata(self, order_id: str, metadata: dict[str, str]) -> SimOrder:
        order = self.get(order_id)
        for key, value in metadata.items():
            if len(value) > 400:
                raise bad_request(f"metadata value for {key!r} is longer than 400 characters")
        order.metadata.update(metadata)
        return order

    def ship(self, request: ShipmentRequest) -> Transition:
        """Register shipped units; all-or-nothing: one bad entry refuses the whole request."""
        order = self.get(request.order_id)
        if order.status not in (ORDER_CONFIRMED, ORDER_PARTIALLY_FULFILLED):
            raise bad_request(
                f'order {order.id} is in status "{order.status}": shipments can only be '
                f'created for orders in status "{ORDER_CONFIRMED}" or '
                f'"{ORDER_PARTIALLY_FULFILLED}"'
            )
        if not request.serial_numbers:
            raise bad_request("serial_numbers must list at least one asset")
        if request.tracking_url is not None and not request.tracking_url.startswith(
            ("http://", "https://")
        ):
            raise bad_request("tracking_url must be an http(s) URI")
        known_serials = {a.serial_number for a in order.assets if a.serial_number}
        chosen: dict[int, str] = {}
        for entry in request.serial_numbers:
            ref = entry.seller_product_reference
            label = f"{ref.source}:{ref.reference}"
            matching = [i for i, a in enumerate(order.assets) if ref in a.seller_product_references]
            if not matching:
                raise bad_request(f"order {order.id} has no asset with seller product {label}")
            free = [
                i for i in matching if order.assets[i].status == ASSET_CREATED and i not in chosen
            ]
            if not free:
                raise bad_request(
                    f"every asset with seller product {label} of order {order.id} "
                    "has already been shipped"
                )
            index = free[0]
            asset = order.assets[index]
            serial = entry.serial_number.strip()
            if serial == NO_SERIAL_NUMBER and asset.id in order.serial_required:
                raise bad_request(
                    f'asset {asset.id} ("{asset.title}", {label}) has a rent option and '
                    "requires a serial number"
                )
            if serial and serial in known_serials:
                raise bad_request(
                    f"serial number {serial!r} is already registered on order {order.id}"
                )
            if serial:
                known_serials.add(serial)
            chosen[index] = serial
        for index, serial in chosen.items():
            order.assets[index] = msgspec.structs.replace(
                order.assets[index],
                status=ASSET_SHIPPED,
                serial_number=serial,
                tracking_url=request.tracking_url,
            )
        if request.tracking_url and request.tracking_url not in order.tracking_urls:
            order.tracking_urls.append(request.tracking_url)
        if request.metadata:
            order.metadata.update(request.metadata)
        shipped_all = all(a.status == ASSET_SHIPPED for a in order.assets)
        return self._move(order, ORDER_COMPLETED if shipped_all else ORDER_PARTIALLY_FULFILLED)

    def list(self, query: ListQuery) -> tuple[list[OrderSummary], PaginationMetadata]:
        rows = sorted(
            (o for o in self.orders.values() if query.matches(o)),
            key=lambda o: (o.created_at, o.id.lower()),
            reverse=query.sort_desc,
        )
        total = len(rows)
        start = (query.page - 1) * query.limit
        page = rows[start : start + query.limit]
        meta = PaginationMetadata(
            page=query.page,
            page_size=query.limit,
            total_count=total,
            total_pages=(total + query.limit - 1) // query.limit,
        )
        return [o.summary() for o in page], meta

    @staticmethod
    def _move(order: SimOrder, status: str) -> Transition:
        previous = order.status
        order.status = status
        return Transition(order, previous_status=previous)


# --------------------------------------------------------------------------
# OAuth2
# --------------------------------------------------------------------------


@dataclass
class TokenStore:
    clients: dict[str, str]
    ttl_seconds: int
    clock: Callable[[], float]
    static_tokens: frozenset[str] = frozenset()
    issued: dict[str, float] = field(default_factory=dict)

    def issue(self, client_id: str, client_secret: str) -> str | None:
        expected = self.clients.get(client_id)
        if expected is None or not secrets.compare_digest(expected, client_secret):
            return None
        token = secrets.token_urlsafe(32)
        self.issued[token] = self.clock() + self.ttl_seconds
        return token

    def valid(self, token: str) -> bool:
        if token in self.static_tokens:
            return True
        expires = self.issued.get(token)
        return expires is not None and self.clock() < expires

    def revoke_all(self) -> int:
        count = len(self.issued)
        self.issued.clear()
        return count
