"""Seller commands against a topi-like channel: whole-order acceptance and rejection, per-line
partial shipments with serial numbers, no delivery step, no seller cancellation."""

from __future__ import annotations

import pytest

from orderhub.domain.errors import (
    DuplicateSerialNumber,
    InvalidInput,
    InvalidTransition,
    NotSupportedByChannel,
    SerialNumberRequired,
    TooManyUnits,
    UnknownLine,
)
from orderhub.domain.model import Order
from orderhub.domain.values import Decision, LineQuantity, OrderStatus, Reason
from orderhub.testing.channel import topi_like

from .support import (
    LATER,
    Doc,
    L,
    counters,
    fingerprint,
    line_id,
    lq,
    own_events,
    receive,
    ship,
    take_events,
)

CAPS = topi_like()


@pytest.fixture
def order() -> Order:
    new = receive(
        CAPS,
        Doc(
            status="created",
            lines=(
                L(id="L1", quantity=2, requires_serial=True),
                L(id="L2", quantity=1),
            ),
        ),
    )
    take_events(new)
    return new


@pytest.fixture
def accepted(order: Order) -> Order:
    order.accept(CAPS, now=LATER)
    take_events(order)
    return order


def test_a_new_order_awaits_acceptance(order: Order) -> None:
    assert order.status is OrderStatus.AWAITING_ACCEPTANCE
    assert order.acceptance_required
    assert not order.released


def test_accepting_takes_every_unit_and_releases(order: Order) -> None:
    accepted = order.accept(CAPS, now=LATER)

    assert {(i.line_id, i.quantity) for i in accepted} == {
        (line_id(order, "L1"), 2),
        (line_id(order, "L2"), 1),
    }
    assert counters(order, "L1")["accepted"] == 2
    assert order.released
    assert order.status is OrderStatus.READY_TO_SHIP
    assert take_events(order) == ["order.accepted", "order.ready_to_ship"]
    assert order.updated_at == LATER


def test_accepting_every_line_by_name_is_the_whole_order(order: Order) -> None:
    order.accept(CAPS, now=LATER, lines=[lq(order, "L1", 2), lq(order, "L2", 1)])
    assert order.status is OrderStatus.READY_TO_SHIP


def test_accepting_part_of_the_order_is_refused(order: Order) -> None:
    before = fingerprint(order)
    with pytest.raises(NotSupportedByChannel) as caught:
        order.accept(CAPS, now=LATER, lines=[lq(order, "L1", 2)])
    assert caught.value.rule == "acceptance-whole-order-only"
    assert fingerprint(order) == before


def test_accepting_twice_is_refused(accepted: Order) -> None:
    with pytest.raises(InvalidTransition) as caught:
        accepted.accept(CAPS, now=LATER)
    assert caught.value.rule == "nothing-to-accept"


def test_rejecting_before_acceptance_rejects_the_whole_order(order: Order) -> None:
    order.reject(CAPS, reason=Reason.OUT_OF_STOCK, now=LATER)

    assert order.status is OrderStatus.REJECTED
    assert counters(order, "L1")["rejected"] == 2
    assert own_events(order)[0].type.value == "order.rejected"
    assert own_events(order)[0].data["reason"] == "out_of_stock"
    assert take_events(order) == ["order.rejected"]


def test_rejecting_part_of_the_order_is_refused(order: Order) -> None:
    with pytest.raises(NotSupportedByChannel) as caught:
        order.reject(CAPS, reason=Reason.OUT_OF_STOCK, now=LATER, lines=[lq(order, "L2", 1)])
    assert caught.value.rule == "rejection-whole-order-only"
    assert counters(order, "L2")["rejected"] == 0


def test_rejecting_after_acceptance_is_refused_with_the_rule(accepted: Order) -> None:
    before = fingerprint(accepted)
    with pytest.raises(InvalidTransition) as caught:
        accepted.reject(CAPS, reason=Reason.OUT_OF_STOCK, now=LATER)
    assert caught.value.rule == "rejection-after-acceptance"
    assert "before it is accepted" in caught.value.detail
    assert fingerprint(accepted) == before


def test_shipping_before_acceptance_is_refused(order: Order) -> None:
    with pytest.raises(InvalidTransition) as caught:
        ship(order, CAPS, [lq(order, "L2", 1)])
    assert caught.value.rule == "ship-before-acceptance"
    assert order.shipments == []


def test_a_partial_shipment_then_the_rest(accepted: Order) -> None:
    ship(accepted, CAPS, [lq(accepted, "L2", 1)], shipment_id="S1")
    assert accepted.status is OrderStatus.PARTIALLY_SHIPPED
    assert take_events(accepted) == ["order.shipment_recorded"]

    ship(accepted, CAPS, [lq(accepted, "L1", 2, "SN-1", "SN-2")], shipment_id="S2")
    assert accepted.status is OrderStatus.SHIPPED
    assert take_events(accepted) == ["order.shipment_recorded", "order.shipped"]
    assert [s.id for s in accepted.shipments] == ["S1", "S2"]
    assert accepted.shipments[1].items[0].serial_numbers == ("SN-1", "SN-2")


def test_the_shipment_event_carries_the_parcel(accepted: Order) -> None:
    ship(accepted, CAPS, [lq(accepted, "L1", 1, "SN-1")], shipment_id="S7")
    event = accepted.events[0]
    assert event.data == {
        "shipment_id": "S7",
        "fulfilment_id": accepted.fulfilments[0].id,
        "carrier": "dhl",
        "tracking_number": "T-S7",
        "tracking_url": None,
        "items": [{"line_id": line_id(accepted, "L1"), "quantity": 1, "serial_numbers": ["SN-1"]}],
    }


def test_a_line_flagged_for_serials_needs_them(accepted: Order) -> None:
    with pytest.raises(SerialNumberRequired) as caught:
        ship(accepted, CAPS, [lq(accepted, "L1", 1)])
    assert caught.value.rule == "serial-number-required"


def test_empty_serials_count_as_none(accepted: Order) -> None:
    # topi sends "" for assets without a serial: fine on a line that needs none
    ship(accepted, CAPS, [lq(accepted, "L2", 1, "")])
    assert accepted.shipments[0].items[0].serial_numbers == ()
    with pytest.raises(SerialNumberRequired):
        ship(accepted, CAPS, [lq(accepted, "L1", 1, "")], shipment_id="S2")


def test_serial_count_must_match_units(accepted: Order) -> None:
    with pytest.raises(InvalidInput) as caught:
        ship(accepted, CAPS, [lq(accepted, "L1", 2, "SN-1")])
    assert caught.value.rule == "serial-number-count"


def test_a_serial_number_appears_once_in_a_shipment(accepted: Order) -> None:
    with pytest.raises(DuplicateSerialNumber) as caught:
        ship(accepted, CAPS, [lq(accepted, "L1", 2, "SN-1", "SN-1")])
    assert caught.value.rule == "duplicate-serial-number"
    assert counters(accepted, "L1")["shipped"] == 0


def test_a_serial_number_appears_once_per_order(accepted: Order) -> None:
    ship(accepted, CAPS, [lq(accepted, "L1", 1, "SN-1")], shipment_id="S1")
    with pytest.raises(DuplicateSerialNumber):
        ship(accepted, CAPS, [lq(accepted, "L2", 1, "SN-1")], shipment_id="S2")
    assert len(accepted.shipments) == 1


def test_too_many_units_are_refused(accepted: Order) -> None:
    with pytest.raises(TooManyUnits) as caught:
        ship(accepted, CAPS, [lq(accepted, "L2", 2)])
    assert caught.value.rule == "too-many-units"


def test_the_same_line_twice_adds_up(accepted: Order) -> None:
    with pytest.raises(TooManyUnits):
        ship(accepted, CAPS, [lq(accepted, "L2", 1), lq(accepted, "L2", 1)])


def test_zero_units_are_refused(accepted: Order) -> None:
    with pytest.raises(InvalidInput):
        ship(accepted, CAPS, [lq(accepted, "L2", 0)])


def test_an_empty_shipment_is_refused(accepted: Order) -> None:
    with pytest.raises(InvalidInput) as caught:
        ship(accepted, CAPS, [])
    assert caught.value.rule == "empty-shipment"


def test_an_unknown_line_is_refused(accepted: Order) -> None:
    with pytest.raises(UnknownLine) as caught:
        ship(accepted, CAPS, [LineQuantity(line_id="nope", quantity=1)])
    assert caught.value.rule == "unknown-line"


def test_a_bundle_ships_through_its_sub_lines() -> None:
    order = receive(
        CAPS,
        Doc(
            lines=(
                L(id="B", quantity=1),
                L(id="B1", quantity=1, parent="B"),
                L(id="B2", quantity=1, parent="B"),
            )
        ),
    )
    order.accept(CAPS, now=LATER)
    assert counters(order, "B")["accepted"] == 0  # the parent only groups

    with pytest.raises(UnknownLine) as caught:
        ship(order, CAPS, [lq(order, "B", 1)])
    assert caught.value.rule == "bundle-line"

    ship(order, CAPS, [lq(order, "B1", 1), lq(order, "B2", 1)])
    assert order.status is OrderStatus.SHIPPED


def test_there_is_no_delivery_step(accepted: Order) -> None:
    ship(accepted, CAPS, [lq(accepted, "L2", 1)])
    with pytest.raises(NotSupportedByChannel) as caught:
        accepted.confirm_delivery(CAPS, now=LATER)
    assert caught.value.rule == "delivery-confirmation-not-supported"
    assert "no delivery step" in caught.value.detail


@pytest.mark.parametrize("state", ["order", "accepted"])
def test_the_seller_cannot_cancel_and_is_told_what_to_do(
    state: str, order: Order, request: pytest.FixtureRequest
) -> None:
    target: Order = request.getfixturevalue(state)
    before = fingerprint(target)
    with pytest.raises(NotSupportedByChannel) as caught:
        target.cancel(CAPS, reason=Reason.CUSTOMER_REQUEST, cancellation_id="K1", now=LATER)
    assert caught.value.rule == "seller-cancellation-not-supported"
    assert "reject the order before confirmation" in caught.value.detail
    assert "return" in caught.value.detail
    assert fingerprint(target) == before


def test_cancellation_requests_are_not_the_sellers_to_decide(order: Order) -> None:
    with pytest.raises(NotSupportedByChannel) as caught:
        order.decide_cancellation(CAPS, decision=Decision.ACCEPT, now=LATER)
    assert caught.value.rule == "cancellation-decision-not-supported"


def test_a_final_shipment_cannot_close_units_and_changes_nothing(accepted: Order) -> None:
    before = fingerprint(accepted)
    with pytest.raises(NotSupportedByChannel) as caught:
        ship(accepted, CAPS, [lq(accepted, "L2", 1)], final=True)
    assert caught.value.rule == "short-ship-not-supported"
    assert fingerprint(accepted) == before  # refused before anything moved


def test_a_final_shipment_that_ships_everything_is_fine(accepted: Order) -> None:
    ship(accepted, CAPS, [lq(accepted, "L2", 1), lq(accepted, "L1", 2, "A", "B")], final=True)
    assert accepted.status is OrderStatus.SHIPPED
    assert accepted.cancellations == []
