"""Spresso Order objects for the tests: strict JSON of the public Data Model example,
with two fulfilments, the coffee (V1) split over both."""

from __future__ import annotations

import copy
import json
from typing import Any

ORDER_ID = "65820634daf0b556858ed591"
F1 = "65820634daf0b556858ed5a1"
F2 = "65820634daf0b556858ed5a2"
V1 = "6114950eb9b960697c78d098"
V2 = "6114950eb9b960697c78d099"

ORDER: dict[str, Any] = {
    "id": ORDER_ID,
    "orderNo": 19618657,
    "createdAt": "2026-01-05T10:00:00.000Z",
    "status": "sent_to_fulfiller",
    "statusHistory": [
        {"status": "created", "updatedAt": "2026-01-05T10:00:00.000Z"},
        {"status": "sent_to_fulfiller", "updatedAt": "2026-01-05T10:10:00.000Z"},
    ],
    "financialStatus": "authorized",
    "user": {"id": "u1", "email": "ada@example.com", "telephoneNumber": "+15550100"},
    "shippingAddress": {
        "firstName": "Ada",
        "lastName": "Lovelace",
        "addressLine1": "1 Analytical Way",
        "addressLine2": "Apt 2",
        "city": "Brooklyn",
        "state": "NY",
        "postalCode": "11201",
        "country": "USA",
        "telephoneNumber": "+15550101",
    },
    "orderVariants": [
        {
            "id": "ov1",
            "quantity": 3,
            "fulfilledQuantity": 0,
            "variant": {"id": V1, "sku": "COFFEE-1KG", "upc": "012345678905", "name": "Beans"},
        },
        {"id": "ov2", "quantity": 1, "variant": {"id": V2, "sku": "MUG-2", "name": "Mug"}},
    ],
    "fulfillments": [
        {
            "id": F1,
            "createdAt": "2026-01-05T10:10:00.000Z",
            "fulfillmentMethod": "carrier_delivery",
            "fulfillerLocation": "loc1",
            "fulfillmentVariants": [{"quantity": 2, "variant": V1}, {"quantity": 1, "variant": V2}],
            "status": "order_placed",
            "statusHistory": [{"status": "order_placed", "updatedAt": "2026-01-05T10:10:00.000Z"}],
        },
        {
            "id": F2,
            "fulfillmentMethod": "carrier_delivery",
            "fulfillmentVariants": [{"quantity": 1, "variant": V1}],
            "status": "order_placed",
        },
    ],
}


def order(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(ORDER)
    doc.update(changes)
    return doc


def body(doc: dict[str, Any] | None = None, **top: Any) -> bytes:
    return json.dumps({**(doc or ORDER), **top}, separators=(",", ":")).encode()


def cancelled(doc: dict[str, Any] | None = None) -> dict[str, Any]:
    doc = copy.deepcopy(doc or ORDER)
    doc["status"] = "cancelled"
    doc["statusHistory"].append({"status": "cancelled", "updatedAt": "2026-01-05T11:00:00.000Z"})
    for f in doc["fulfillments"]:
        if f["status"] not in ("in_transit", "delivered"):
            f["status"] = "cancelled"
    return doc
