"""Spresso's Order object to canonical snapshots; the commands' Spresso bodies."""

from __future__ import annotations

import copy

import pytest
from spresso_orders import F1, F2, ORDER, ORDER_ID, V1, V2, body, cancelled, order

from orderhub.domain.values import Initiator, Reason, RequestState
from orderhub_spresso import mapping, wire


def snap(doc: dict | None = None, **top: object):  # type: ignore[no-untyped-def,type-arg]
    return mapping.to_snapshot(wire.decode_webhook(body(doc, **top)))


def test_an_order_maps_to_lines_keyed_fulfilment_and_variant_with_the_variants_joined() -> None:
    s = snap()
    assert [(ln.channel_line_id, ln.quantity, ln.channel_fulfilment_id) for ln in s.lines] == [
        (f"{F1}:{V1}", 2, F1),
        (f"{F1}:{V2}", 1, F1),
        (f"{F2}:{V1}", 1, F2),
    ]
    beans = s.lines[0]
    assert (beans.sku, beans.title, beans.extras["upc"], beans.extras["variant"]) == (
        "COFFEE-1KG",
        "Beans",
        "012345678905",
        V1,
    )
    assert (s.order_number, s.channel_order_id, s.channel_status) == (
        "19618657",
        ORDER_ID,
        "sent_to_fulfiller",
    )
    assert s.released
    assert not s.cancellations
    assert [f.channel_fulfilment_id for f in s.fulfilments] == [F1, F2]
    assert s.shipping_address is not None
    assert s.shipping_address.country_code == "US"
    assert s.customer is not None
    assert (s.customer.name, s.customer.email) == ("Ada Lovelace", "ada@example.com")
    assert all(ln.shipped == 0 for ln in s.lines)


@pytest.mark.parametrize(("given", "expected"), [("USA", "US"), ("deu", "DE"), ("US", "US")])
def test_country_codes_are_normalised_to_alpha_2(given: str, expected: str) -> None:
    assert mapping.country_code(given) == expected


def test_an_unknown_country_is_a_clear_error() -> None:
    with pytest.raises(mapping.MappingError, match="unknown country code 'ZZZZ'"):
        mapping.country_code("ZZZZ")


def test_the_event_comes_from_the_body_or_is_inferred_from_the_status() -> None:
    assert wire.decode_webhook(body()).event == wire.ORDER_FULFILLABLE
    assert wire.decode_webhook(body(cancelled())).event == wire.ORDER_CANCELLED
    assert wire.decode_webhook(body(event="order_cancelled")).event == wire.ORDER_CANCELLED
    assert wire.decode_webhook(body(type="order_cancelled")).event == wire.ORDER_CANCELLED


def test_an_envelope_is_unwrapped() -> None:
    hook = wire.decode_webhook(body({"event": "order_fulfillable", "data": ORDER}))
    assert (hook.event, hook.order.id) == (wire.ORDER_FULFILLABLE, ORDER_ID)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"id": "x", "status": "s"}', "not a Spresso order"),
        (body(order(orderNo="19618657x")), "not a Spresso order"),
    ],
)
def test_bad_bodies_are_clear_errors(raw: bytes, why: str) -> None:
    with pytest.raises(wire.WireError, match=why):
        wire.decode_webhook(raw)


def test_a_fulfilment_other_than_carrier_delivery_is_refused_with_a_reason() -> None:
    doc = order()
    doc["fulfillments"][1]["fulfillmentMethod"] = "in_store_pickup"
    with pytest.raises(mapping.MappingError, match="only carrier_delivery is handled"):
        snap(doc)


def test_order_cancelled_cancels_the_whole_order_as_the_channel() -> None:
    s = snap(cancelled(), event="order_cancelled")
    (c,) = s.cancellations
    assert (c.initiator, c.reason, c.state, c.lines) == (
        Initiator.CHANNEL,
        Reason.CHANNEL_CANCELLED,
        RequestState.ACCEPTED,
        (),
    )


def test_a_fulfilment_in_transit_reports_its_fulfilled_units() -> None:
    """The shortfall is the hub's own cancellation (out_of_stock, seller): not repeated."""
    doc = order()
    f1 = doc["fulfillments"][0]
    f1["status"] = "in_transit"
    f1["fulfillmentVariants"][0]["fulfilledQuantity"] = 1
    f1["fulfillmentVariants"][1]["fulfilledQuantity"] = 1
    s = snap(doc)
    assert [(ln.shipped, ln.delivered) for ln in s.lines] == [(1, 0), (1, 0), (0, 0)]
    assert s.cancellations == ()
    f1["status"] = "delivered"
    assert [(ln.shipped, ln.delivered) for ln in snap(doc).lines] == [(1, 1), (1, 1), (0, 0)]


def test_the_dedupe_key_changes_with_the_event_status_and_fulfilment_statuses() -> None:
    first = wire.dedupe_key(wire.decode_webhook(body()))
    assert first == wire.dedupe_key(wire.decode_webhook(body()))
    assert first.startswith(f"order_fulfillable:{ORDER_ID}:sent_to_fulfiller:2026-01-05T10:10")
    assert first != wire.dedupe_key(wire.decode_webhook(body(cancelled())))
    moved = copy.deepcopy(ORDER)
    moved["fulfillments"][1]["status"] = "cancelled"
    assert first != wire.dedupe_key(wire.decode_webhook(body(moved)))


@pytest.mark.parametrize(
    ("carrier", "table", "expected"),
    [("UPS", {}, "ups"), ("fedex", {}, "fedex"), ("DHL-EXPRESS", {"dhl-express": "dhl"}, "dhl")],
)
def test_carriers_map_from_the_wms_codes(carrier: str, table: dict, expected: str) -> None:  # type: ignore[type-arg]
    assert mapping.carrier_code(carrier, table) == expected


def test_an_unknown_carrier_is_refused() -> None:
    with pytest.raises(mapping.MappingError, match="does not know carrier 'pigeon'"):
        mapping.carrier_code("pigeon", {})


def test_in_transit_lists_every_variant_and_refuses_nothing_fulfilled() -> None:
    payload = {
        "fulfillment": F1,
        "variants": [
            {"variant": V1, "fulfilled": 1, "quantity": 2, "line_id": "l1"},
            {"variant": V2, "fulfilled": 0, "quantity": 1, "line_id": "l2"},
        ],
    }
    wanted = mapping.in_transit_request(payload)
    assert wire.encode(wanted.update) == (
        b'{"status":"in_transit","fulfillmentVariants":[{"variant":"'
        + V1.encode()
        + b'","fulfilledQuantity":1},{"variant":"'
        + V2.encode()
        + b'","fulfilledQuantity":0}]}'
    )
    for v in payload["variants"]:
        v["fulfilled"] = 0
    with pytest.raises(mapping.MappingError, match="cancel it in Spresso's admin console"):
        mapping.in_transit_request(payload)


def test_the_event_comes_from_the_path_when_the_body_names_none() -> None:
    """One registration per event: ``/webhooks/spresso/{account}/{event}``. An order that
    does not look cancelled is still an ``order_cancelled`` when its URL says so."""
    assert wire.decode_webhook(body(), "order_cancelled").event == wire.ORDER_CANCELLED
    assert wire.decode_webhook(body(cancelled()), "order_fulfillable").event == (
        wire.ORDER_FULFILLABLE
    )
    # the body wins when it names the event; a topic that is no event is ignored
    assert wire.decode_webhook(body(event="order_fulfillable"), "order_cancelled").event == (
        wire.ORDER_FULFILLABLE
    )
    assert wire.decode_webhook(body(), "something_else").event == wire.ORDER_FULFILLABLE
    assert wire.decode_webhook(body(cancelled()), None).event == wire.ORDER_CANCELLED
