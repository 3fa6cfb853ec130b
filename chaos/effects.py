"""What a warehouse command does at a marketplace, read from the marketplace's side: each
simulator call that changes an order is an :class:`Effect` (its order, its kind, a key
that tells two of them apart: the tracking number of a parcel), and each WMS command
expects one. Plain functions of logged data, for :mod:`chaos.checker`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True)
class Effect:
    order: str
    """The order's id at the marketplace."""
    key: str
    """``accept``, ``reject``, ``ship:<tracking number>``, ``cancel``..."""


def _body(call: dict[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(call.get("body") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# --- topi ---------------------------------------------------------------------------------

_TOPI_ORDER: Final = re.compile(r"^/v1/orders/([^/]+)/(accept|reject|acknowledge)$")


def topi_call(call: dict[str, Any]) -> Effect | None:
    if call.get("method") != "POST":
        return None
    path = call.get("path", "")
    if path == "/v1/shipment":
        body = _body(call)
        tracking = (body.get("metadata") or {}).get("tracking_number", "")
        return Effect(str(body.get("order_id", "")), f"ship:{tracking}")
    match = _TOPI_ORDER.match(path)
    return Effect(match[1], match[2]) if match else None


def wms_key(action: str, body: Any) -> str:
    """The effect key a warehouse command expects (the same for every channel)."""
    if action == "shipments":
        return f"ship:{(body or {}).get('tracking_number', '')}"
    if action == "cancellations":
        return "cancel"
    if action == "deliveries":
        return "deliver"
    return action


CALL_EFFECTS: Final[dict[str, Callable[[dict[str, Any]], Effect | None]]] = {
    "topi": topi_call,
}
"""Per channel: the effect of one simulator call, or None for a call that changes nothing
(reads, tokens)."""

STATUS_EQUIVALENTS: Final[dict[str, dict[str, set[str]]]] = {}
"""Per channel: a marketplace status -> the hub ``channel_status`` values that agree with it
(when not the same word)."""


def statuses_agree(channel: str, marketplace: str, hub: str | None) -> bool:
    if hub == marketplace:
        return True
    return hub in STATUS_EQUIVALENTS.get(channel, {}).get(marketplace, set())
