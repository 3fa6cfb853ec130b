"""topi's sandbox fixture orders (OpenAPI, ``GET /v1/orders/{id}``, "When using in the
Sandbox"), preloaded in their documented statuses."""

from __future__ import annotations

import datetime as dt
from typing import Final

import msgspec

from orderhub_topi.simulator.state import LineSpec, OrderSpec, SimOrder, SubLineSpec, build_order
from orderhub_topi.wire import (
    ASSET_SHIPPED,
    CONTRACT_PAY_NOW,
    ORDER_CANCELED,
    ORDER_COMPLETED,
    ORDER_CONFIRMED,
    ORDER_CREATED,
    ORDER_PARTIALLY_FULFILLED,
)

SANDBOX_ORDER_IDS: Final = {
    ORDER_CREATED: "52c1e8ec-a592-48a9-b574-ab88b0937b38",
    ORDER_CONFIRMED: "aac1e833-3391-134a-c567-acd8b0937ad3",
    ORDER_PARTIALLY_FULFILLED: "b3a64e36-6fa2-40a6-9402-e949c47feb87",
    ORDER_COMPLETED: "aa6a50f4-c2d4-4961-9689-ebd0f0f92a9e",
    ORDER_CANCELED: "17c45c3d-cd61-4e2f-a562-ff8f349067de",
}

_BASE_TIME: Final = dt.datetime(2024, 1, 1, 9, 0, tzinfo=dt.UTC)


def sandbox_orders() -> list[SimOrder]:
    """One order per fixture id: a rented laptop bundle (with a charger sub-line) and a
    bought accessory, so every fixture has three assets."""
    orders: list[SimOrder] = []
    # Sorted by id so that created_at order and id order agree among the fixtures.
    for n, (status, order_id) in enumerate(sorted(SANDBOX_ORDER_IDS.items(), key=lambda x: x[1])):
        created_at = _BASE_TIME + dt.timedelta(days=n)
        spec = OrderSpec(
            seller_offer_reference=f"sandbox-{status}",
            created_at=created_at,
            lines=[
                LineSpec(
                    title="Pro Laptop 64GB",
                    sku="123ab-5343",
                    source="sap",
                    sublines=[SubLineSpec(title="Laptop charger", sku="123ab-9001", source="sap")],
                ),
                LineSpec(
                    title="USB-C cable",
                    sku="123ab-7777",
                    source="sap",
                    contract_type=CONTRACT_PAY_NOW,
                ),
            ],
        )
        order = build_order(spec, now=created_at)
        order.id = order_id
        order.status = status
        shipped = {
            ORDER_PARTIALLY_FULFILLED: 1,
            ORDER_COMPLETED: len(order.assets),
        }.get(status, 0)
        for i in range(shipped):
            asset = order.assets[i]
            order.assets[i] = msgspec.structs.replace(
                asset,
                status=ASSET_SHIPPED,
                serial_number=f"BA-{n}{i}-334-9" if asset.id in order.serial_required else "",
                tracking_url="https://tracking.example.com/sandbox",
            )
        if shipped:
            order.tracking_urls.append("https://tracking.example.com/sandbox")
        if status == ORDER_CANCELED:
            order.canceled_at = created_at + dt.timedelta(hours=2)
        orders.append(order)
    return orders
