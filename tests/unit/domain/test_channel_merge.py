"""Channel snapshots merge monotonically: duplicates and late arrivals change nothing."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from orderhub.domain.capabilities import Capabilities, Scope
from orderhub.domain.errors import DuplicateSerialNumber, InvalidInput, NotSupportedByChannel
from orderhub.domain.model import ChannelSnapshot, LineSnapshot, Order, Unit
from orderhub.domain.values import Initiator, OrderStatus, Reason, RequestState
from orderhub.testing.channel import octopia_like, spresso_like, topi_like

from .support import (
    LATER,
    NOW,
    C,
    Doc,
    Ids,
    L,
    apply,
    counters,
    fingerprint,
    lq,
    receive,
    ship,
    take_events,
)

TOPI = topi_like()
OCTOPIA = octopia_like()

CREATED = Doc(status="created", lines=(L(id="L1", quantity=2),))
CONFIRMED = Doc(status="confirmed", released=True, lines=(L(id="L1", quantity=2, accepted=2),))
PARTIAL = Doc(
    status="partially_fulfilled", released=True, lines=(L(id="L1", quantity=2, shipped=1),)
)
COMPLETED = Doc(status="completed", released=True, lines=(L(id="L1", quantity=2, shipped=2),))


def test_receiving_announces_the_order() -> None:
    order = receive(TOPI, CREATED)
    events = list(order.events)
    assert [e.type.value for e in events] == ["order.received"]
    assert events[0].data == {"channel_order_id": "CO-1", "status": "awaiting_acceptance"}
    assert order.channel_status == "created"


def test_an_order_first_seen_late_in_its_life() -> None:
    order = receive(TOPI, COMPLETED)
    assert order.status is OrderStatus.SHIPPED
    assert counters(order, "L1")["accepted"] == 2  # shipped units were accepted
    assert take_events(order) == ["order.received", "order.shipped"]


def test_an_order_needs_lines() -> None:
    with pytest.raises(InvalidInput) as caught:
        receive(TOPI, Doc(lines=()))
    assert caught.value.rule == "order-without-lines"


def test_the_channel_moves_the_order_forward() -> None:
    order = receive(TOPI, CREATED)
    take_events(order)
    apply(order, TOPI, CONFIRMED)
    assert order.status is OrderStatus.READY_TO_SHIP
    assert take_events(order) == ["order.ready_to_ship"]
    apply(order, TOPI, PARTIAL)
    assert order.status is OrderStatus.PARTIALLY_SHIPPED
    events = list(order.events)
    assert [e.type.value for e in events] == ["order.updated"]
    assert events[0].data == {"channel_status": "partially_fulfilled"}
    take_events(order)
    apply(order, TOPI, COMPLETED)
    assert order.status is OrderStatus.SHIPPED
    assert take_events(order) == ["order.shipped"]


def test_a_duplicate_changes_nothing() -> None:
    order = receive(TOPI, CREATED)
    apply(order, TOPI, CONFIRMED)
    take_events(order)
    before = fingerprint(order)
    apply(order, TOPI, CONFIRMED)
    assert fingerprint(order) == before
    assert order.events == []


def test_a_late_snapshot_is_recorded_not_applied() -> None:
    order = receive(TOPI, CREATED)
    apply(order, TOPI, COMPLETED)
    take_events(order)
    before = fingerprint(order)

    apply(order, TOPI, CREATED)  # a created webhook after completed
    apply(order, TOPI, CONFIRMED)

    assert order.status is OrderStatus.SHIPPED
    assert order.channel_status == "completed"
    assert fingerprint(order) == before
    assert order.events == []


def test_a_snapshot_behind_on_one_line_but_ahead_on_another_is_taken() -> None:
    order = receive(TOPI, Doc(status="created", lines=(L(id="L1"), L(id="L2"))))
    apply(
        order,
        TOPI,
        Doc(status="one", released=True, lines=(L(id="L1", shipped=1), L(id="L2", accepted=1))),
    )
    apply(
        order,
        TOPI,
        Doc(status="two", released=True, lines=(L(id="L1", accepted=1), L(id="L2", shipped=1))),
    )
    assert order.channel_status == "two"
    assert order.status is OrderStatus.SHIPPED


def test_a_decision_in_flight_stands_while_the_channel_shows_its_own_status() -> None:
    order = receive(TOPI, CREATED)
    order.accept(TOPI, now=LATER)
    take_events(order)
    apply(order, TOPI, Doc(status="acknowledged", lines=CREATED.lines))  # sent before the accept
    assert order.channel_status == "acknowledged"  # the channel's word is recorded
    assert order.status is OrderStatus.READY_TO_SHIP  # the accept is on its way
    assert order.attention == []
    assert take_events(order) == ["order.updated"]
    apply(order, TOPI, CONFIRMED)
    assert order.channel_status == "confirmed"


def test_counters_never_exceed_the_invariants() -> None:
    order = receive(OCTOPIA, Doc(lines=(L(id="L1", quantity=2),)))
    apply(
        order,
        OCTOPIA,
        Doc(lines=(L(id="L1", quantity=2, accepted=5, rejected=5, shipped=9, delivered=9),)),
    )
    c = counters(order, "L1")
    assert c["rejected"] + c["accepted"] + c["cancelled"] <= 2
    assert c["shipped"] <= c["accepted"]
    assert c["delivered"] <= c["shipped"]


def test_a_line_the_channel_adds_later_is_added_and_flagged() -> None:
    order = receive(TOPI, CREATED)
    take_events(order)
    apply(order, TOPI, Doc(status="created", lines=(L(id="L1", quantity=2), L(id="NEW"))))
    assert [line.channel_line_id for line in order.lines] == ["L1", "NEW"]
    [reason] = order.attention
    assert reason.code.value == "channel_edited_lines"
    assert reason.ref == order.lines[1].id
    assert take_events(order) == ["order.attention_required"]


def test_a_quantity_the_channel_lowers_cancels_the_difference() -> None:
    order = receive(TOPI, CREATED)
    order.accept(TOPI, now=LATER)
    take_events(order)
    apply(
        order,
        TOPI,
        Doc(status="confirmed", released=True, lines=(L(id="L1", quantity=1, accepted=1),)),
    )
    line = order.lines[0]
    assert (line.quantity, line.cancelled, line.live) == (2, 1, 1)
    assert order.status is OrderStatus.READY_TO_SHIP
    assert [a.code.value for a in order.attention] == ["channel_edited_lines"]
    assert "order.lines_cancelled" in take_events(order)
    apply(
        order,
        TOPI,
        Doc(status="confirmed", released=True, lines=(L(id="L1", quantity=1, accepted=1),)),
    )
    assert order.lines[0].cancelled == 1  # the same news twice cancels once


def test_a_cancellation_after_shipment_is_a_return() -> None:
    order = receive(TOPI, COMPLETED)
    take_events(order)
    apply(
        order,
        TOPI,
        Doc(
            status="canceled",
            released=True,
            lines=COMPLETED.lines,
            cancellations=(C(id="X1", initiator=Initiator.CUSTOMER),),
        ),
    )
    assert order.status is OrderStatus.SHIPPED
    assert order.cancellations == []
    [ret] = order.returns
    assert ret.state is RequestState.REQUESTED
    assert ret.channel_return_id == "X1"
    assert [(i.line_id, i.quantity) for i in ret.lines] == [(lq(order, "L1", 1).line_id, 2)]
    assert take_events(order) == ["order.return_requested"]

    # the channel decides it later: the return follows
    apply(
        order,
        TOPI,
        Doc(
            status="canceled",
            released=True,
            lines=COMPLETED.lines,
            cancellations=(C(id="X1", state=RequestState.ACCEPTED),),
        ),
    )
    assert order.returns[0].state is RequestState.ACCEPTED
    assert order.status is OrderStatus.SHIPPED
    assert take_events(order) == ["order.updated"]


def test_a_return_covers_only_what_the_cancellation_names() -> None:
    order = receive(
        OCTOPIA,
        Doc(
            status="Shipped",
            released=True,
            lines=(L(id="L1", quantity=3, shipped=3), L(id="L2", quantity=1, shipped=1)),
        ),
    )
    apply(
        order,
        OCTOPIA,
        Doc(
            status="Shipped",
            released=True,
            lines=(L(id="L1", quantity=3, shipped=3), L(id="L2", quantity=1, shipped=1)),
            cancellations=(C(id="X1", lines=(("L1", 1),)),),
        ),
    )
    [ret] = order.returns
    assert [(i.line_id, i.quantity) for i in ret.lines] == [(lq(order, "L1", 1).line_id, 1)]


def test_a_channel_cancellation_of_unshipped_units_cancels_them() -> None:
    order = receive(TOPI, PARTIAL)
    take_events(order)
    apply(
        order,
        TOPI,
        Doc(
            status="canceled",
            released=True,
            lines=PARTIAL.lines,
            cancellations=(C(id="X1", state=RequestState.ACCEPTED),),
        ),
    )
    assert counters(order, "L1")["cancelled"] == 1
    assert order.status is OrderStatus.SHIPPED
    # one unit had shipped: the channel's cancellation of the whole order asks for a person
    assert [a.code.value for a in order.attention] == ["cancelled_after_shipment"]
    assert take_events(order) == [
        "order.attention_required",
        "order.lines_cancelled",
        "order.shipped",
    ]


def test_acceptance_release_and_a_cancellation_in_one_snapshot_announce_both() -> None:
    order = receive(OCTOPIA, Doc(status="WaitingAcceptance", lines=(L(id="L1", quantity=2),)))
    take_events(order)
    apply(
        order,
        OCTOPIA,
        Doc(
            status="InPreparation",
            released=True,
            lines=(L(id="L1", quantity=2, accepted=2),),
            cancellations=(C(id="X1", state=RequestState.ACCEPTED, lines=(("L1", 1),)),),
        ),
    )
    assert order.status is OrderStatus.READY_TO_SHIP
    assert take_events(order) == ["order.ready_to_ship", "order.lines_cancelled"]


def test_a_terminal_order_takes_no_more_cancellations() -> None:
    order = receive(TOPI, CREATED)
    order.reject(TOPI, reason=Reason.OUT_OF_STOCK, now=LATER)
    take_events(order)
    before = fingerprint(order)
    apply(
        order,
        TOPI,
        Doc(
            status="rejected",
            lines=(L(id="L1", quantity=2, rejected=2),),
            cancellations=(C(id="X1"),),
        ),
    )
    assert order.cancellations == []
    assert not order.cancellation_requested
    assert fingerprint(order)[3:-1] == before[3:-1]  # counters, shipments, requests: as they were
    assert order.status is OrderStatus.REJECTED
    assert order.channel_status == "rejected"  # the channel's word is still recorded
    assert take_events(order) == ["order.updated"]


def test_an_open_request_is_moot_once_the_order_is_terminal() -> None:
    order = receive(OCTOPIA, Doc(status="WaitingAcceptance", lines=(L(id="L1", quantity=1),)))
    apply(
        order,
        OCTOPIA,
        Doc(status="CancelRequest", lines=(L(id="L1", quantity=1),), cancellations=(C(id="X1"),)),
    )
    assert order.cancellation_requested
    order.reject(OCTOPIA, reason=Reason.OUT_OF_STOCK, now=LATER)
    assert order.status is OrderStatus.REJECTED
    assert not order.cancellation_requested


def test_units_follow_the_channel_and_serials_given_by_it_are_no_duplicates() -> None:
    caps = topi_like()
    snapshot = ChannelSnapshot(
        channel_order_id="CO-9",
        channel_status="confirmed",
        released=True,
        lines=(
            LineSnapshot(
                channel_line_id="L1",
                sku="RENT-1",
                title="laptop",
                quantity=2,
                accepted=2,
                requires_serial_number=True,
                units=(
                    Unit(channel_unit_id="A1", serial_number="SN-PRE"),
                    Unit(channel_unit_id="A2"),
                ),
            ),
        ),
    )
    order = Order.receive(
        snapshot,
        order_id="O-9",
        channel="testchannel",
        account="main",
        caps=caps,
        now=NOW,
        new_id=Ids(),
    )
    # the unit the channel assigned SN-PRE ships with it: not a duplicate
    ship(order, caps, [lq(order, "L1", 1, "SN-PRE")], shipment_id="S1")
    units = {u.channel_unit_id: u for u in order.lines[0].units}
    assert units["A1"].shipped
    assert units["A1"].serial_number == "SN-PRE"
    assert not units["A2"].shipped
    # but it cannot ship twice
    with pytest.raises(DuplicateSerialNumber):
        ship(order, caps, [lq(order, "L1", 1, "SN-PRE")], shipment_id="S2")
    ship(order, caps, [lq(order, "L1", 1, "SN-2")], shipment_id="S3")
    assert units["A2"].shipped
    assert units["A2"].serial_number == "SN-2"


def test_a_channel_that_ships_lines_whole() -> None:
    caps: Capabilities = dataclasses.replace(spresso_like(), partial_shipment=False)
    order = receive(caps, Doc(lines=(L(id="L1", quantity=3),)))
    with pytest.raises(NotSupportedByChannel) as caught:
        ship(order, caps, [lq(order, "L1", 2)])
    assert caught.value.rule == "partial-shipment-not-supported"
    ship(order, caps, [lq(order, "L1", 3)])
    assert order.status is OrderStatus.SHIPPED


def test_a_channel_that_ships_whole_orders() -> None:
    caps: Capabilities = dataclasses.replace(octopia_like(), shipment=Scope.ORDER)
    order = receive(
        caps,
        Doc(
            status="InPreparation",
            released=True,
            lines=(L(id="L1", quantity=1, accepted=1), L(id="L2", quantity=1, accepted=1)),
        ),
    )
    with pytest.raises(NotSupportedByChannel) as caught:
        ship(order, caps, [lq(order, "L1", 1)])
    assert caught.value.rule == "shipment-whole-order-only"
    ship(order, caps, [lq(order, "L1", 1), lq(order, "L2", 1)])
    assert order.status is OrderStatus.SHIPPED


@pytest.mark.parametrize("doc", [CREATED, CONFIRMED, PARTIAL, COMPLETED])
def test_a_duplicate_snapshot_leaves_the_order_untouched_to_the_timestamp(doc: Doc) -> None:
    order = receive(TOPI, doc)
    take_events(order)
    before = (fingerprint(order), order.updated_at, order.channel_status, dict(order.extras))
    apply(order, TOPI, doc)  # support.apply merges at LATER
    assert order.events == []
    assert (fingerprint(order), order.updated_at, order.channel_status, order.extras) == before


def test_a_changed_detail_alone_is_an_update() -> None:
    order = receive(TOPI, CREATED)
    take_events(order)
    apply(order, TOPI, dataclasses.replace(CREATED, extras={"note": "gift wrap"}))
    assert order.extras["note"] == "gift wrap"
    assert order.updated_at == LATER
    assert take_events(order) == ["order.updated"]


def test_a_stamp_without_a_zone_is_read_as_utc() -> None:
    """An adapter's stamp without a zone is UTC, not a crash when compared."""
    caps = topi_like()
    order = receive(caps, Doc(status="created"))
    acknowledged = dataclasses.replace(
        Doc(status="acknowledged").snapshot(), updated_at=LATER + timedelta(seconds=5)
    )
    order.apply(acknowledged, caps=caps, now=LATER, new_id=Ids("x"))
    naive = dataclasses.replace(
        Doc(status="created").snapshot(),
        updated_at=(LATER + timedelta(seconds=1)).replace(tzinfo=None),
    )
    order.apply(naive, caps=caps, now=LATER + timedelta(seconds=8), new_id=Ids("z"))
    assert order.channel_status == "acknowledged"  # the naive stamp is older: ignored


def test_a_cancellation_carried_out_after_shipment_asks_for_a_person() -> None:
    """Spresso's ``order_cancelled`` after a first ``in_transit``: the channel cancelled
    the order although one of its two units had shipped. The unshipped unit is cancelled, the
    shipped one stays shipped (nothing is undone), and the order says why a person must
    look."""
    spresso = spresso_like()
    order = receive(
        spresso, Doc(status="fulfillable", released=True, lines=(L(id="L1", quantity=2),))
    )
    ship(order, spresso, [lq(order, "L1", 1)])
    take_events(order)
    apply(
        order,
        spresso,
        Doc(
            status="cancelled",
            released=True,
            lines=(L(id="L1", quantity=2, shipped=1),),
            cancellations=(C(id="X9", state=RequestState.ACCEPTED),),
        ),
    )
    assert counters(order, "L1")["shipped"] == 1
    assert counters(order, "L1")["cancelled"] == 1
    [reason] = order.attention
    assert (reason.code.value, reason.ref) == ("cancelled_after_shipment", "X9")
    assert "1 of its units had shipped" in reason.detail
    assert "order.attention_required" in take_events(order)


def test_a_cancellation_before_shipment_needs_nobody() -> None:
    spresso = spresso_like()
    order = receive(
        spresso, Doc(status="fulfillable", released=True, lines=(L(id="L1", quantity=2),))
    )
    apply(
        order,
        spresso,
        Doc(
            status="cancelled",
            released=True,
            lines=(L(id="L1", quantity=2),),
            cancellations=(C(id="X9", state=RequestState.ACCEPTED),),
        ),
    )
    assert order.status is OrderStatus.CANCELLED
    assert order.attention == []


def test_released_is_the_channel_s_word_even_for_an_order_with_nothing_left() -> None:
    """Found by the history property: an order first heard of with one unit rejected, then
    told it was released and its last unit rejected, must end as an order first heard of
    in that last state (released), without news for the warehouse."""
    first = Doc(status="WaitingAcceptance", lines=(L(id="L1", quantity=2, rejected=1),))
    last = Doc(status="Refused", released=True, lines=(L(id="L1", quantity=2, rejected=2),))
    order = receive(OCTOPIA, first)
    apply(order, OCTOPIA, last)
    alone = receive(OCTOPIA, last)
    assert (
        (order.released, order.status)
        == (alone.released, alone.status)
        == (
            True,
            OrderStatus.REJECTED,
        )
    )


@pytest.mark.parametrize("attention", [True, False])
def test_a_cancellation_after_everything_shipped_is_a_return_and_maybe_a_person_s(
    attention: bool,
) -> None:
    """Spresso's ``order_cancelled`` after every fulfilment is ``in_transit``: recorded as
    a return, nothing undone; a channel that declares it (Spresso) asks for a person, one
    for which it is routine (topi: "handled as a return") does not."""
    caps = dataclasses.replace(spresso_like(), attention_on_late_cancellation=attention)
    order = receive(caps, Doc(status="fulfillable", released=True, lines=(L(id="L1", quantity=1),)))
    ship(order, caps, [lq(order, "L1", 1)])
    apply(
        order,
        caps,
        Doc(
            status="cancelled",
            released=True,
            lines=(L(id="L1", quantity=1, shipped=1),),
            cancellations=(C(id="X9", state=RequestState.ACCEPTED),),
        ),
    )
    assert counters(order, "L1")["shipped"] == 1
    [ret] = order.returns
    assert ret.state is RequestState.ACCEPTED
    assert [a.code.value for a in order.attention] == (
        ["cancelled_after_shipment"] if attention else []
    )
