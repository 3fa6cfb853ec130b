"""The demo's three stories, as tests, in embedded and in production mode.

Each story checks every step itself (it raises ``DemoFailure`` naming the step that did not
happen); the tests add what the stories leave to the reader: the feed of each order."""

from __future__ import annotations

from collections import Counter

from orderhub_topi.demo import (
    BUNDLE_SERIALS,
    Demo,
    describe_event,
    print_feed,
    story_bundle,
    story_customer_cancel,
    story_rejected,
)


def types(demo: Demo, order_id: str) -> list[str]:
    return [e["type"] for e in demo.hub.events_for(order_id)]


def test_bundle_order_is_acknowledged_accepted_and_shipped_in_two_parcels(demo: Demo) -> None:
    result = story_bundle(demo)

    order = demo.hub.order(result.order_id)
    assert (order["status"], order["channel_status"]) == ("shipped", "completed")
    assert order["pending_commands"] == order["failed_commands"] == []
    by_position = {line["channel_line_id"]: line for line in order["lines"]}
    assert sorted(by_position) == ["1", "1.0", "1.1", "1.2", "2"]
    assert by_position["1.1"]["parent_line_id"] == by_position["1"]["id"]
    for position, serial in BUNDLE_SERIALS.items():
        assert [u["serial_number"] for u in by_position[position]["units"]] == [serial]
    assert by_position["2"]["shipped"] == 2
    assert [len(s["items"]) for s in order["shipments"]] == [1, 3]

    events = types(demo, result.order_id)
    counts = Counter(events)
    assert counts["order.received"] == 1
    assert counts["command.succeeded"] == 4  # acknowledge, accept, two shipments
    assert counts["command.failed"] == 0
    assert events.index("order.received") < events.index("order.ready_to_ship")
    assert events.index("order.ready_to_ship") < events.index("order.shipped")
    succeeded = [
        e["data"]["kind"] for e in demo.hub.events_for(result.order_id, "command.succeeded")
    ]
    assert succeeded == ["acknowledge", "accept", "ship", "ship"]


def test_rejected_order_is_rejected_in_topi_and_in_the_hub(demo: Demo) -> None:
    result = story_rejected(demo)

    order = demo.hub.order(result.order_id)
    assert (order["status"], order["channel_status"]) == ("rejected", "rejected")
    assert all(line["rejected"] == line["quantity"] for line in order["lines"])
    assert demo.topi.order(result.topi_id)["status"] == "rejected"
    rejected = demo.hub.events_for(result.order_id, "order.rejected")
    assert [e["data"]["reason"] for e in rejected] == ["out_of_stock"]
    assert Counter(types(demo, result.order_id))["order.received"] == 1


def test_customer_cancellation_and_the_refused_seller_cancellation(demo: Demo) -> None:
    result = story_customer_cancel(demo)

    order = demo.hub.order(result.order_id)
    assert (order["status"], order["channel_status"]) == ("cancelled", "canceled")
    (cancellation,) = order["cancellations"]
    assert (cancellation["initiator"], cancellation["reason"]) == ("customer", "customer_request")
    cancelled = demo.hub.events_for(result.order_id, "order.cancelled")
    assert [e["data"]["initiator"] for e in cancelled] == ["customer"]
    # the refused seller cancellation never became a command
    assert "cancel" not in {
        e["data"]["kind"] for e in demo.hub.events_for(result.order_id) if "kind" in e["data"]
    }

    # and once cancelled, the order is closed to the WMS as well
    resp = demo.hub.post(f"/orders/{result.order_id}/accept")
    assert resp.status_code == 409, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")


def test_the_feed_printout_lists_every_event_in_order(demo: Demo) -> None:
    result = story_rejected(demo)

    events = print_feed(demo)
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1))  # gapless, in order
    ours = [e for e in events if e["order_id"] == result.order_id]
    assert describe_event(ours[0]) == ("awaiting_acceptance", f"topi {result.topi_id}")
    rejected = next(e for e in ours if e["type"] == "order.rejected")
    assert describe_event(rejected) == ("rejected", "1 unit, reason out_of_stock")
