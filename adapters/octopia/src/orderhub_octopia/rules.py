"""What Octopia allows: the account's capabilities, narrowed per sales channel, and the
pre-flight refusals :class:`Capabilities` cannot say (reason code by Octopia state,
channel-fulfilled lines, whole lines only, one parcel per order, known carriers, how a
customer's cancellation request may be refused)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from orderhub.channels.spi import CommandKind, CommandRefused
from orderhub.domain.capabilities import Capabilities, DeliveryConfirmation, Scope
from orderhub.domain.model import Cancellation, Line, Order
from orderhub.domain.values import FulfilledBy, Initiator, OrderStatus, Reason, RequestState
from orderhub_octopia import wire
from orderhub_octopia.mapping import (
    CODE_REASONS,
    REASON_CODES,
    SALES_CHANNEL_EXTRA,
    SUPPLY_MODE_EXTRA,
)
from orderhub_octopia.settings import SalesChannel

#: the canonical statuses that stand for the Octopia states a reason code is allowed in
_STATUSES: Final[Mapping[str, frozenset[OrderStatus]]] = {
    wire.ACCEPTED: frozenset({OrderStatus.ACCEPTED}),
    wire.IN_PREPARATION: frozenset({OrderStatus.READY_TO_SHIP, OrderStatus.PARTIALLY_SHIPPED}),
    wire.SHIPPED: frozenset({OrderStatus.SHIPPED, OrderStatus.PARTIALLY_SHIPPED}),
    wire.DELIVERED: frozenset({OrderStatus.DELIVERED}),
}
TRACKING_MAX: Final = 50  # legacy rule (§7 #13)
URL_MAX: Final = 255
_TRACKING_FORBIDDEN: Final = re.compile(r"[\s&*$]")

CAPABILITIES: Final = Capabilities(
    acceptance=Scope.ORDER,  # approval-status is order level (4 sources)
    rejection=Scope.ORDER,
    shipment=Scope.LINE,
    partial_shipment=True,
    delivery_confirmation=DeliveryConfirmation.CHANNEL,
    seller_cancellation=Scope.LINE,
    cancellation_reasons=MappingProxyType(
        {
            CODE_REASONS[code]: frozenset().union(*(_STATUSES[s] for s in states))
            for code, states in wire.REASON_CODE_STATES.items()
        }
    ),
    cancellation_requests=True,
    cancellation_decision=Scope.LINE,
    release_on_accept=False,  # Accepted waits for payment: InPreparation releases
    intake=frozenset({"polling"}),
    refusals=MappingProxyType(
        {"deliver": "Octopia reports delivery itself: the seller does not confirm it"}
    ),
)


def sales_channel_caps(sc: SalesChannel) -> Capabilities:
    """The account's capabilities narrowed to one sales channel's rules."""
    line = Scope.LINE if sc.line_level else Scope.ORDER
    # auto-acceptance: orders arrive Accepted and the domain has nothing left to accept;
    # the scope stays ORDER so that Accepted still waits for the release (InPreparation)
    decide = Scope.ORDER
    refusals = dict(CAPABILITIES.refusals)
    if not sc.manual_acceptance:
        refusals["accept"] = f"sales channel {sc.id} accepts orders itself (auto-acceptance)"
        refusals["reject"] = f"sales channel {sc.id} accepts orders itself: nothing to refuse"
    if sc.one_parcel_per_order:
        refusals["ship"] = f"sales channel {sc.id} takes one parcel per complete order"
    elif not sc.line_level:
        refusals["ship"] = f"sales channel {sc.id} has no line-level management: ship it whole"
    return dataclasses.replace(
        CAPABILITIES,
        acceptance=decide,
        rejection=decide,
        shipment=Scope.ORDER if sc.one_parcel_per_order or not sc.line_level else Scope.LINE,
        seller_cancellation=Scope.LINE if sc.cancels_lines else Scope.ORDER,
        cancellation_decision=line,
        refusal_ships=sc.refusal_ships,
        invoices=sc.invoices,
        refusals=MappingProxyType(refusals),
    )


def sales_channel_of(order: Order, table: Mapping[str, SalesChannel]) -> SalesChannel | None:
    sc_id = order.extras.get(SALES_CHANNEL_EXTRA)
    return table.get(sc_id) if isinstance(sc_id, str) else None


def carrier_key(label: str) -> str:
    return label.strip().casefold()  # a measured label has a trailing space


def _lines(payload: Mapping[str, Any], order: Order, key: str) -> list[tuple[Line, int]]:
    wanted = {
        str(i["line_id"]): int(i.get("quantity") or 0)
        for i in payload.get(key) or ()
        if isinstance(i, Mapping)
    }
    return [(line, wanted[line.id]) for line in order.lines if line.id in wanted]


def channel_fulfilled(order: Order, line: Line) -> bool:
    if line.fulfilment_id is None:
        return False
    return order.fulfilment(line.fulfilment_id).fulfilled_by is not FulfilledBy.SELLER


def _whole(line: Line, quantity: int, what: str) -> None:
    whole = line.quantity - line.rejected
    if quantity != whole and quantity != line.live:
        raise CommandRefused(
            f"Octopia {what} whole lines only: line {line.id} ({line.channel_line_id}) has "
            f"{line.live} units, not {quantity}",
            rule="octopia-whole-lines",
            status=422,
        )


def check_shipment(
    payload: Mapping[str, Any],
    order: Order,
    sc: SalesChannel | None,
    carriers: Mapping[str, str] | None,
) -> None:
    carrier = str(payload.get("carrier") or "")
    if carriers is not None and carrier_key(carrier) not in carriers:
        labels = ", ".join(sorted(set(carriers.values())))
        raise CommandRefused(
            f"Octopia knows no carrier {carrier!r}: use one of its carriers ({labels})",
            rule="unknown-carrier",
            status=422,
        )
    number = str(payload.get("tracking_number") or "")
    if not number or len(number) > TRACKING_MAX or _TRACKING_FORBIDDEN.search(number):
        raise CommandRefused(
            f"Octopia's parcel number is the tracking number: 1 to {TRACKING_MAX} characters, "
            f"no space, '&', '*' or '$' (got {number!r})",
            rule="octopia-tracking-number",
            status=422,
        )
    url = payload.get("tracking_url")
    if url and (len(str(url)) > URL_MAX or not str(url).startswith(("http://", "https://"))):
        raise CommandRefused(
            f"Octopia takes a tracking URL starting with http(s):// of at most {URL_MAX} "
            "characters",
            rule="octopia-tracking-url",
            status=422,
        )
    if order.channel_status not in (wire.IN_PREPARATION, wire.SHIPPED):
        raise CommandRefused(
            f"Octopia takes a shipment only once the order is {wire.IN_PREPARATION} "
            f"(accepted and paid); it is {order.channel_status}",
            rule="octopia-not-in-preparation",
        )
    for line, quantity in _lines(payload, order, "items"):
        if channel_fulfilled(order, line):
            raise CommandRefused(
                f"line {line.id} is shipped by the channel (supply mode "
                f"{line.extras.get(SUPPLY_MODE_EXTRA)}): Octopia takes no seller shipment of it",
                rule="channel-fulfilled-line",
            )
        _whole(line, quantity, "ships")
    if sc is not None and sc.one_parcel_per_order:
        earlier = [
            s
            for s in order.shipments
            if s.id != payload.get("shipment_id")
            and not any(channel_fulfilled(order, order.line(i.line_id)) for i in s.items)
        ]
        if earlier:
            raise CommandRefused(
                f"sales channel {sc.id} takes one parcel per complete order and order "
                f"{order.id} has one already ({earlier[0].tracking_number or earlier[0].id})",
                rule="one-parcel-per-order",
            )


def reason_code(reason: Any) -> str:
    try:
        return REASON_CODES[Reason(str(reason))]
    except (KeyError, ValueError):
        codes = ", ".join(r.value for r in REASON_CODES)
        raise CommandRefused(
            f"Octopia has no cancellation reason code for {reason!r} (it takes: {codes})",
            rule="cancellation-reason-not-accepted",
            status=422,
        ) from None


def check_code_in_state(code: str, order: Order, what: str) -> None:
    allowed = wire.REASON_CODE_STATES[code]
    if order.channel_status not in allowed:
        raise CommandRefused(
            f"{what}: Octopia allows reason code {code} only in {', '.join(allowed)}; "
            f"order {order.id} is {order.channel_status}",
            rule="cancellation-reason-not-allowed-in-channel-state",
        )


def check_cancellation(payload: Mapping[str, Any], order: Order) -> None:
    if payload.get("closes_fulfilment"):
        return
    if any(channel_fulfilled(order, line) for line in order.leaf_lines):
        raise CommandRefused(
            "Octopia rejects a seller cancellation of an order with Fulfillment or Xdock "
            "lines: the channel's logistics decide them",
            rule="channel-fulfilled-cancellation",
        )
    code = reason_code(payload.get("reason"))
    check_code_in_state(code, order, f"reason {payload.get('reason')}")
    requested = _open_request_lines(order)
    for line, quantity in _lines(payload, order, "lines"):
        if line.id in requested:
            allowed = ", ".join(wire.REASON_CODE_STATES[code])
            raise CommandRefused(
                f"line {line.id} is in {wire.CANCEL_REQUEST} (the customer asked to cancel): "
                f"reason code {code} is allowed only in {allowed}; decide the request instead",
                rule="cancellation-reason-not-allowed-in-channel-state",
            )
        if not payload.get("after_shipment"):
            _whole(line, quantity, "cancels")


def _open_request_lines(order: Order) -> set[str]:
    found: set[str] = set()
    for c in order.cancellations:
        if c.state is RequestState.REQUESTED:
            found |= {i.line_id for i in c.lines} if c.lines else {ln.id for ln in order.lines}
    return found


def request_of(order: Order, payload: Mapping[str, Any]) -> Cancellation | None:
    return next((c for c in order.cancellations if c.id == payload.get("cancellation_id")), None)


def check_decision(
    payload: Mapping[str, Any], order: Order, sc: SalesChannel | None, accept_code: str
) -> None:
    request = request_of(order, payload)
    if request is None:
        return  # the core names an unknown request itself
    ids = {i.line_id for i in request.lines} or {ln.id for ln in order.leaf_lines}
    lines = [order.line(i) for i in ids]
    where = f"cancellation request {request.id}"
    if any(channel_fulfilled(order, line) for line in lines):
        raise CommandRefused(
            f"{where} is on lines the channel ships (Fulfillment/Xdock): the marketplace "
            "decides it",
            rule="channel-fulfilled-cancellation",
        )
    if payload.get("decision") == "accept":
        check_code_in_state(accept_code, order, f"accepting {where}")
        live = {ln.id for ln in order.leaf_lines if ln.live > 0}
        if sc is not None and not sc.cancels_lines and not live <= ids:
            raise CommandRefused(
                f"sales channel {sc.id} cancels whole orders only: {where} covers some lines",
                rule="octopia-whole-order-cancellation",
            )
        return
    if sc is None or not sc.refusal_ships:
        raise CommandRefused(
            f"sales channel {sc.id if sc else '?'} takes no refusal of a customer's "
            "cancellation request (only Cdiscount lets the seller ship such a line): accept it",
            rule="octopia-refusal-not-allowed",
        )
    if request.initiator is not Initiator.CUSTOMER:
        raise CommandRefused(
            f"{where} comes from the {request.initiator.value}: Octopia lets the seller ship "
            "only lines the customer asked to cancel",
            rule="octopia-refusal-not-allowed",
        )
    if order.channel_status != wire.IN_PREPARATION:
        raise CommandRefused(
            f"refusing {where} means shipping its lines, which Octopia allows only while the "
            f"order is {wire.IN_PREPARATION}; it is {order.channel_status}",
            rule="octopia-refusal-not-allowed",
        )


def preflight(
    kind: CommandKind,
    payload: Mapping[str, Any],
    order: Order,
    sc: SalesChannel | None,
    *,
    carriers: Mapping[str, str] | None,
    accept_code: str,
) -> None:
    if kind is CommandKind.SHIP:
        check_shipment(payload, order, sc, carriers)
    elif kind is CommandKind.CANCEL:
        check_cancellation(payload, order)
    elif kind is CommandKind.DECIDE_CANCELLATION:
        check_decision(payload, order, sc, accept_code)
