"""What the seller may do through the simulated Seller API, with Octopia's rules:
approval only in ``WaitingAcceptance``; shipments only of ``Seller`` lines in
``InPreparation`` (or a customer's ``CancelRequest`` where Cdiscount allows it), one
parcel per order where the sales channel says so; cancellations by reason code allowed in
the order's state, never of an order with Fulfillment/Xdock lines, whole orders only
where the sales channel says so; invoices where the sales channel takes them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orderhub_octopia import wire
from orderhub_octopia.simulator.state import Market, Refused, stamp

_OPEN = (wire.WAITING_ACCEPTANCE, wire.ACCEPTED, wire.IN_PREPARATION, wire.CANCEL_REQUEST)


def _invalid(detail: str, **errors: str) -> Refused:
    return Refused(400, "Validation Failed", detail, {k: [v] for k, v in errors.items()} or None)


def approve(market: Market, order_id: str, body: Any, key: str) -> None:
    order = market.order(order_id)
    decision = body.get(key) if isinstance(body, dict) else None
    if decision not in (wire.APPROVE, wire.REFUSE):
        raise _invalid(f"{key} must be Accepted or Refused", **{key: "invalid value"})
    if order["status"] != wire.WAITING_ACCEPTANCE:
        raise _invalid(
            f"order {order_id} is {order['status']}: approval only in WaitingAcceptance",
            status="invalid order status",
        )
    at = stamp(market.now())
    for line in order["lines"]:
        market.set_line(order, line, decision, at)
    market.touch(order, at)


def ship(market: Market, order_id: str, body: Any) -> None:
    order = market.order(order_id)
    rules = market.rules(order)
    parcels = body if isinstance(body, list) else [body]
    if not parcels or not all(isinstance(p, dict) for p in parcels):
        raise _invalid("a shipment is a parcel or a list of parcels")
    labels = {c["label"] for c in market.carriers}
    for parcel in parcels:
        number, carrier = parcel.get("parcelNumber"), parcel.get("carrierName")
        if not number:
            raise _invalid("parcelNumber is required", parcelNumber="required")
        if carrier not in labels:
            raise _invalid(f"unknown carrier {carrier!r}", carrierName="unknown carrier")
    at = stamp(market.now())
    shippable = [ln for ln in order["lines"] if _shippable(market, order, ln)]
    for parcel in parcels:
        ids = parcel.get("orderLineIds") or [ln["orderLineId"] for ln in shippable]
        lines = [market.line(order, i) for i in ids]
        for line in lines:
            if line not in shippable:
                raise _invalid(
                    f"line {line['orderLineId']} cannot be shipped ({line['status']}, supply "
                    f"mode {line['offer']['supplyMode']}, order {order['status']})",
                    orderLineIds="line not shippable",
                )
        if rules.one_parcel_per_order or not rules.line_level:
            already = any(
                ln["parcels"]
                for ln in order["lines"]
                if ln["offer"]["supplyMode"] == wire.SUPPLY_SELLER
            )
            if already or len(lines) != len(shippable) or len(parcels) > 1:
                raise _invalid(
                    "Cdiscount only enables one parcel per complete order",
                    orderLineIds="one parcel per complete order",
                )
        for line in lines:
            line["parcels"].append(
                {k: parcel.get(k) for k in ("parcelNumber", "carrierName", "trackingUrl")}
            )
            if line["status"] == wire.CANCEL_REQUEST:  # shipping refuses the request
                for detail in order["cancellationDetails"]:
                    if detail["status"] == "Pending" and any(
                        i["orderLineId"] == line["orderLineId"] for i in detail["lines"]
                    ):
                        detail["status"] = "Rejected"
                market.previous.pop((order_id, line["orderLineId"]), None)
            market.set_line(order, line, wire.SHIPPED, at)
    market.touch(order, at)


def _shippable(market: Market, order: dict[str, Any], line: dict[str, Any]) -> bool:
    if line["offer"]["supplyMode"] != wire.SUPPLY_SELLER:
        return False
    if line["status"] == wire.IN_PREPARATION:
        return True
    if line["status"] != wire.CANCEL_REQUEST or not market.rules(order).refusal_ships:
        return False
    before = market.previous.get((order["orderId"], line["orderLineId"]))
    by_customer = any(
        d["status"] == "Pending"
        and d["requestedBy"] == wire.BY_CUSTOMER
        and any(i["orderLineId"] == line["orderLineId"] for i in d["lines"])
        for d in order["cancellationDetails"]
    )
    return before == wire.IN_PREPARATION and order["status"] == wire.IN_PREPARATION and by_customer


def cancel(market: Market, body: Any, *, partial: bool, order_key: str) -> str:
    if not isinstance(body, dict):
        raise _invalid("a cancellation request is an object")
    key = "orderSellerId" if partial else order_key
    order = market.order(str(body.get(key)))
    rules = market.rules(order)
    if partial and not rules.cancels_lines:
        raise _invalid(
            f"sales channel {order['salesChannel']['id']} cancels whole orders only",
            lines="partial cancellation not allowed",
        )
    if any(ln["offer"]["supplyMode"] != wire.SUPPLY_SELLER for ln in order["lines"]):
        raise _invalid("cancellation rejected: the order has Fulfillment or Xdock lines")
    items = body.get("lines") if partial else None
    reasons = {str(i.get("reason")) for i in items or ()} if partial else {str(body.get("reason"))}
    for reason in reasons:
        allowed = wire.REASON_CODE_STATES.get(reason)
        if allowed is None:
            raise _invalid(f"unknown reason {reason!r}", reason="unknown reason")
        if order["status"] not in allowed:
            raise _invalid(
                f"reason {reason} is allowed only in {', '.join(allowed)}; the order is "
                f"{order['status']}",
                reason="reason not allowed in this status",
            )
    if partial:
        if not items:
            raise _invalid("lines are required", lines="required")
        lines = [market.line(order, str(i.get("lineId"))) for i in items]
    else:
        lines = [
            ln
            for ln in order["lines"]
            if ln["status"] in _OPEN or ln["status"] in wire.SHIPPED_STATES
        ]
    if not lines:
        raise _invalid(f"order {order['orderId']} has nothing left to cancel")
    at = stamp(market.now())
    mine: list[str] = []
    pending = [d for d in order["cancellationDetails"] if d["status"] == "Pending"]
    asked = {i["orderLineId"] for d in pending for i in d["lines"]}
    for detail in pending:  # the seller cancels what the customer asked: accepted
        if {i["orderLineId"] for i in detail["lines"]} & {ln["orderLineId"] for ln in lines}:
            detail["status"] = "Accepted"
    for line in lines:
        lid = line["orderLineId"]
        market.previous.pop((order["orderId"], lid), None)
        if lid not in asked:
            mine.append(lid)
        if line["status"] not in wire.SHIPPED_STATES:
            market.set_line(order, line, wire.CANCELLED, at)
    request_id = market.next_id("CR")
    if mine:
        order["cancellationDetails"].append(
            {
                "cancellationRequestId": request_id,
                "status": "Accepted",
                "requestedBy": wire.BY_SELLER,
                "reason": sorted(reasons)[0],
                "lines": [{"orderLineId": i} for i in mine],
                "createdAt": at,
            }
        )
    market.touch(order, at)
    return request_id


@dataclass
class Imports:
    """Invoice imports, answered at once with an id and decided after ``checks`` reads:
    a document that is not a PDF is refused at upload (422); one whose bytes contain
    ``REJECT`` is rejected by the report."""

    checks: int = 1
    imports: dict[str, dict[str, Any]] = field(default_factory=dict)
    reads: dict[str, int] = field(default_factory=dict)

    def take(self, market: Market, files: list[tuple[str, bytes]]) -> str:
        reports = []
        for name, content in files:
            order_id = name.rsplit(".", 1)[0]
            order = market.order(order_id)
            if not market.rules(order).invoices:
                raise _invalid(
                    f"sales channel {order['salesChannel']['id']} takes no invoices",
                    file="invoices not enabled for this sales channel",
                )
            if not content.startswith(b"%PDF-"):
                raise Refused(
                    422, "Unprocessable Entity", f"{name} is not a PDF", {"file": ["not a PDF"]}
                )
            rejected = b"REJECT" in content
            reports.append(
                {
                    "orderId": order_id,
                    "status": "Rejected" if rejected else "Success",
                    "message": "invoice refused: the amounts do not match the order"
                    if rejected
                    else None,
                }
            )
        import_id = market.next_id("IMP")
        self.imports[import_id] = {"importId": import_id, "reports": reports}
        self.reads[import_id] = 0
        return import_id

    def report(self, import_id: str) -> dict[str, Any]:
        found = self.imports.get(import_id)
        if found is None:
            raise Refused(404, "Not Found", f"no invoice import {import_id}")
        self.reads[import_id] += 1
        if self.reads[import_id] <= self.checks:
            return {"importId": import_id, "status": "Pending", "reports": []}
        failed = any(r["status"] == "Rejected" for r in found["reports"])
        return {**found, "status": "Rejected" if failed else "Success"}
