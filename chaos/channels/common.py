"""What the three marketplaces share: HTTP with the simulators, a warehouse's parcels."""

from __future__ import annotations

import random
import uuid
from typing import Any, Final

import httpx

CARRIERS: Final = ("DHL", "UPS")
SKUS: Final = ("LAPTOP-14", "MOUSE-W", "DOCK-USBC", "PHONE-15", "CABLE-2M", "BAG-13")


def client(url: str, token: str | None = None, timeout: float = 15.0) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=timeout)


def get_json(http: httpx.Client, path: str, params: dict[str, Any] | None = None) -> Any:
    resp = http.get(path, params=params)
    resp.raise_for_status()
    return resp.json()


def post_json(http: httpx.Client, path: str, body: Any = None) -> httpx.Response:
    return http.post(path, json=body)


def shippable(order: dict[str, Any]) -> list[tuple[dict[str, Any], int]]:
    """Each line with units neither rejected, cancelled nor shipped, and how many (of an
    order ready to ship: accepted, or a channel without acceptance)."""
    found = []
    for line in order["lines"]:
        units = line["quantity"] - line["rejected"] - line["cancelled"] - line["shipped"]
        if units > 0:
            found.append((line, units))
    return found


def parcel(
    order: dict[str, Any], rng: random.Random, *, whole: bool = False, whole_lines: bool = False
) -> dict[str, Any] | None:
    """A shipment of some (or, ``whole``, all) of what is left to ship, a tracking number
    of its own; serial numbers where a line needs them. ``whole_lines``: each line it
    carries, all of it (a channel whose parcels hold lines, not units)."""
    lines = shippable(order)
    if not lines:
        return None
    if not whole and len(lines) > 1:
        lines = rng.sample(lines, rng.randint(1, len(lines)))
    items = []
    for line, units in lines:
        quantity = units if whole or whole_lines else rng.randint(1, units)
        item: dict[str, Any] = {"line_id": line["id"], "quantity": quantity}
        if line["requires_serial_number"]:
            item["serial_numbers"] = [f"SN-{uuid.uuid4().hex[:10]}" for _ in range(quantity)]
        items.append(item)
    tracking = f"TRK{uuid.uuid4().hex[:16].upper()}"
    return {
        "carrier": rng.choice(CARRIERS),
        "tracking_number": tracking,
        "tracking_url": f"https://tracking.example/{tracking}",
        "items": items,
    }
