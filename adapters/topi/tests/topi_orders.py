"""topi order payloads for the unit tests, written as topi sends them (JSON-shaped dicts
decoded with msgspec), and the hub-side helpers that turn them into canonical orders."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from orderhub.channels.spi import ChannelCommand, CommandKind, CommandView
from orderhub.domain.model import ChannelSnapshot, Line, Order
from orderhub.testing.fakes import SequentialIds
from orderhub_topi import wire
from orderhub_topi.mapping import to_snapshot
from orderhub_topi.plugin import CAPABILITIES

ORDER_ID: Final = "0190f3a1-2b3c-7d4e-8f50-6a7b8c9d0e1f"
CREATED_AT: Final = dt.datetime(2026, 2, 3, 10, 0, tzinfo=dt.UTC)
NOW: Final = dt.datetime(2026, 2, 3, 10, 5, tzinfo=dt.UTC)
LATER: Final = NOW + dt.timedelta(minutes=10)

LAP_PRODUCT: Final = "11111111-1111-4111-8111-111111111111"
CHG_PRODUCT: Final = "22222222-2222-4222-8222-222222222222"
CBL_PRODUCT: Final = "33333333-3333-4333-8333-333333333333"

#: asset id -> (product id, sku, title); listed in an order that is not the line order, so
#: assignment by product reference (not by position) is what the tests see.
ASSETS: Final = {
    "a-cbl-1": (CBL_PRODUCT, "CBL-1", "USB-C cable"),
    "a-lap-1": (LAP_PRODUCT, "LAP-1", "Pro Laptop 64GB"),
    "a-chg-1": (CHG_PRODUCT, "CHG-1", "Charger"),
    "a-lap-2": (LAP_PRODUCT, "LAP-1", "Pro Laptop 64GB"),
    "a-chg-2": (CHG_PRODUCT, "CHG-1", "Charger"),
}


def money(gross: int, net: int, **extra: Any) -> dict[str, Any]:
    return {"currency": "EUR", "gross": gross, "net": net, **extra}


def refs(sku: str, *more: tuple[str, str]) -> list[dict[str, str]]:
    return [{"source": "sku", "reference": sku}, *({"source": s, "reference": r} for s, r in more)]


def bundle_line(quantity: int = 2) -> dict[str, Any]:
    """A rented laptop (quantity 2) with a charger sub-line (same quantity)."""
    return {
        "title": "Pro Laptop 64GB",
        "quantity": quantity,
        "contract_type": "rent",
        "duration": 24,
        "product_id": LAP_PRODUCT,
        "seller_product_references": refs("LAP-1", ("sap", "123ab-5343")),
        "unit_price": money(119000, 100000, tax_rate=1900),
        "monthly_price": money(5950, 5000),
        "sublines": [
            {
                "title": "Charger",
                "quantity": quantity,
                "contract_type": "rent",
                "duration": 24,
                "product_id": CHG_PRODUCT,
                "seller_product_references": refs("CHG-1"),
                "unit_price": money(2380, 2000),
                "monthly_price": money(119, 100),
            }
        ],
    }


def cable_line() -> dict[str, Any]:
    """A bought accessory: no rent option, no serial number."""
    return {
        "title": "USB-C cable",
        "quantity": 1,
        "contract_type": "pay_now",
        "duration": 0,
        "product_id": CBL_PRODUCT,
        "seller_product_references": refs("CBL-1"),
        "unit_price": money(2380, 2000),
        "monthly_price": money(0, 0),
    }


def asset(asset_id: str, status: str = "created", serial: str | None = None) -> dict[str, Any]:
    product, sku, title = ASSETS[asset_id]
    body: dict[str, Any] = {
        "id": asset_id,
        "product_id": product,
        "title": title,
        "seller_product_references": refs(sku),
        "status": status,
    }
    if serial is not None:
        body["serial_number"] = serial
        body["tracking_url"] = "https://track.example/1"
    return body


def order_payload(
    status: str = "created",
    *,
    shipped: Mapping[str, str] | None = None,
    asset_status: str | None = None,
    lines: list[dict[str, Any]] | None = None,
    assets: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """``GET /v1/orders/{id}`` in ``status``. ``shipped``: asset id -> serial number ("" for
    none) of the assets topi shows shipped; ``asset_status`` for every other asset."""
    shipped = dict(shipped or {})
    other = asset_status or ("rejected" if status == "rejected" else "created")
    if assets is None:
        assets = [
            asset(aid, "shipped", shipped[aid]) if aid in shipped else asset(aid, other)
            for aid in ASSETS
        ]
    body: dict[str, Any] = {
        "id": ORDER_ID,
        "status": status,
        "created_at": CREATED_AT.isoformat().replace("+00:00", "Z"),
        "offer_id": "offer-9",
        "seller_offer_reference": "SO-2026-0042",
        "assets": assets,
        "order_lines": lines if lines is not None else [bundle_line(), cable_line()],
        "customer_info": {
            "full_name": "Alice Example",
            "email": "alice@example.com",
            "phone_number": "+49 89 1234567",
            "customer_group": "business",
            "company": {
                "name": "Example GmbH",
                "vat_number": "DE123456789",
                "billing_address": {
                    "line1": "Rechnungsweg 5",
                    "line2": "3. OG",
                    "postal_code": "10115",
                    "city": "Berlin",
                    "country_code": "DE",
                },
            },
        },
        "shipping_address": {
            "line1": "Leopoldstr. 1",
            "postal_code": "80802",
            "city": "Munich",
            "region": "Bavaria",
            "country_code": "DE",
            "recipient_name": "Bob Receiver",
        },
        "seller_info": {"id": "s-1", "name": "Seller", "product_reference_source": "sku"},
        "metadata": {"erp": "4711"},
        "tracking_urls": sorted({"https://track.example/1"} if shipped else set()),
    }
    if status == "canceled":
        body["canceled_at"] = "2026-02-03T12:00:00Z"
    body.update(fields)
    return body


def full_order(status: str = "created", **kw: Any) -> wire.FullOrderResult:
    return msgspec.convert(order_payload(status, **kw), wire.FullOrderResult)


def encode_order(status: str = "created", **kw: Any) -> bytes:
    return msgspec.json.encode(order_payload(status, **kw))


def snapshot(status: str = "created", **kw: Any) -> ChannelSnapshot:
    return to_snapshot(full_order(status, **kw), reference_source=None)


ALL_SHIPPED: Final = {
    "a-lap-1": "SN-L1",
    "a-lap-2": "SN-L2",
    "a-chg-1": "SN-C1",
    "a-chg-2": "SN-C2",
    "a-cbl-1": "",
}


def receive(
    snap: ChannelSnapshot, *, ids: SequentialIds | None = None, now: dt.datetime = NOW
) -> Order:
    order = Order.receive(
        snap,
        order_id="order-1",
        channel="topi",
        account="default",
        caps=CAPABILITIES,
        now=now,
        new_id=ids or SequentialIds("h"),
    )
    order.events.clear()
    return order


def apply(order: Order, snap: ChannelSnapshot, *, now: dt.datetime = LATER) -> list[str]:
    """Apply a snapshot; the event types it raised."""
    order.events.clear()
    order.apply(snap, caps=CAPABILITIES, now=now, new_id=SequentialIds("x"))
    return [e.type.value for e in order.events]


def by_channel_id(order: Order, channel_line_id: str) -> Line:
    return next(line for line in order.lines if line.channel_line_id == channel_line_id)


def ship_command(order: Order, payload: dict[str, Any], *, attempts: int = 1) -> CommandView:
    return CommandView.of(
        ChannelCommand(
            id="cmd-ship",
            order_id=order.id,
            channel="topi",
            account="default",
            kind=CommandKind.SHIP,
            payload=copy.deepcopy(payload),
            created_at=NOW,
            attempts=attempts,
            fence=attempts,
        )
    )


def item(order: Order, channel_line_id: str, quantity: int, *serials: str) -> dict[str, Any]:
    return {
        "line_id": by_channel_id(order, channel_line_id).id,
        "quantity": quantity,
        "serial_numbers": list(serials),
    }
