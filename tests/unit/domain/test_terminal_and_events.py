"""Terminal orders refuse every command; events use the feed's contract names."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from orderhub.domain.capabilities import Capabilities
from orderhub.domain.errors import OrderIsTerminal
from orderhub.domain.events import EventType
from orderhub.domain.model import Order
from orderhub.domain.values import Decision, Initiator, OrderStatus, Reason, RequestState

from .support import (
    CONTRACT_EVENTS,
    LATER,
    PROFILES,
    C,
    Doc,
    L,
    apply,
    counters,
    fingerprint,
    lq,
    receive,
    ship,
    take_events,
)


def rejected_topi() -> tuple[Order, Capabilities]:
    caps = PROFILES["topi"]()
    order = receive(caps, Doc(status="created"))
    order.reject(caps, reason=Reason.OUT_OF_STOCK, now=LATER)
    return order, caps


def rejected_by_topi() -> tuple[Order, Capabilities]:
    caps = PROFILES["topi"]()
    order = receive(caps, Doc(status="created"))
    apply(
        order,
        caps,
        Doc(status="rejected", lines=(L(id="L1", quantity=2, rejected=2), L(id="L2", rejected=1))),
    )
    return order, caps


def cancelled_octopia() -> tuple[Order, Capabilities]:
    caps = PROFILES["octopia"]()
    order = receive(caps, Doc(status="WaitingAcceptance"))
    order.accept(caps, now=LATER)
    order.cancel(caps, reason=Reason.SELLER_REFUSAL, cancellation_id="K1", now=LATER)
    return order, caps


def cancelled_spresso() -> tuple[Order, Capabilities]:
    caps = PROFILES["spresso"]()
    order = receive(caps, Doc(status="fulfillable"))
    apply(
        order,
        caps,
        Doc(
            status="cancelled",
            cancellations=(C(id="X", state=RequestState.ACCEPTED, initiator=Initiator.CHANNEL),),
        ),
    )
    return order, caps


TERMINAL = [
    pytest.param(rejected_topi, OrderStatus.REJECTED, id="topi-rejected"),
    pytest.param(cancelled_octopia, OrderStatus.CANCELLED, id="octopia-cancelled"),
    pytest.param(cancelled_spresso, OrderStatus.CANCELLED, id="spresso-cancelled"),
]

COMMANDS: dict[str, Callable[[Order, Capabilities], object]] = {
    "accept": lambda o, c: o.accept(c, now=LATER),
    "reject": lambda o, c: o.reject(c, reason=Reason.OUT_OF_STOCK, now=LATER),
    "ship": lambda o, c: ship(o, c, [lq(o, "L1", 1)]),
    "deliver": lambda o, c: o.confirm_delivery(c, now=LATER),
    "cancel": lambda o, c: o.cancel(
        c, reason=Reason.SELLER_REFUSAL, cancellation_id="K9", now=LATER
    ),
    "decide": lambda o, c: o.decide_cancellation(c, decision=Decision.ACCEPT, now=LATER),
}


@pytest.mark.parametrize(("build", "status"), TERMINAL)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_terminal_order_refuses_every_command(
    build: Callable[[], tuple[Order, Capabilities]], status: OrderStatus, command: str
) -> None:
    order, caps = build()
    assert order.status is status
    before = fingerprint(order)
    with pytest.raises(OrderIsTerminal) as caught:
        COMMANDS[command](order, caps)
    assert caught.value.rule == "order-terminal"
    assert fingerprint(order) == before


@pytest.mark.parametrize(
    ("build", "status"),
    [p for p in TERMINAL if p.id == "spresso-cancelled"]
    + [pytest.param(rejected_by_topi, OrderStatus.REJECTED, id="topi-rejected-by-channel")],
)
def test_an_order_the_channel_ended_ignores_what_it_says_of_its_lines(
    build: Callable[[], tuple[Order, Capabilities]], status: OrderStatus
) -> None:
    order, caps = build()
    take_events(order)
    apply(
        order,
        caps,
        Doc(
            status=order.channel_status,
            released=True,
            lines=(L(id="L1", quantity=2, accepted=2, shipped=2), L(id="L2", accepted=1)),
            cancellations=(C(id="LATE"),),
        ),
    )
    assert order.status is status
    assert all(line.shipped == 0 and line.accepted == 0 for line in order.lines)
    assert not order.cancellation_requested
    assert order.events == []


def test_a_rejection_the_channel_contradicts_yields_to_the_channel() -> None:
    """The hub rejected; the channel says the order is confirmed and shipped: the channel's
    word stands, and the order asks for a person's attention."""
    order, caps = rejected_topi()
    take_events(order)
    apply(
        order,
        caps,
        Doc(
            status="partially_fulfilled",
            released=True,
            lines=(L(id="L1", quantity=2, accepted=2, shipped=1), L(id="L2", accepted=1)),
        ),
    )
    assert order.status is OrderStatus.PARTIALLY_SHIPPED
    assert order.channel_status == "partially_fulfilled"
    assert [
        (c["accepted"], c["rejected"]) for c in (counters(order, "L1"), counters(order, "L2"))
    ] == [
        (2, 0),
        (1, 0),
    ]
    assert [a.code.value for a in order.attention] == ["channel_overrode_decision"] * 2
    assert "order.attention_required" in take_events(order)


def test_a_seller_cancellation_stays_when_the_channel_shows_the_order_accepted() -> None:
    """A cancellation the channel has not confirmed yet is not undone by an older view: only
    a refusal of the cancel command undoes it."""
    order, caps = cancelled_octopia()
    take_events(order)
    apply(
        order,
        caps,
        Doc(status="InPreparation", released=True, lines=(L(id="L1", quantity=2, accepted=2),)),
    )
    assert order.status is OrderStatus.CANCELLED
    assert order.attention == []


def test_event_types_are_the_contract() -> None:
    assert {e.value for e in EventType} == CONTRACT_EVENTS


def test_a_whole_life_emits_contract_events_in_order() -> None:
    caps = PROFILES["topi"]()
    order = receive(caps, Doc(status="created"))
    order.accept(caps, now=LATER)
    ship(order, caps, [lq(order, "L1", 1)], shipment_id="S1")
    ship(order, caps, [lq(order, "L1", 1), lq(order, "L2", 1)], shipment_id="S2")
    types = take_events(order)
    assert types == [
        "order.received",
        "order.accepted",
        "order.ready_to_ship",
        "order.shipment_recorded",
        "order.shipment_recorded",
        "order.shipped",
    ]
    assert set(types) <= CONTRACT_EVENTS
