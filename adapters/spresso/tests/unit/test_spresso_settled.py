"""A fulfilment in transit as Spresso's Data Model shows it: its variants carry only
``quantity``; what was settled is ``orderVariants[].fulfilledQuantity``."""

from __future__ import annotations

from spresso_orders import body, order

from orderhub_spresso import mapping, wire


def test_a_short_shipped_fulfilment_shows_what_was_settled_not_its_quantity() -> None:
    doc = order()
    doc["fulfillments"][0]["status"] = "in_transit"  # F1: 1 of 2 coffees, the mug
    doc["orderVariants"][0]["fulfilledQuantity"] = 1  # F2 (1 coffee) is still open
    doc["orderVariants"][1]["fulfilledQuantity"] = 1
    s = mapping.to_snapshot(wire.decode_webhook(body(doc)))
    assert [(ln.channel_line_id.split(":")[1], ln.shipped) for ln in s.lines] == [
        (doc["orderVariants"][0]["variant"]["id"], 1),  # not 2: one was never shipped
        (doc["orderVariants"][1]["variant"]["id"], 1),
        (doc["orderVariants"][0]["variant"]["id"], 0),
    ]


def test_a_variant_in_two_shipped_fulfilments_without_their_own_figures_keeps_them() -> None:
    doc = order()
    for f in doc["fulfillments"]:
        f["status"] = "in_transit"
    doc["orderVariants"][0]["fulfilledQuantity"] = 3
    s = mapping.to_snapshot(wire.decode_webhook(body(doc)))
    # the coffee is in both: which got how many is not said, each keeps its quantity;
    # the mug has no settled figure: its quantity
    assert [ln.shipped for ln in s.lines] == [2, 1, 1]
