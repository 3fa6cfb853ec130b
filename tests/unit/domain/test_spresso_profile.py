"""Seller commands against a Spresso-like channel: orders arrive ready, several fulfilments,
one shipment per fulfilment, short ships, delivery reported by the seller, no cancellation."""

from __future__ import annotations

import pytest

from orderhub.domain.errors import (
    InvalidInput,
    InvalidTransition,
    NotSupportedByChannel,
    UnknownFulfilment,
)
from orderhub.domain.model import Order
from orderhub.domain.values import (
    FulfilledBy,
    FulfilmentStatus,
    Initiator,
    OrderStatus,
    Reason,
    RequestState,
)
from orderhub.testing.channel import spresso_like

from .support import (
    LATER,
    C,
    Doc,
    L,
    apply,
    counters,
    fingerprint,
    fulfilment_id,
    lq,
    own_events,
    receive,
    ship,
    take_events,
)

CAPS = spresso_like()
DOC = Doc(
    status="fulfillable",
    fulfilments=(("F1", FulfilledBy.SELLER), ("F2", FulfilledBy.SELLER)),
    lines=(
        L(id="V1", quantity=2, fulfilment="F1"),
        L(id="V2", quantity=1, fulfilment="F1"),
        L(id="V3", quantity=3, fulfilment="F2"),
    ),
)


@pytest.fixture
def order() -> Order:
    new = receive(CAPS, DOC)
    take_events(new)
    return new


def test_an_order_arrives_ready_to_ship() -> None:
    order = receive(CAPS, DOC)
    assert not order.acceptance_required
    assert order.released
    assert order.status is OrderStatus.READY_TO_SHIP
    assert take_events(order) == ["order.received", "order.ready_to_ship"]
    assert [f.channel_fulfilment_id for f in order.fulfilments] == ["F1", "F2"]


def test_there_is_nothing_to_accept(order: Order) -> None:
    before = fingerprint(order)
    with pytest.raises(NotSupportedByChannel) as caught:
        order.accept(CAPS, now=LATER)
    assert caught.value.rule == "acceptance-not-supported"
    assert "arrive ready to ship" in caught.value.detail
    assert fingerprint(order) == before


def test_there_is_nothing_to_reject(order: Order) -> None:
    before = fingerprint(order)
    with pytest.raises(NotSupportedByChannel) as caught:
        order.reject(CAPS, reason=Reason.OUT_OF_STOCK, now=LATER)
    assert caught.value.rule == "rejection-not-supported"
    assert "ship short" in caught.value.detail
    assert fingerprint(order) == before


def test_cancellation_is_refused_with_an_explanation(order: Order) -> None:
    with pytest.raises(NotSupportedByChannel) as caught:
        order.cancel(CAPS, reason=Reason.OUT_OF_STOCK, cancellation_id="K1", now=LATER)
    assert caught.value.rule == "seller-cancellation-not-supported"
    assert "ship short" in caught.value.detail


def test_a_fulfilment_ships_on_its_own(order: Order) -> None:
    f1 = fulfilment_id(order, "F1")
    ship(order, CAPS, [lq(order, "V1", 2), lq(order, "V2", 1)], fulfilment_id=f1)

    assert order.status is OrderStatus.PARTIALLY_SHIPPED
    assert [f.status for f in order.fulfilments] == [
        FulfilmentStatus.SHIPPED,
        FulfilmentStatus.OPEN,
    ]
    assert order.shipments[0].fulfilment_id == f1
    assert take_events(order) == ["order.shipment_recorded"]


def test_the_fulfilment_is_found_from_the_lines(order: Order) -> None:
    ship(order, CAPS, [lq(order, "V3", 1)])
    assert order.shipments[0].fulfilment_id == fulfilment_id(order, "F2")


def test_one_shipment_leaves_from_one_fulfilment(order: Order) -> None:
    with pytest.raises(InvalidInput) as caught:
        ship(order, CAPS, [lq(order, "V1", 1), lq(order, "V3", 1)])
    assert caught.value.rule == "shipment-spans-fulfilments"


def test_a_line_of_another_fulfilment_is_refused(order: Order) -> None:
    with pytest.raises(InvalidInput) as caught:
        ship(order, CAPS, [lq(order, "V3", 1)], fulfilment_id=fulfilment_id(order, "F1"))
    assert caught.value.rule == "line-not-in-fulfilment"


def test_an_unknown_fulfilment_is_refused(order: Order) -> None:
    with pytest.raises(UnknownFulfilment) as caught:
        ship(order, CAPS, [lq(order, "V3", 1)], fulfilment_id="nope")
    assert caught.value.rule == "unknown-fulfilment"


def test_a_short_ship_cancels_the_rest_as_out_of_stock(order: Order) -> None:
    f1 = fulfilment_id(order, "F1")
    ship(order, CAPS, [lq(order, "V1", 1)], fulfilment_id=f1, final=True)

    assert counters(order, "V1") == {
        "accepted": 0,
        "rejected": 0,
        "shipped": 1,
        "delivered": 0,
        "cancelled": 1,
    }
    assert counters(order, "V2")["cancelled"] == 1
    assert counters(order, "V3")["cancelled"] == 0  # the other fulfilment is untouched
    closed = order.cancellations[0]
    assert closed.reason is Reason.OUT_OF_STOCK
    assert closed.initiator is Initiator.SELLER
    assert closed.state is RequestState.ACCEPTED
    assert {(i.line_id, i.quantity) for i in closed.lines} == {
        (lq(order, "V1", 1).line_id, 1),
        (lq(order, "V2", 1).line_id, 1),
    }
    assert order.fulfilments[0].status is FulfilmentStatus.SHIPPED
    assert order.status is OrderStatus.PARTIALLY_SHIPPED
    events = own_events(order)
    assert [e.type.value for e in events] == ["order.shipment_recorded", "order.lines_cancelled"]
    assert events[1].data["reason"] == "out_of_stock"
    assert events[1].data["initiator"] == "seller"


def test_a_short_ship_of_the_last_fulfilment_ships_the_order(order: Order) -> None:
    ship(order, CAPS, [lq(order, "V1", 2), lq(order, "V2", 1)], shipment_id="S1")
    take_events(order)
    ship(order, CAPS, [lq(order, "V3", 2)], shipment_id="S2", final=True)

    assert order.status is OrderStatus.SHIPPED
    events = own_events(order)
    assert [e.type.value for e in events] == [
        "order.shipment_recorded",
        "order.lines_cancelled",
        "order.shipped",
    ]
    assert events[2].data["previous_status"] == "partially_shipped"


def test_the_seller_reports_delivery_per_fulfilment(order: Order) -> None:
    f1 = fulfilment_id(order, "F1")
    ship(order, CAPS, [lq(order, "V1", 2), lq(order, "V2", 1)], shipment_id="S1")
    ship(order, CAPS, [lq(order, "V3", 3)], shipment_id="S2")
    take_events(order)

    delivered = order.confirm_delivery(CAPS, now=LATER, fulfilment_id=f1)

    assert {(i.line_id, i.quantity) for i in delivered} == {
        (lq(order, "V1", 1).line_id, 2),
        (lq(order, "V2", 1).line_id, 1),
    }
    assert order.status is OrderStatus.SHIPPED
    assert order.fulfilments[0].status is FulfilmentStatus.DELIVERED
    # a part delivered does not change the status, yet the feed hears of it
    events = own_events(order)
    assert [e.type.value for e in events] == ["order.updated"]
    assert events[0].data["fulfilment_id"] == f1
    take_events(order)

    order.confirm_delivery(CAPS, now=LATER)
    assert order.status is OrderStatus.DELIVERED
    events = own_events(order)
    assert [e.type.value for e in events] == ["order.delivered"]
    assert events[0].data["previous_status"] == "shipped"


def test_nothing_shipped_cannot_be_delivered(order: Order) -> None:
    with pytest.raises(InvalidTransition) as caught:
        order.confirm_delivery(CAPS, now=LATER)
    assert caught.value.rule == "nothing-to-deliver"


def test_delivering_twice_is_refused(order: Order) -> None:
    ship(order, CAPS, [lq(order, "V3", 3)])
    order.confirm_delivery(CAPS, now=LATER)
    with pytest.raises(InvalidTransition):
        order.confirm_delivery(CAPS, now=LATER)


def test_the_channel_cancels_the_order(order: Order) -> None:
    apply(
        order,
        CAPS,
        Doc(
            status="cancelled",
            lines=DOC.lines,
            cancellations=(
                C(
                    id="X1",
                    state=RequestState.ACCEPTED,
                    initiator=Initiator.CHANNEL,
                    reason=Reason.CHANNEL_CANCELLED,
                ),
            ),
        ),
    )
    assert order.status is OrderStatus.CANCELLED
    assert order.cancellations[0].initiator is Initiator.CHANNEL
    events = own_events(order)
    assert [e.type.value for e in events] == ["order.cancelled"]
    assert events[0].data["initiator"] == "channel"
    assert order.channel_status == "cancelled"


def test_without_short_ship_a_line_may_ship_in_parts(order: Order) -> None:
    ship(order, CAPS, [lq(order, "V3", 1)], shipment_id="S1")
    ship(order, CAPS, [lq(order, "V3", 2)], shipment_id="S2")
    assert counters(order, "V3")["shipped"] == 3
