"""The simulator's Spresso: orders queued until paid and past the grace period, the
fulfilment status rules, shipments upserted by tracking number, and settlement.

Where Spresso's documentation is silent the rules are the adapter's assumptions
(``docs/channels/spresso.md``): ``delivered`` only after ``in_transit``, nothing after a
cancellation, no step back, a second ``in_transit`` only with the same quantities."""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orderhub_spresso import wire

PROGRESS_RANK = {status: rank for rank, status in enumerate(wire.PROGRESS)}


class SimError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def object_id() -> str:
    return secrets.token_hex(12)


def _without(doc: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != key}


def _stamp(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class SimFulfillment:
    id: str
    variants: dict[str, int]  # variant id -> quantity
    status: str = wire.ORDER_PLACED
    history: list[tuple[str, dt.datetime]] = field(default_factory=list)
    fulfilled: dict[str, int] | None = None  # settled by in_transit
    shipments: dict[str, dict[str, Any]] = field(default_factory=dict)  # by tracking number
    method: str = wire.CARRIER_DELIVERY
    location: str = field(default_factory=object_id)

    def set_status(self, status: str, at: dt.datetime) -> None:
        self.status = status
        self.history.append((status, at))


@dataclass
class SimOrder:
    id: str
    order_no: int
    created_at: dt.datetime
    variants: dict[str, dict[str, Any]]  # variant id -> {sku, upc, name, price}
    fulfillments: list[SimFulfillment]
    customer: dict[str, Any]
    address: dict[str, Any]
    paid_at: dt.datetime | None = None
    status: str = wire.ORDER_ON_FULFILLMENT_QUEUE
    history: list[tuple[str, dt.datetime]] = field(default_factory=list)
    settlements: int = 0  # in_transit updates that settled something (each once)
    external: dict[str, Any] = field(default_factory=dict)  # externalOrderId/-Status

    def fulfillment(self, fulfillment_id: str) -> SimFulfillment | None:
        return next((f for f in self.fulfillments if f.id == fulfillment_id), None)

    @property
    def visible(self) -> bool:
        """Sent to the fulfiller once: only then does the fulfilment API know it."""
        return any(s == wire.ORDER_SENT_TO_FULFILLER for s, _ in self.history)

    def set_status(self, status: str, at: dt.datetime) -> None:
        if self.status != status:
            self.status = status
            self.history.append((status, at))

    def derive_status(self, at: dt.datetime) -> None:
        """[inferred] in_transit / delivered once every fulfilment not cancelled is."""
        if self.status in (wire.CANCELLED, wire.ORDER_ON_FULFILLMENT_QUEUE):
            return
        live = [f.status for f in self.fulfillments if f.status != wire.CANCELLED]
        if live and all(s == wire.DELIVERED for s in live):
            self.set_status(wire.DELIVERED, at)
        elif live and all(s in wire.SHIPPED_STATUSES for s in live):
            self.set_status(wire.IN_TRANSIT, at)

    def fulfilled_quantity(self, variant_id: str) -> int:
        return sum((f.fulfilled or {}).get(variant_id, 0) for f in self.fulfillments)

    def charged(self) -> int:
        """What the customer is charged at settlement: fulfilled units only (cents)."""
        return sum(
            self.fulfilled_quantity(v) * int(info.get("price", 0))
            for v, info in self.variants.items()
        )

    def document(self) -> dict[str, Any]:
        """The Order object as Spresso shows it (strict JSON of the Data Model example)."""
        return {
            "id": self.id,
            "orderNo": self.order_no,
            "createdAt": _stamp(self.created_at),
            "status": self.status,
            "statusHistory": [{"status": s, "updatedAt": _stamp(t)} for s, t in self.history],
            "financialStatus": "authorized" if self.paid_at else "payment_pending",
            "user": self.customer,
            "shippingAddress": self.address,
            "orderVariants": [
                {
                    "id": f"ov-{variant_id}",
                    "quantity": sum(f.variants.get(variant_id, 0) for f in self.fulfillments),
                    "fulfilledQuantity": self.fulfilled_quantity(variant_id),
                    "variant": {
                        "id": variant_id,
                        **{k: info[k] for k in ("sku", "upc", "name") if k in info},
                    },
                }
                for variant_id, info in self.variants.items()
            ],
            "fulfillments": [
                {
                    "id": f.id,
                    "createdAt": _stamp(self.created_at),
                    "fulfillmentMethod": f.method,
                    "fulfillerLocation": f.location,
                    "fulfillmentVariants": [
                        {"quantity": q, "variant": v}
                        | ({"fulfilledQuantity": f.fulfilled[v]} if f.fulfilled else {})
                        for v, q in f.variants.items()
                    ],
                    "status": f.status,
                    "statusHistory": [{"status": s, "updatedAt": _stamp(t)} for s, t in f.history],
                }
                for f in self.fulfillments
            ],
        }


@dataclass
class OrderBook:
    clock: Callable[[], dt.datetime]
    grace_seconds: float = 600.0  # [doc] 10 minutes by default (2 on UAT)
    orders: dict[str, SimOrder] = field(default_factory=dict)
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(19618657))

    def reset(self) -> None:
        self.orders.clear()

    def place(self, spec: dict[str, Any]) -> SimOrder:
        """A customer order: ``variants`` [{id?, sku, name, upc?, price?}], ``fulfillments``
        [[{variant (index or id), quantity}]], ``paid`` (default true), ``method``."""
        now = self.clock()
        variants: dict[str, dict[str, Any]] = {}
        for number, v in enumerate(spec.get("variants") or ()):
            variants[str(v.get("id") or object_id())] = {"number": number, **v}
        ids = list(variants)
        fulfillments = []
        for group in spec.get("fulfillments") or ():
            wanted: dict[str, int] = {}
            for item in group:
                ref = item["variant"]
                variant_id = ids[ref] if isinstance(ref, int) else str(ref)
                if variant_id not in variants:
                    raise SimError(400, f"unknown variant {ref!r}")
                wanted[variant_id] = wanted.get(variant_id, 0) + int(item.get("quantity", 1))
            fulfillments.append(SimFulfillment(id=object_id(), variants=wanted))
        if not fulfillments:
            raise SimError(400, "an order needs at least one fulfillment")
        for f in fulfillments:
            f.method = str(spec.get("method") or wire.CARRIER_DELIVERY)
            f.set_status(wire.ORDER_PLACED, now)
        order = SimOrder(
            id=object_id(),
            order_no=next(self._numbers),
            created_at=now,
            variants={
                k: {kk: vv for kk, vv in v.items() if kk != "id"} for k, v in variants.items()
            },
            fulfillments=fulfillments,
            customer=spec.get("user")
            or {"id": object_id(), "email": "ada@example.com", "telephoneNumber": "+15550100"},
            address=spec.get("shippingAddress")
            or {
                "firstName": "Ada",
                "lastName": "Lovelace",
                "addressLine1": "1 Analytical Way",
                "city": "Brooklyn",
                "state": "NY",
                "postalCode": "11201",
                "country": "USA",
            },
        )
        order.set_status(wire.ORDER_ON_FULFILLMENT_QUEUE, now)
        if spec.get("paid", True):
            order.paid_at = now
        self.orders[order.id] = order
        return order

    def get(self, order_id: str) -> SimOrder:
        order = self.orders.get(order_id)
        if order is None:
            raise SimError(404, f"order {order_id} not found")
        return order

    def pay(self, order_id: str) -> SimOrder:
        order = self.get(order_id)
        order.paid_at = order.paid_at or self.clock()
        return order

    def due(self, *, force: bool = False) -> list[SimOrder]:
        """Orders that became fulfillable (paid, grace over): now sent to the fulfiller."""
        now = self.clock()
        found = []
        for order in self.orders.values():
            if order.status != wire.ORDER_ON_FULFILLMENT_QUEUE or order.paid_at is None:
                continue
            if force or (now - order.paid_at).total_seconds() >= self.grace_seconds:
                order.set_status(wire.ORDER_SENT_TO_FULFILLER, now)
                found.append(order)
        return found

    def cancel(self, order_id: str) -> tuple[SimOrder, bool]:
        """Cancelled in Foxtrot: True when the fulfiller must hear of it (it was sent)."""
        order = self.get(order_id)
        if order.status == wire.CANCELLED:
            return order, False
        now = self.clock()
        announce = order.visible
        for f in order.fulfillments:
            if f.status not in wire.SHIPPED_STATUSES:
                f.set_status(wire.CANCELLED, now)
        order.set_status(wire.CANCELLED, now)
        return order, announce

    def find_fulfillment(self, fulfillment_id: str) -> tuple[SimOrder, SimFulfillment]:
        for order in self.orders.values():
            found = order.fulfillment(fulfillment_id)
            if found is not None and order.visible:
                return order, found
        raise SimError(404, f"fulfillment {fulfillment_id} not found")

    def put_shipment(
        self, fulfillment_id: str, body: dict[str, Any], carriers: frozenset[str]
    ) -> SimOrder:
        order, f = self.find_fulfillment(fulfillment_id)
        if f.status == wire.CANCELLED:
            raise SimError(409, f"fulfillment {fulfillment_id} is cancelled")
        for key in ("carrier", "carrierReferenceId", "trackingNumber", "shipmentVariants"):
            if not body.get(key):
                raise SimError(400, f"{key} is required")
        if body["carrier"] not in carriers:
            raise SimError(400, f"carrier must be one of {', '.join(sorted(carriers))}")
        for item in body["shipmentVariants"]:
            if f.variants.get(item.get("variant"), 0) < int(item.get("quantity") or 0) or (
                int(item.get("quantity") or 0) < 1
            ):
                raise SimError(400, f"shipmentVariants: {item} is not in {fulfillment_id}")
        f.shipments[str(body["trackingNumber"])] = {**body, "at": _stamp(self.clock())}
        return order

    def update_fulfillment(self, fulfillment_id: str, body: dict[str, Any]) -> SimOrder:
        order, f = self.find_fulfillment(fulfillment_id)
        status = body.get("status")
        now = self.clock()
        if f.status == wire.CANCELLED or order.status == wire.CANCELLED:
            raise SimError(409, f"fulfillment {fulfillment_id} is cancelled")
        if status == wire.IN_TRANSIT:
            self._in_transit(order, f, body.get("fulfillmentVariants"), now)
        elif status == wire.DELIVERED:
            if f.status not in wire.SHIPPED_STATUSES:
                raise SimError(409, f"fulfillment {fulfillment_id} is not in_transit yet")
            if f.status != wire.DELIVERED:
                f.set_status(wire.DELIVERED, now)
        elif status in PROGRESS_RANK:
            if f.status in wire.SHIPPED_STATUSES or PROGRESS_RANK[status] < PROGRESS_RANK.get(
                f.status, 0
            ):
                raise SimError(409, f"fulfillment {fulfillment_id} is {f.status}, not {status}")
            if status != f.status:
                f.set_status(status, now)
        else:
            raise SimError(400, f"status {status!r} is not a fulfillment status")
        for key in ("externalOrderId", "externalOrderStatus"):
            if key in body:
                order.external[key] = body[key]
        order.derive_status(now)
        return order

    def _in_transit(
        self, order: SimOrder, f: SimFulfillment, listed: Any, now: dt.datetime
    ) -> None:
        if not isinstance(listed, list):
            raise SimError(400, "fulfillmentVariants is required with in_transit")
        quantities: dict[str, int] = {}
        for item in listed:
            variant, number = item.get("variant"), item.get("fulfilledQuantity")
            if variant not in f.variants or not isinstance(number, int):
                raise SimError(400, f"fulfillmentVariants: {item} is not in {f.id}")
            if not 0 <= number <= f.variants[variant]:
                raise SimError(
                    400, f"fulfilledQuantity of {variant} must be 0..{f.variants[variant]}"
                )
            quantities[variant] = number
        if set(quantities) != set(f.variants):
            raise SimError(400, "fulfillmentVariants must list every variant of the fulfillment")
        if f.status in wire.SHIPPED_STATUSES:
            if f.fulfilled != quantities:
                raise SimError(409, f"fulfillment {f.id} is already {f.status} with {f.fulfilled}")
            return  # the same update again: nothing changes, nothing is charged twice
        f.fulfilled = quantities
        f.set_status(wire.IN_TRANSIT, now)
        order.settlements += 1
