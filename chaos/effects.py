"""What a warehouse command does at a marketplace, read from the marketplace's side: each
simulator call that changes an order is an :class:`Effect` (its order, its kind, a key
that tells two of them apart: the tracking number of a parcel), and each WMS command
expects one. Plain functions of logged data, for :mod:`chaos.checker`."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True)
class Effect:
    order: str
    """The order's id at the marketplace."""
    key: str
    """``accept``, ``reject``, ``ship:<tracking number>``, ``cancel`` (the whole order),
    ``cancel:<line ids>`` (some of its lines)..."""


WHOLE_ORDER_CANCEL: Final = "cancel"


def cancel_key(line_ids: Any) -> str:
    """The effect of cancelling some lines: ``cancel:L1,L2`` (sorted), so that the
    cancellations of two different lines are two effects, not one taken twice."""
    return f"{WHOLE_ORDER_CANCEL}:{','.join(sorted(str(i) for i in line_ids))}"


def is_cancel(key: str) -> bool:
    return key == WHOLE_ORDER_CANCEL or key.startswith(f"{WHOLE_ORDER_CANCEL}:")


def named_lines(key: str) -> frozenset[str] | None:
    """The lines a cancellation key names; None for the whole order."""
    if key == WHOLE_ORDER_CANCEL:
        return None
    named = key.split(":", 1)[1]
    return frozenset(named.split(",")) if named else frozenset()


def satisfies(taken: str, expected: str) -> bool:
    """A call that may be an attempt at what a command expects (the checker counts them
    against the attempt cap): the same key, or a whole-order cancellation for a command
    that cancels some lines (a channel may cancel the whole order when the lines are all
    that is left of it, as Octopia's adapter does). Which lines a cancellation did is
    judged line by line in :mod:`chaos.cancellations`."""
    return taken == expected or (taken == WHOLE_ORDER_CANCEL and is_cancel(expected))


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


# --- Octopia ------------------------------------------------------------------------------

_OCTOPIA_ORDER: Final = re.compile(r"^/orders/([^/]+)/(approval-status|shipments)$")
_OCTOPIA_CANCEL: Final = "/order-cancellation-requests"
_OCTOPIA_PARTIAL_CANCEL: Final = "/order-partial-cancellation-requests"


def octopia_call(call: dict[str, Any]) -> Effect | None:
    if call.get("method") != "POST":
        return None
    path = call.get("path", "")
    if path == _OCTOPIA_CANCEL:
        return Effect(str(_body(call).get("orderSellerId", "")), WHOLE_ORDER_CANCEL)
    if path == _OCTOPIA_PARTIAL_CANCEL:
        body = _body(call)
        lines = [line for line in body.get("lines") or [] if isinstance(line, dict)]
        return Effect(
            str(body.get("orderSellerId", "")), cancel_key(line.get("lineId") for line in lines)
        )
    match = _OCTOPIA_ORDER.match(path)
    if not match:
        return None
    if match[2] == "approval-status":
        decision = _body(call).get("approval_status")
        return Effect(match[1], "accept" if decision == "Accepted" else "reject")
    try:
        raw = json.loads(call.get("body") or "{}")
    except ValueError:
        raw = {}
    parcels = raw if isinstance(raw, list) else [raw]
    number = parcels[0].get("parcelNumber", "") if parcels and isinstance(parcels[0], dict) else ""
    return Effect(match[1], f"ship:{number}")


# --- Spresso ------------------------------------------------------------------------------


def spresso_call(call: dict[str, Any]) -> Effect | None:
    """``PUT /v1/fulfillments/{id}/shipments`` (a parcel) and ``PUT /v1/fulfillments/{id}``
    (a status: in_transit, delivered); the observer names the order (``order``). A call
    answered from Spresso's idempotency store (``replayed``) is not a second effect."""
    if call.get("method") != "PUT" or call.get("replayed"):
        return None
    body = _body(call)
    order = str(call.get("order", ""))
    if call.get("path", "").endswith("/shipments"):
        return Effect(order, f"ship:{body.get('trackingNumber', '')}")
    if body.get("status"):
        return Effect(order, f"{body['status']}:{call.get('fulfilment', '')}")
    return None


def wms_key(
    action: str,
    body: Any,
    order: dict[str, Any] | None = None,
    requests: Mapping[str, Sequence[str]] | None = None,
) -> str | None:
    """The effect key a warehouse command expects (the same for every channel); None for
    a command that may make no call. ``order`` is the hub's view of the order (``GET
    /orders/{id}``): accepting a customer's cancellation request cancels that request's
    lines, named by their marketplace line ids, as the marketplace lists the request
    (``requests``: its request id -> its line ids, none for the whole order) or else as
    the hub shows it."""
    body = body or {}
    if action == "shipments":
        return f"ship:{body.get('tracking_number', '')}"
    if action == "cancellations":
        # refusing a customer's request changes nothing at the marketplace
        if body.get("decision") == "refuse":
            return None
        if body.get("cancellation_id") and order is not None:
            return _request_key(order, str(body["cancellation_id"]), requests or {})
        return WHOLE_ORDER_CANCEL
    if action == "deliveries":
        return None  # one call per fulfilment, or none where the channel reports them
    return action


def _request_key(
    order: dict[str, Any], cancellation_id: str, requests: Mapping[str, Sequence[str]]
) -> str:
    by_id = {line.get("id"): line.get("channel_line_id") for line in order.get("lines", [])}
    for request in order.get("cancellations", []):
        if request.get("id") != cancellation_id:
            continue
        listed = requests.get(str(request.get("channel_cancellation_id")))
        if listed is not None:  # the marketplace's own word, not the hub's reading of it
            return cancel_key(listed) if listed else WHOLE_ORDER_CANCEL
        if request.get("lines"):
            return cancel_key(by_id.get(line.get("line_id"), "?") for line in request["lines"])
    return WHOLE_ORDER_CANCEL


CALL_EFFECTS: Final[dict[str, Callable[[dict[str, Any]], Effect | None]]] = {
    "topi": topi_call,
    "octopia": octopia_call,
    "spresso": spresso_call,
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
