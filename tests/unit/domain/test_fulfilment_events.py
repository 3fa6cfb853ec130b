"""Each fulfilment announces when it is done: shipped whole or closed short, delivered, or
cancelled, with its lines' quantities frozen in the event (what an adapter closes it with,
e.g. Spresso's in_transit with every variant's fulfilled quantity)."""

from __future__ import annotations

from typing import Any

from orderhub.domain.model import Order
from orderhub.domain.values import FulfilledBy, Initiator, RequestState
from orderhub.testing.channel import spresso_like

from .support import LATER, C, Doc, L, apply, fulfilment_id, lq, receive, ship, take_events

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


def fulfilment_events(order: Order) -> list[tuple[str, dict[str, Any]]]:
    found = [(e.type.value, e.data) for e in order.events if e.type.value.startswith("fulfil")]
    order.events.clear()
    return found


def test_a_fulfilment_shipped_whole_says_so_once_with_its_quantities() -> None:
    order = receive(CAPS, DOC)
    take_events(order)
    f1 = fulfilment_id(order, "F1")
    ship(order, CAPS, [lq(order, "V1", 1)], shipment_id="S1", fulfilment_id=f1)
    assert fulfilment_events(order) == []  # partly shipped: not done

    ship(order, CAPS, [lq(order, "V1", 1), lq(order, "V2", 1)], shipment_id="S2", fulfilment_id=f1)

    [(kind, data)] = fulfilment_events(order)
    assert kind == "fulfilment.shipped"
    assert (data["fulfilment_id"], data["channel_fulfilment_id"]) == (f1, "F1")
    assert [(x["channel_line_id"], x["shipped"], x["cancelled"]) for x in data["lines"]] == [
        ("V1", 2, 0),
        ("V2", 1, 0),
    ]


def test_a_short_ship_closes_the_fulfilment_with_what_shipped() -> None:
    order = receive(CAPS, DOC)
    take_events(order)
    f2 = fulfilment_id(order, "F2")

    ship(order, CAPS, [lq(order, "V3", 2)], shipment_id="S1", fulfilment_id=f2, final=True)

    [(kind, data)] = fulfilment_events(order)
    assert kind == "fulfilment.shipped"
    [line] = data["lines"]
    assert (line["quantity"], line["shipped"], line["cancelled"]) == (3, 2, 1)


def test_delivery_and_cancellation_are_announced_per_fulfilment() -> None:
    order = receive(CAPS, DOC)
    take_events(order)
    f1 = fulfilment_id(order, "F1")
    ship(order, CAPS, [lq(order, "V1", 2), lq(order, "V2", 1)], shipment_id="S1", fulfilment_id=f1)
    fulfilment_events(order)

    order.confirm_delivery(CAPS, now=LATER, fulfilment_id=f1)
    assert [kind for kind, _ in fulfilment_events(order)] == ["fulfilment.delivered"]

    apply(
        order,
        CAPS,
        Doc(
            status="cancelled",
            fulfilments=DOC.fulfilments,
            lines=DOC.lines,
            cancellations=(C(id="X", state=RequestState.ACCEPTED, initiator=Initiator.CHANNEL),),
        ),
    )
    assert [(kind, data["channel_fulfilment_id"]) for kind, data in fulfilment_events(order)] == [
        ("fulfilment.cancelled", "F2")
    ]
