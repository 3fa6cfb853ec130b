"""The simulator's marketplace: orders, their lines and requests, Octopia's rules per
sales channel, and the moves the marketplace makes by itself (payment, delivery, the
customer's cancellation requests and their outcome). Orders are kept in Octopia's JSON
shape; every change stamps ``updatedAt`` and the line's ``statusEvents``."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from typing import Any, Final, cast

from orderhub_octopia import wire

RANK: Final = {
    wire.WAITING_ACCEPTANCE: 0,
    wire.ACCEPTED: 1,
    wire.IN_PREPARATION: 2,
    wire.SHIPPED: 3,
    wire.DELIVERED: 4,
}
DEFAULT_CARRIERS: Final = (
    {"code": "pcc", "label": "Colissimo"},
    {"code": "pcc", "label": "Chronopost"},
    {"code": "ups", "label": "UPS"},
    {"code": "dhl", "label": "DHL "},
    {"code": "autre", "label": "Autre"},
)


class Refused(Exception):
    """The marketplace refuses a call: an RFC 9457 problem with Octopia's extra keys."""

    def __init__(self, status: int, title: str, detail: str, errors: dict[str, Any] | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.errors = status, title, detail, errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "about:blank", "title": self.title, "status": self.status}
        body["detail"] = self.detail
        if self.errors:
            body["errors"] = self.errors
        body["traceId"] = "sim-trace"
        return body


@dataclass(frozen=True, kw_only=True)
class Rules:
    line_level: bool = True
    manual_acceptance: bool = True
    one_parcel_per_order: bool = False
    line_cancellation: bool | None = None
    refusal_ships: bool = False
    invoices: bool = True

    @property
    def cancels_lines(self) -> bool:
        return self.line_level if self.line_cancellation is None else self.line_cancellation


CDISCOUNT: Final = Rules(
    line_level=True, one_parcel_per_order=True, line_cancellation=False, refusal_ships=True
)
DEFAULT_SALES_CHANNELS: Final = {
    "CDISFR": CDISCOUNT,
    "OCTOBE": Rules(),
    "AUTOFR": Rules(manual_acceptance=False),
}


def stamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(raw: str) -> dt.datetime:
    return dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))


@dataclass
class Market:
    sales_channels: dict[str, Rules] = field(default_factory=lambda: dict(DEFAULT_SALES_CHANNELS))
    carriers: list[dict[str, Any]] = field(
        default_factory=lambda: [dict(c) for c in DEFAULT_CARRIERS]
    )
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    previous: dict[tuple[str, str], str] = field(default_factory=dict)  # line under request
    offset: dt.timedelta = dt.timedelta(0)
    _last: dt.datetime | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # --- time and ids -------------------------------------------------------------------

    def now(self) -> dt.datetime:
        now = dt.datetime.now(dt.UTC) + self.offset
        if self._last is not None and now <= self._last:
            now = self._last + dt.timedelta(milliseconds=1)
        self._last = now
        return now

    def next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):05d}"

    # --- reading ------------------------------------------------------------------------

    def order(self, order_id: str) -> dict[str, Any]:
        try:
            return self.orders[order_id]
        except KeyError:
            raise Refused(404, "Not Found", f"order {order_id} does not exist") from None

    def rules(self, order: dict[str, Any]) -> Rules:
        return self.sales_channels.get(order["salesChannel"]["id"], Rules())

    def line(self, order: dict[str, Any], line_id: str) -> dict[str, Any]:
        for line in order["lines"]:
            if line["orderLineId"] == line_id:
                return cast(dict[str, Any], line)
        raise Refused(
            400,
            "Validation Failed",
            f"order {order['orderId']} has no line {line_id}",
            {"orderLineIds": [f"unknown line {line_id}"]},
        )

    # --- changing -----------------------------------------------------------------------

    def set_line(self, order: dict[str, Any], line: dict[str, Any], status: str, at: str) -> None:
        if line["status"] != status:
            line["status"] = status
            line["statusEvents"].append({"status": status, "occurredAt": at})

    def touch(self, order: dict[str, Any], at: str | None = None) -> None:
        at = at or stamp(self.now())
        lines = order["lines"]
        if order["status"] not in (wire.PROCESSING, wire.REJECTED):
            order["status"] = header_status(lines, self.previous, order["orderId"])
        order["updatedAt"] = at

    def touched(self, order_id: str) -> dict[str, Any]:
        order = self.order(order_id)
        self.touch(order)
        return order

    def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        sc_id = str(spec.get("sales_channel", "CDISFR"))
        if sc_id not in self.sales_channels:
            raise Refused(400, "Validation Failed", f"unknown sales channel {sc_id}")
        rules = self.sales_channels[sc_id]
        order_id = str(spec.get("order_id") or self.next_id("OCT"))
        if order_id in self.orders:
            raise Refused(409, "Conflict", f"order {order_id} exists")
        now = self.now()
        at = stamp(now)
        first = wire.WAITING_ACCEPTANCE if rules.manual_acceptance else wire.ACCEPTED
        deadline = stamp(now + dt.timedelta(days=2))
        address = {
            "civility": "Mme",
            "firstName": "Camille",
            "lastName": "Martin",
            "addressLine1": "12 rue de la Paix",
            "postalCode": "75002",
            "city": "Paris",
            "countryCode": "FR",
            "phone": "+33100000000",
            "email": f"{order_id}@anon.example",
        }
        lines = []
        for n, raw in enumerate(spec.get("lines") or [{}], start=1):
            mode = str(raw.get("supply_mode", wire.SUPPLY_SELLER))
            if mode not in wire.SUPPLY_MODES:
                raise Refused(400, "Validation Failed", f"unknown supply mode {mode}")
            price = raw.get("price", 19.99)
            lines.append(
                {
                    "orderLineId": str(raw.get("id", f"L{n}")),
                    "status": first,
                    "quantity": int(raw.get("quantity", 1)),
                    "offer": {
                        "id": f"OF-{order_id}-{n}",
                        "sellerProductId": raw.get("sku", f"SKU-{n}"),
                        "productId": f"P{n}",
                        "productTitle": raw.get("title", f"Product {n}"),
                        "productGtin": "3700000000000",
                        "condition": "New",
                        "supplyMode": mode,
                    },
                    "offerPrice": {
                        "unitSalesPrice": price,
                        "shippingCost": raw.get("shipping_cost", 4.9),
                        "commission": {
                            "amountWithVat": round(price * 0.15, 2),
                            "amountWithoutVat": round(price * 0.125, 2),
                            "rate": 0.15,
                        },
                        "taxes": [
                            {
                                "code": "VAT",
                                "target": "Product",
                                "amount": round(price / 6, 2),
                                "rate": 0.2,
                            }
                        ],
                    },
                    "sellingPrice": {
                        "unitSalesPrice": price,
                        "shippingCost": raw.get("shipping_cost", 4.9),
                    },
                    "delivery": {"mode": "TrackedHomeDelivery", "shippedAtMax": deadline},
                    "shippingAddress": dict(address),
                    "parcels": [],
                    "statusEvents": [{"status": first, "occurredAt": at}],
                }
            )
        order = {
            "orderId": order_id,
            "reference": spec.get("reference", f"REF-{order_id}"),
            "businessOrder": False,
            "salesChannel": {"id": sc_id, "name": f"Sales channel {sc_id}"},
            "seller": {"id": "98979"},
            "customer": {"reference": f"cust-{order_id}"},
            "purchasedAt": at,
            "createdAt": at,
            "updatedAt": at,
            "shippedAtMax": deadline,
            "status": wire.PROCESSING if spec.get("processing") else first,
            "payment": {"method": "Card"},
            "currencyCode": "EUR",
            "billingAddress": dict(address),
            "lines": lines,
            "cancellationDetails": [],
        }
        self.orders[order_id] = order
        return order

    def release(self, order_id: str) -> dict[str, Any]:
        """Processing -> the seller sees it (the marketplace's controls passed)."""
        order = self.order(order_id)
        if order["status"] != wire.PROCESSING:
            raise Refused(409, "Conflict", f"order {order_id} is {order['status']}")
        order["status"] = order["lines"][0]["status"]
        self.touch(order)
        return order

    def fail_controls(self, order_id: str) -> dict[str, Any]:
        order = self.order(order_id)
        order["status"] = wire.REJECTED
        self.touch(order)
        return order

    def move_lines(
        self, order_id: str, frm: set[str], to: str, *, modes: set[str] | None = None
    ) -> dict[str, Any]:
        order = self.order(order_id)
        at = stamp(self.now())
        moved = False
        for line in order["lines"]:
            if line["status"] in frm and (modes is None or line["offer"]["supplyMode"] in modes):
                self.set_line(order, line, to, at)
                moved = True
        if not moved:
            raise Refused(409, "Conflict", f"order {order_id}: no line in {', '.join(sorted(frm))}")
        self.touch(order, at)
        return order

    def pay(self, order_id: str) -> dict[str, Any]:
        """Payment cleared: Accepted -> InPreparation (Cdiscount's release for dispatch)."""
        return self.move_lines(order_id, {wire.ACCEPTED}, wire.IN_PREPARATION)

    def deliver(self, order_id: str) -> dict[str, Any]:
        return self.move_lines(order_id, {wire.SHIPPED}, wire.DELIVERED)

    def fulfil(self, order_id: str) -> dict[str, Any]:
        """The channel's logistics ship its own (Fulfillment, Xdock) lines."""
        order = self.order(order_id)
        number = f"FUL{order_id}"
        for line in order["lines"]:
            if (
                line["offer"]["supplyMode"] != wire.SUPPLY_SELLER
                and line["status"] == wire.IN_PREPARATION
            ):
                line["parcels"].append(
                    {
                        "parcelNumber": number,
                        "carrierName": "Octopia Logistics",
                        "trackingUrl": f"https://track.example/{number}",
                    }
                )
        channel = {wire.SUPPLY_FULFILLMENT, wire.SUPPLY_XDOCK}
        return self.move_lines(order_id, {wire.IN_PREPARATION}, wire.SHIPPED, modes=channel)

    def cancel_by_channel(self, order_id: str) -> dict[str, Any]:
        order = self.order(order_id)
        at = stamp(self.now())
        ids = [
            ln["orderLineId"]
            for ln in order["lines"]
            if ln["status"] not in (wire.SHIPPED, wire.DELIVERED, wire.CANCELLED, wire.REFUSED)
        ]
        for line in order["lines"]:
            if line["orderLineId"] in ids:
                self.set_line(order, line, wire.CANCELLED, at)
        order["cancellationDetails"].append(
            {
                "cancellationRequestId": self.next_id("CR"),
                "status": "Accepted",
                "requestedBy": wire.BY_SALES_CHANNEL,
                "reason": "customer-claim",
                "lines": [{"orderLineId": i} for i in ids],
                "createdAt": at,
            }
        )
        self.touch(order, at)
        return order

    # --- the customer's cancellation requests -------------------------------------------

    def request_cancellation(
        self, order_id: str, line_ids: list[str] | None
    ) -> list[dict[str, Any]]:
        order = self.order(order_id)
        rules = self.rules(order)
        at = stamp(self.now())
        open_ = [
            ln
            for ln in order["lines"]
            if ln["status"] in (wire.WAITING_ACCEPTANCE, wire.ACCEPTED, wire.IN_PREPARATION)
        ]
        chosen = [ln for ln in open_ if line_ids is None or ln["orderLineId"] in line_ids]
        if not chosen:
            raise Refused(409, "Conflict", f"order {order_id}: nothing left to cancel")
        groups = [[ln] for ln in chosen] if rules.cancels_lines else [chosen]
        made = []
        for group in groups:
            for line in group:
                self.previous[(order_id, line["orderLineId"])] = line["status"]
                self.set_line(order, line, wire.CANCEL_REQUEST, at)
            detail = {
                "cancellationRequestId": self.next_id("CR"),
                "status": "Pending",
                "requestedBy": wire.BY_CUSTOMER,
                "reason": "customer-cancellation",
                "lines": [{"orderLineId": ln["orderLineId"]} for ln in group],
                "createdAt": at,
            }
            order["cancellationDetails"].append(detail)
            made.append(detail)
        self.touch(order, at)
        return made

    def detail(self, order: dict[str, Any], request_id: str) -> dict[str, Any]:
        for detail in order["cancellationDetails"]:
            if detail["cancellationRequestId"] == request_id:
                return cast(dict[str, Any], detail)
        raise Refused(404, "Not Found", f"no cancellation request {request_id}")

    def decide_request(
        self, order_id: str, request_id: str, *, accept: bool, at: str | None = None
    ) -> dict[str, Any]:
        """The marketplace accepts (lines cancelled) or rejects (lines reset) a request."""
        order = self.order(order_id)
        detail = self.detail(order, request_id)
        if detail["status"] != "Pending":
            raise Refused(409, "Conflict", f"request {request_id} is {detail['status']}")
        at = at or stamp(self.now())
        for item in detail["lines"]:
            line = self.line(order, item["orderLineId"])
            before = self.previous.pop((order_id, line["orderLineId"]), wire.IN_PREPARATION)
            if line["status"] == wire.CANCEL_REQUEST:
                self.set_line(order, line, wire.CANCELLED if accept else before, at)
        detail["status"] = "Accepted" if accept else "Rejected"
        self.touch(order, at)
        return order


def header_status(
    lines: list[dict[str, Any]], previous: dict[tuple[str, str], str], order_id: str
) -> str:
    """The order's state from its lines: the least advanced line still alive (a line under
    a request counts as its previous state); all refused: Refused; none alive: Cancelled."""
    statuses = [ln["status"] for ln in lines]
    if all(s == wire.REFUSED for s in statuses):
        return wire.REFUSED
    alive = [
        previous.get((order_id, ln["orderLineId"]), wire.IN_PREPARATION)
        if ln["status"] == wire.CANCEL_REQUEST
        else ln["status"]
        for ln in lines
        if ln["status"] not in (wire.CANCELLED, wire.REFUSED)
    ]
    if not alive:
        return wire.CANCELLED
    return min(alive, key=lambda s: RANK.get(s, 0))
