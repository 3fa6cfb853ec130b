"""The channel's echo of a parcel the seller sent, arriving before the ship command's
answer linked the channel's parcel id: recognised by its tracking number, recorded once."""

from __future__ import annotations

import dataclasses

from orderhub.domain.snapshots import ShipmentSnapshot
from orderhub.testing.channel import octopia_like

from .support import LATER, Doc, L, lq, receive, ship, take_events

CAPS = octopia_like()
ACCEPTED = Doc(
    status="InPreparation",
    released=True,
    lines=(L(id="L1", quantity=2, accepted=2), L(id="L2", quantity=1, accepted=1)),
)


def test_an_echo_before_the_command_answer_is_the_sellers_parcel_not_a_second_one() -> None:
    order = receive(CAPS, ACCEPTED)
    ship(order, CAPS, [lq(order, "L1", 2)])  # tracking T-S1; its command is on its way
    take_events(order)
    echo = dataclasses.replace(
        dataclasses.replace(
            ACCEPTED,
            lines=(
                L(id="L1", quantity=2, accepted=2, shipped=2),
                L(id="L2", quantity=1, accepted=1),
            ),
        ).snapshot(),
        shipments=(
            ShipmentSnapshot(
                channel_shipment_id="P-1",
                lines=(("L1", 2),),
                carrier="dhl",
                tracking_number="T-S1",
            ),
        ),
    )
    order.apply(echo, caps=CAPS, now=LATER, new_id=lambda: "X1")
    assert "order.shipment_recorded" not in take_events(order)
    # the ship command's answer comes now and names the same parcel
    order.link_channel_ids(kind="ship", payload={"shipment_id": "S1"}, ids={"shipment": "P-1"})
    assert [(s.id, s.channel_shipment_id) for s in order.shipments] == [("S1", "P-1")]
