"""Cancellation requests decided line by line (where the channel allows), and a fulfilment
closed short by the warehouse without a parcel."""

from __future__ import annotations

import dataclasses

import pytest

from orderhub.domain.capabilities import Scope
from orderhub.domain.errors import InvalidInput, InvalidTransition, NotSupportedByChannel
from orderhub.domain.model import Order
from orderhub.domain.values import (
    Decision,
    FulfilledBy,
    FulfilmentStatus,
    OrderStatus,
    Reason,
    RequestState,
)
from orderhub.testing.channel import octopia_like, spresso_like

from .support import LATER, C, Doc, L, counters, fingerprint, lq, receive, ship, take_events

LINE_DECISIONS = dataclasses.replace(
    octopia_like(),
    cancellation_requests=True,
    cancellation_decision=Scope.LINE,
    acceptance=Scope.LINE,
)
WHOLE_DECISIONS = dataclasses.replace(LINE_DECISIONS, cancellation_decision=Scope.ORDER)
REQUESTED = Doc(
    status="InPreparation",
    released=True,
    lines=(L(id="L1", quantity=2, accepted=2), L(id="L2", quantity=1, accepted=1)),
    cancellations=(C(id="CR-1", lines=(("L1", 2), ("L2", 1))),),
)


@pytest.fixture
def order() -> Order:
    new = receive(LINE_DECISIONS, REQUESTED)
    take_events(new)
    return new


def test_one_line_of_a_request_is_accepted_the_other_stays_open(order: Order) -> None:
    part = order.decide_cancellation(
        LINE_DECISIONS,
        decision=Decision.ACCEPT,
        now=LATER,
        lines=[lq(order, "L2", 1)],
        part_id="P1",
    )

    assert (part.id, part.state, part.channel_cancellation_id) == (
        "P1",
        RequestState.ACCEPTED,
        "CR-1",
    )
    assert counters(order, "L2")["cancelled"] == 1
    assert counters(order, "L1")["cancelled"] == 0
    (rest,) = [c for c in order.cancellations if c.id != "P1"]
    assert rest.state is RequestState.REQUESTED
    assert [(i.line_id, i.quantity) for i in rest.lines] == [(lq(order, "L1", 2).line_id, 2)]
    assert order.cancellation_requested  # L1 still waits for a decision
    assert "order.lines_cancelled" in take_events(order)

    # the rest refused: nothing more is cancelled, the line stays to ship
    refused = order.decide_cancellation(LINE_DECISIONS, decision=Decision.REFUSE, now=LATER)
    assert refused is rest
    assert rest.state is RequestState.REFUSED
    assert counters(order, "L1")["cancelled"] == 0
    assert not order.cancellation_requested
    assert order.status is OrderStatus.READY_TO_SHIP
    assert take_events(order) == ["order.cancellation_refused"]


def test_naming_every_line_decides_the_request_itself(order: Order) -> None:
    decided = order.decide_cancellation(
        LINE_DECISIONS,
        decision=Decision.REFUSE,
        now=LATER,
        lines=[lq(order, "L1", 2), lq(order, "L2", 1)],
        part_id="P1",
    )
    assert decided.channel_cancellation_id == "CR-1"
    assert [c.id for c in order.cancellations] == [decided.id]  # no split
    assert decided.state is RequestState.REFUSED


def test_a_channel_that_decides_whole_requests_refuses_lines(order: Order) -> None:
    before = fingerprint(order)
    with pytest.raises(NotSupportedByChannel) as caught:
        order.decide_cancellation(
            WHOLE_DECISIONS, decision=Decision.ACCEPT, now=LATER, lines=[lq(order, "L2", 1)]
        )
    assert caught.value.rule == "cancellation-decision-whole-only"
    assert fingerprint(order) == before


@pytest.mark.parametrize(("line", "quantity"), [("L1", 3), ("L2", 2), ("L1", 0)])
def test_a_decision_for_more_than_the_request_asks_is_refused(
    order: Order, line: str, quantity: int
) -> None:
    before = fingerprint(order)
    with pytest.raises(InvalidInput) as caught:
        order.decide_cancellation(
            LINE_DECISIONS,
            decision=Decision.ACCEPT,
            now=LATER,
            lines=[lq(order, line, quantity)],
        )
    assert caught.value.rule == "line-not-in-cancellation-request"
    assert fingerprint(order) == before


def test_a_line_outside_the_request_is_refused() -> None:
    doc = dataclasses.replace(REQUESTED, cancellations=(C(id="CR-1", lines=(("L2", 1),)),))
    order = receive(LINE_DECISIONS, doc)
    with pytest.raises(InvalidInput) as caught:
        order.decide_cancellation(
            LINE_DECISIONS, decision=Decision.ACCEPT, now=LATER, lines=[lq(order, "L1", 1)]
        )
    assert caught.value.rule == "line-not-in-cancellation-request"


# --- closing a fulfilment short ------------------------------------------------------------

SHORT = spresso_like()
TWO_FULFILMENTS = Doc(
    status="fulfillable",
    fulfilments=(("F1", FulfilledBy.SELLER), ("F2", FulfilledBy.SELLER)),
    lines=(
        L(id="V1", quantity=3, fulfilment="F1"),
        L(id="V2", quantity=1, fulfilment="F2"),
    ),
)


def fid(order: Order, channel_id: str) -> str:
    return next(f.id for f in order.fulfilments if f.channel_fulfilment_id == channel_id)


def test_a_fulfilment_shipped_in_part_is_closed_short() -> None:
    assert SHORT.short_ship
    order = receive(SHORT, TWO_FULFILMENTS)
    ship(order, SHORT, [lq(order, "V1", 1)])
    take_events(order, fulfilments=True)

    closed = order.close_fulfilment(SHORT, fulfilment_id=fid(order, "F1"), now=LATER)

    assert (closed.reason, closed.state) == (Reason.OUT_OF_STOCK, RequestState.ACCEPTED)
    assert [(i.line_id, i.quantity) for i in closed.units] == [(lq(order, "V1", 2).line_id, 2)]
    assert counters(order, "V1") == {**counters(order, "V1"), "shipped": 1, "cancelled": 2}
    f1 = next(f for f in order.fulfilments if f.channel_fulfilment_id == "F1")
    assert f1.status is FulfilmentStatus.SHIPPED
    events = take_events(order, fulfilments=True)
    assert "order.lines_cancelled" in events
    assert "fulfilment.shipped" in events
    assert order.status is OrderStatus.PARTIALLY_SHIPPED  # F2 still to ship


@pytest.mark.parametrize(
    ("shipped", "rule"), [(0, "close-before-shipment"), (3, "nothing-to-close")]
)
def test_a_fulfilment_is_closed_only_when_something_but_not_everything_shipped(
    shipped: int, rule: str
) -> None:
    order = receive(SHORT, TWO_FULFILMENTS)
    if shipped:
        ship(order, SHORT, [lq(order, "V1", shipped)])
    before = fingerprint(order)
    with pytest.raises(InvalidTransition) as caught:
        order.close_fulfilment(SHORT, fulfilment_id=fid(order, "F1"), now=LATER)
    assert caught.value.rule == rule
    assert fingerprint(order) == before


def test_a_channel_without_short_ships_cannot_close_a_fulfilment() -> None:
    caps = dataclasses.replace(SHORT, short_ship=False)
    order = receive(caps, TWO_FULFILMENTS)
    ship(order, caps, [lq(order, "V1", 1)])
    before = fingerprint(order)
    with pytest.raises(NotSupportedByChannel) as caught:
        order.close_fulfilment(caps, fulfilment_id=fid(order, "F1"), now=LATER)
    assert caught.value.rule == "short-ship-not-supported"
    assert fingerprint(order) == before


def test_a_fulfilment_the_channel_ships_is_not_the_warehouse_s_to_close() -> None:
    doc = dataclasses.replace(
        TWO_FULFILMENTS,
        fulfilments=(("F1", FulfilledBy.SELLER), ("F2", FulfilledBy.CHANNEL)),
    )
    order = receive(SHORT, doc)
    with pytest.raises(NotSupportedByChannel) as caught:
        order.close_fulfilment(SHORT, fulfilment_id=fid(order, "F2"), now=LATER)
    assert caught.value.rule == "channel-fulfilled-line"


# --- a refusal carried out by shipping (Cdiscount) -----------------------------------------

SHIPS_REFUSAL = dataclasses.replace(LINE_DECISIONS, refusal_ships=True)


def test_shipping_a_line_a_customer_asked_to_cancel_refuses_that_part(order: Order) -> None:
    ids = iter(["P1", "P2"])
    items = [lq(order, "L1", 1)]
    ship(order, SHIPS_REFUSAL, items)
    refused = order.refuse_by_shipment(SHIPS_REFUSAL, items, now=LATER, new_id=lambda: next(ids))

    assert [(c.id, c.state, c.channel_cancellation_id) for c in refused] == [
        ("P1", RequestState.REFUSED, "CR-1")
    ]
    assert [(i.line_id, i.quantity) for i in refused[0].lines] == [(items[0].line_id, 1)]
    (rest,) = [c for c in order.cancellations if c.state is RequestState.REQUESTED]
    assert sorted((i.line_id, i.quantity) for i in rest.lines) == sorted(
        [(items[0].line_id, 1), (lq(order, "L2", 1).line_id, 1)]
    )
    assert "order.cancellation_refused" in take_events(order)


def test_without_refusal_ships_a_shipment_leaves_the_request_to_the_channel(
    order: Order,
) -> None:
    items = [lq(order, "L1", 1)]
    ship(order, LINE_DECISIONS, items)
    assert order.refuse_by_shipment(LINE_DECISIONS, items, now=LATER, new_id=lambda: "P1") == []
    assert [c.state for c in order.cancellations] == [RequestState.REQUESTED]


def test_one_shipped_unit_refuses_one_requested_unit_not_every_request_on_its_line() -> None:
    order = receive(
        LINE_DECISIONS,
        Doc(
            status="InPreparation",
            released=True,
            lines=(L(id="L1", quantity=2, accepted=2),),
            cancellations=(C(id="CR-1", lines=(("L1", 1),)), C(id="CR-2", lines=(("L1", 1),))),
        ),
    )
    items = [lq(order, "L1", 1)]
    ship(order, SHIPS_REFUSAL, items)
    ids = iter(["P1", "P2"])
    refused = order.refuse_by_shipment(SHIPS_REFUSAL, items, now=LATER, new_id=lambda: next(ids))
    # the parcel carries one unit: one request is refused, the other unit may still go
    assert [(c.channel_cancellation_id, c.state) for c in refused] == [
        ("CR-1", RequestState.REFUSED)
    ]
    (still,) = [c for c in order.cancellations if c.state is RequestState.REQUESTED]
    assert still.channel_cancellation_id == "CR-2"


def test_a_parcel_served_by_units_nobody_asked_to_cancel_refuses_nothing() -> None:
    order = receive(
        LINE_DECISIONS,
        Doc(
            status="InPreparation",
            released=True,
            lines=(L(id="L1", quantity=3, accepted=3),),
            cancellations=(C(id="CR-1", lines=(("L1", 1),)),),
        ),
    )
    items = [lq(order, "L1", 2)]
    ship(order, SHIPS_REFUSAL, items)
    assert order.refuse_by_shipment(SHIPS_REFUSAL, items, now=LATER, new_id=lambda: "P1") == []
    assert [c.state for c in order.cancellations] == [RequestState.REQUESTED]
    # the third unit goes too: now the parcel carries the unit the customer asked about
    items = [lq(order, "L1", 1)]
    ship(order, SHIPS_REFUSAL, items, shipment_id="S2")
    refused = order.refuse_by_shipment(SHIPS_REFUSAL, items, now=LATER, new_id=lambda: "P2")
    assert [(c.channel_cancellation_id, c.state) for c in refused] == [
        ("CR-1", RequestState.REFUSED)
    ]
