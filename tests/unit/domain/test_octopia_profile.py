"""Seller commands against an Octopia-like channel: per-line acceptance, rejection and
shipment, release by the channel, delivery from the channel, reason codes by status,
decidable cancellation requests, lines fulfilled by the channel."""

from __future__ import annotations

import pytest

from orderhub.domain.errors import (
    InvalidInput,
    InvalidTransition,
    NotSupportedByChannel,
    UnknownCancellation,
)
from orderhub.domain.model import Cancellation, Order, Return
from orderhub.domain.values import (
    Decision,
    FulfilledBy,
    Initiator,
    OrderStatus,
    Reason,
    RequestState,
)
from orderhub.testing.channel import OCTOPIA_REASON_CODES, octopia_like

from .support import (
    LATER,
    C,
    Doc,
    L,
    apply,
    counters,
    fingerprint,
    lq,
    own_events,
    receive,
    ship,
    take_events,
)

CAPS = octopia_like()
LINES = (L(id="L1", quantity=2), L(id="L2", quantity=1))


def doc(**changes: object) -> Doc:
    fields: dict[str, object] = {"status": "WaitingAcceptance", "lines": LINES}
    fields.update(changes)
    return Doc(**fields)  # type: ignore[arg-type]


@pytest.fixture
def order() -> Order:
    new = receive(CAPS, doc())
    take_events(new)
    return new


@pytest.fixture
def accepted(order: Order) -> Order:
    """Accepted by the seller; the channel has not released it yet."""
    order.accept(CAPS, now=LATER)
    take_events(order)
    return order


@pytest.fixture
def released(accepted: Order) -> Order:
    """InPreparation: the channel allows dispatch."""
    apply(
        accepted,
        CAPS,
        doc(
            status="InPreparation",
            released=True,
            lines=(L(id="L1", quantity=2, accepted=2), L(id="L2", quantity=1, accepted=1)),
        ),
    )
    take_events(accepted)
    return accepted


@pytest.fixture
def shipped(released: Order) -> Order:
    ship(released, CAPS, [lq(released, "L1", 2), lq(released, "L2", 1)])
    take_events(released)
    return released


def test_lines_are_accepted_one_by_one(order: Order) -> None:
    order.accept(CAPS, now=LATER, lines=[lq(order, "L1", 2)])
    assert order.status is OrderStatus.AWAITING_ACCEPTANCE
    assert take_events(order) == ["order.accepted"]

    order.accept(CAPS, now=LATER, lines=[lq(order, "L2", 1)])
    assert order.status is OrderStatus.ACCEPTED  # accepted, but not yet released
    assert not order.released
    assert take_events(order) == ["order.accepted"]


def test_units_of_a_line_can_be_accepted_in_parts(order: Order) -> None:
    order.accept(CAPS, now=LATER, lines=[lq(order, "L1", 1)])
    assert counters(order, "L1")["accepted"] == 1
    order.accept(CAPS, now=LATER, lines=[lq(order, "L1", 1)])
    assert counters(order, "L1")["accepted"] == 2


def test_the_channel_releases_an_accepted_order(accepted: Order) -> None:
    apply(
        accepted,
        CAPS,
        doc(
            status="InPreparation",
            released=True,
            lines=(L(id="L1", quantity=2, accepted=2), L(id="L2", quantity=1, accepted=1)),
        ),
    )
    assert accepted.status is OrderStatus.READY_TO_SHIP
    assert accepted.channel_status == "InPreparation"
    assert take_events(accepted) == ["order.ready_to_ship"]
    assert accepted.events == []


def test_shipping_before_release_is_refused(accepted: Order) -> None:
    before = fingerprint(accepted)
    with pytest.raises(InvalidTransition) as caught:
        ship(accepted, CAPS, [lq(accepted, "L1", 1)])
    assert caught.value.rule == "ship-before-release"
    assert fingerprint(accepted) == before


def test_a_line_still_awaiting_acceptance_cannot_ship() -> None:
    order = receive(CAPS, doc(released=True))
    order.accept(CAPS, now=LATER, lines=[lq(order, "L1", 2)])
    with pytest.raises(InvalidTransition) as caught:
        ship(order, CAPS, [lq(order, "L2", 1)])
    assert caught.value.rule == "ship-before-acceptance"

    ship(order, CAPS, [lq(order, "L1", 1)])  # the accepted line ships
    assert order.status is OrderStatus.PARTIALLY_SHIPPED


def test_lines_are_rejected_one_by_one(order: Order) -> None:
    order.accept(CAPS, now=LATER, lines=[lq(order, "L1", 2)])
    take_events(order)
    order.reject(CAPS, reason=Reason.OUT_OF_STOCK, now=LATER, lines=[lq(order, "L2", 1)])

    assert counters(order, "L2")["rejected"] == 1
    assert order.status is OrderStatus.ACCEPTED
    assert take_events(order) == ["order.lines_rejected"]


def test_rejecting_the_rest_of_a_released_order_makes_it_ready() -> None:
    order = receive(CAPS, doc(released=True))
    order.accept(CAPS, now=LATER, lines=[lq(order, "L1", 2)])
    take_events(order)
    order.reject(CAPS, reason=Reason.OUT_OF_STOCK, now=LATER, lines=[lq(order, "L2", 1)])
    assert order.status is OrderStatus.READY_TO_SHIP
    assert take_events(order) == ["order.lines_rejected", "order.ready_to_ship"]
    assert order.events == []


def test_rejecting_the_rest_of_a_partly_shipped_order_makes_it_shipped() -> None:
    order = receive(CAPS, doc(released=True))
    order.accept(CAPS, now=LATER, lines=[lq(order, "L1", 2)])
    ship(order, CAPS, [lq(order, "L1", 2)])
    take_events(order)
    assert order.status is OrderStatus.PARTIALLY_SHIPPED

    order.reject(CAPS, reason=Reason.OUT_OF_STOCK, now=LATER, lines=[lq(order, "L2", 1)])

    assert order.status is OrderStatus.SHIPPED
    events = own_events(order)
    assert [e.type.value for e in events] == ["order.lines_rejected", "order.shipped"]
    assert events[1].data["previous_status"] == "partially_shipped"


def test_rejecting_every_line_rejects_the_order(order: Order) -> None:
    order.reject(CAPS, reason=Reason.OUT_OF_STOCK, now=LATER, lines=[lq(order, "L1", 2)])
    order.reject(CAPS, reason=Reason.OUT_OF_STOCK, now=LATER, lines=[lq(order, "L2", 1)])
    assert order.status is OrderStatus.REJECTED
    assert take_events(order) == ["order.lines_rejected", "order.rejected"]


def test_nothing_left_to_reject_after_acceptance(accepted: Order) -> None:
    with pytest.raises(InvalidTransition) as caught:
        accepted.reject(CAPS, reason=Reason.OUT_OF_STOCK, now=LATER)
    assert caught.value.rule == "nothing-to-reject"


def test_delivery_comes_from_the_channel(shipped: Order) -> None:
    with pytest.raises(NotSupportedByChannel) as caught:
        shipped.confirm_delivery(CAPS, now=LATER)
    assert caught.value.rule == "delivery-confirmation-not-supported"

    apply(
        shipped,
        CAPS,
        doc(
            status="Delivered",
            released=True,
            lines=(
                L(id="L1", quantity=2, accepted=2, shipped=2, delivered=2),
                L(id="L2", quantity=1, accepted=1, shipped=1, delivered=1),
            ),
        ),
    )
    assert shipped.status is OrderStatus.DELIVERED
    assert take_events(shipped) == ["order.delivered"]


# --- seller cancellation with reason codes ------------------------------------------------


def test_the_reason_code_table_maps_to_canonical_reasons() -> None:
    assert OCTOPIA_REASON_CODES["seller-refusal"][0] is Reason.SELLER_REFUSAL
    assert OCTOPIA_REASON_CODES["not-collected-at-the-collection-point"][0] is (
        Reason.NOT_COLLECTED_AT_PICKUP_POINT
    )
    assert len(OCTOPIA_REASON_CODES) == 15
    assert len({reason for reason, _ in OCTOPIA_REASON_CODES.values()}) == 15
    assert set(CAPS.cancellation_reasons) == {r for r, _ in OCTOPIA_REASON_CODES.values()}


def test_seller_refusal_in_accepted_cancels_the_order(accepted: Order) -> None:
    outcome = accepted.cancel(CAPS, reason=Reason.SELLER_REFUSAL, cancellation_id="K1", now=LATER)

    assert isinstance(outcome, Cancellation)
    assert outcome.initiator is Initiator.SELLER
    assert outcome.state is RequestState.ACCEPTED
    assert accepted.status is OrderStatus.CANCELLED
    assert counters(accepted, "L1") == {
        "accepted": 0,
        "rejected": 0,
        "shipped": 0,
        "delivered": 0,
        "cancelled": 2,
    }
    events = own_events(accepted)
    assert [e.type.value for e in events] == ["order.cancelled"]
    assert events[0].data["reason"] == "seller_refusal"
    assert events[0].data["initiator"] == "seller"


def test_seller_refusal_of_one_line(released: Order) -> None:
    released.cancel(
        CAPS,
        reason=Reason.SELLER_REFUSAL,
        cancellation_id="K1",
        now=LATER,
        lines=[lq(released, "L2", 1)],
    )
    assert released.status is OrderStatus.READY_TO_SHIP
    assert counters(released, "L2")["cancelled"] == 1
    assert take_events(released) == ["order.lines_cancelled"]
    assert released.cancellations[0].lines == [lq(released, "L2", 1)]


def test_cancelling_the_rest_of_a_partly_shipped_order_makes_it_shipped(released: Order) -> None:
    ship(released, CAPS, [lq(released, "L1", 2)])
    take_events(released)
    released.cancel(CAPS, reason=Reason.SELLER_REFUSAL, cancellation_id="K1", now=LATER)
    assert released.status is OrderStatus.SHIPPED
    assert take_events(released) == ["order.lines_cancelled", "order.shipped"]


def test_seller_refusal_after_shipment_is_refused(shipped: Order) -> None:
    before = fingerprint(shipped)
    with pytest.raises(InvalidTransition) as caught:
        shipped.cancel(CAPS, reason=Reason.SELLER_REFUSAL, cancellation_id="K1", now=LATER)
    assert caught.value.rule == "cancellation-reason-not-allowed-in-status"
    assert "accepted" in caught.value.detail
    assert fingerprint(shipped) == before


def test_no_reason_is_allowed_before_acceptance(order: Order) -> None:
    with pytest.raises(InvalidTransition) as caught:
        order.cancel(CAPS, reason=Reason.CUSTOMER_CLAIM, cancellation_id="K1", now=LATER)
    assert caught.value.rule == "cancellation-reason-not-allowed-in-status"


def test_a_reason_without_a_code_is_refused(accepted: Order) -> None:
    with pytest.raises(InvalidInput) as caught:
        accepted.cancel(CAPS, reason=Reason.OUT_OF_STOCK, cancellation_id="K1", now=LATER)
    assert caught.value.rule == "cancellation-reason-not-accepted"


def test_a_customer_claim_after_shipment_becomes_a_return(shipped: Order) -> None:
    outcome = shipped.cancel(
        CAPS,
        reason=Reason.CUSTOMER_CLAIM,
        cancellation_id="K1",
        now=LATER,
        lines=[lq(shipped, "L1", 1)],
    )

    assert isinstance(outcome, Return)
    assert outcome.state is RequestState.ACCEPTED
    assert outcome.lines == [lq(shipped, "L1", 1)]
    assert shipped.returns == [outcome]
    assert shipped.cancellations == []
    assert shipped.status is OrderStatus.SHIPPED
    assert counters(shipped, "L1")["cancelled"] == 0
    assert take_events(shipped) == ["order.return_requested"]


def test_a_return_cannot_exceed_what_shipped(released: Order) -> None:
    ship(released, CAPS, [lq(released, "L1", 2), lq(released, "L2", 1)])
    with pytest.raises(InvalidInput):
        released.cancel(
            CAPS,
            reason=Reason.DAMAGED,
            cancellation_id="K1",
            now=LATER,
            lines=[lq(released, "L2", 2)],
        )


def test_orders_with_channel_fulfilled_lines_cannot_be_cancelled() -> None:
    order = receive(
        CAPS,
        doc(
            status="Accepted",
            fulfilments=(("F1", FulfilledBy.SELLER), ("F2", FulfilledBy.CHANNEL)),
            lines=(
                L(id="L1", quantity=1, fulfilment="F1", accepted=1),
                L(id="L2", quantity=1, fulfilment="F2", accepted=1),
            ),
        ),
    )
    assert order.status is OrderStatus.ACCEPTED
    with pytest.raises(NotSupportedByChannel) as caught:
        order.cancel(CAPS, reason=Reason.SELLER_REFUSAL, cancellation_id="K1", now=LATER)
    assert caught.value.rule == "cancellation-of-channel-fulfilled-order"


def test_a_channel_fulfilled_line_is_not_ours_to_ship() -> None:
    order = receive(
        CAPS,
        doc(
            status="InPreparation",
            released=True,
            fulfilments=(("F1", FulfilledBy.SELLER), ("F2", FulfilledBy.CHANNEL)),
            lines=(
                L(id="L1", quantity=1, fulfilment="F1", accepted=1),
                L(id="L2", quantity=1, fulfilment="F2", accepted=1),
            ),
        ),
    )
    with pytest.raises(NotSupportedByChannel) as caught:
        ship(order, CAPS, [lq(order, "L2", 1)])
    assert caught.value.rule == "channel-fulfilled-line"

    # the channel reports its own shipment (shipped implies accepted)
    apply(
        order,
        CAPS,
        doc(
            status="InPreparation",
            released=True,
            lines=(L(id="L1", quantity=1, accepted=1), L(id="L2", quantity=1, shipped=1)),
        ),
    )
    assert counters(order, "L2")["shipped"] == 1
    assert order.status is OrderStatus.PARTIALLY_SHIPPED  # ours is still to ship
    assert order.fulfilled_by == "mixed"
    ship(order, CAPS, [lq(order, "L1", 1)])
    assert order.status is OrderStatus.SHIPPED


def test_an_order_the_channel_ships_is_never_ready_to_ship_for_the_warehouse() -> None:
    order = receive(
        CAPS,
        doc(
            status="InPreparation",
            released=True,
            fulfilments=(("F2", FulfilledBy.CHANNEL),),
            lines=(L(id="L2", quantity=1, fulfilment="F2", accepted=1),),
        ),
    )
    assert order.fulfilled_by == "channel"
    assert order.status is OrderStatus.READY_TO_SHIP  # derived from every line, as the channel says
    assert "order.ready_to_ship" not in [e.type.value for e in order.events]


# --- cancellation requests ----------------------------------------------------------------


def request(order: Order, *, state: RequestState = RequestState.REQUESTED, cid: str = "C1") -> None:
    apply(
        order,
        CAPS,
        doc(
            status="CancelRequest" if state is RequestState.REQUESTED else "Cancelled",
            released=True,
            lines=(L(id="L1", quantity=2, accepted=2), L(id="L2", quantity=1, accepted=1)),
            cancellations=(C(id=cid, state=state),),
        ),
    )


def test_a_request_leaves_the_status_and_shows_as_requested(released: Order) -> None:
    request(released)
    assert released.status is OrderStatus.READY_TO_SHIP
    assert released.cancellation_requested
    events = own_events(released)
    assert [e.type.value for e in events] == ["order.cancellation_requested"]
    assert events[0].data["initiator"] == "customer"


def test_accepting_a_request_cancels(released: Order) -> None:
    request(released)
    take_events(released)
    decided = released.decide_cancellation(CAPS, decision=Decision.ACCEPT, now=LATER)

    assert decided.state is RequestState.ACCEPTED
    assert decided.decided_at == LATER
    assert released.status is OrderStatus.CANCELLED
    assert not released.cancellation_requested
    assert take_events(released) == ["order.cancelled"]


def test_refusing_a_request_resets_the_order(released: Order) -> None:
    request(released)
    take_events(released)
    before = [counters(released, "L1"), counters(released, "L2")]

    decided = released.decide_cancellation(CAPS, decision=Decision.REFUSE, now=LATER)

    assert decided.state is RequestState.REFUSED
    assert released.status is OrderStatus.READY_TO_SHIP
    assert [counters(released, "L1"), counters(released, "L2")] == before
    assert not released.cancellation_requested
    assert take_events(released) == ["order.cancellation_refused"]


def test_a_line_request_cancels_only_its_units(released: Order) -> None:
    apply(
        released,
        CAPS,
        doc(
            status="CancelRequest",
            released=True,
            lines=(L(id="L1", quantity=2, accepted=2), L(id="L2", quantity=1, accepted=1)),
            cancellations=(C(id="C1", lines=(("L1", 1),)),),
        ),
    )
    released.decide_cancellation(CAPS, decision=Decision.ACCEPT, now=LATER)
    assert counters(released, "L1")["cancelled"] == 1
    assert counters(released, "L1")["accepted"] == 1
    assert released.status is OrderStatus.READY_TO_SHIP


def test_deciding_without_a_request_is_refused(released: Order) -> None:
    with pytest.raises(InvalidTransition) as caught:
        released.decide_cancellation(CAPS, decision=Decision.ACCEPT, now=LATER)
    assert caught.value.rule == "no-cancellation-request"


def test_a_decided_request_cannot_be_decided_again(released: Order) -> None:
    request(released)
    decided = released.decide_cancellation(CAPS, decision=Decision.REFUSE, now=LATER)
    with pytest.raises(InvalidTransition) as caught:
        released.decide_cancellation(
            CAPS, decision=Decision.ACCEPT, now=LATER, cancellation_id=decided.id
        )
    assert caught.value.rule == "cancellation-already-decided"


def test_an_unknown_request_is_refused(released: Order) -> None:
    request(released)
    with pytest.raises(UnknownCancellation) as caught:
        released.decide_cancellation(
            CAPS, decision=Decision.ACCEPT, now=LATER, cancellation_id="nope"
        )
    assert caught.value.rule == "unknown-cancellation"


def test_two_open_requests_must_be_named(released: Order) -> None:
    apply(
        released,
        CAPS,
        doc(
            status="CancelRequest",
            released=True,
            lines=(L(id="L1", quantity=2, accepted=2), L(id="L2", quantity=1, accepted=1)),
            cancellations=(
                C(id="C1", lines=(("L1", 1),)),
                C(id="C2", lines=(("L2", 1),)),
            ),
        ),
    )
    with pytest.raises(InvalidInput) as caught:
        released.decide_cancellation(CAPS, decision=Decision.ACCEPT, now=LATER)
    assert caught.value.rule == "ambiguous-cancellation"

    second = next(c for c in released.cancellations if c.channel_cancellation_id == "C2")
    released.decide_cancellation(
        CAPS, decision=Decision.ACCEPT, now=LATER, cancellation_id=second.id
    )
    assert counters(released, "L2")["cancelled"] == 1
    assert released.cancellation_requested  # C1 is still open


def test_the_channel_decides_a_request_too(released: Order) -> None:
    request(released)
    take_events(released)
    request(released, state=RequestState.REFUSED)
    assert not released.cancellation_requested
    assert released.status is OrderStatus.READY_TO_SHIP
    assert take_events(released) == ["order.cancellation_refused"]
    # refused stays refused, whatever arrives later
    request(released, state=RequestState.ACCEPTED)
    assert released.status is OrderStatus.READY_TO_SHIP
    assert released.cancellations[0].state is RequestState.REFUSED
