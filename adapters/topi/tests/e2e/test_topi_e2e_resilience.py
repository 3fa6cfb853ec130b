"""What goes wrong between topi and the hub, end to end, in embedded and production mode:
a lost webhook, a duplicated webhook, a topi 500 and topi 4xx answers."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any, Final

from topi_e2e_support import RECONCILE_INTERVAL, STEP_TIMEOUT

from orderhub_topi.demo import Demo, StoryResult
from orderhub_topi.demo_support import redeliver_webhook

TWO_PHONES: Final[dict[str, Any]] = {
    "seller_offer_reference": "E2E-PHONES",
    "lines": [{"title": "Smartphone", "sku": "PHONE-E2E", "quantity": 2, "contract_type": "rent"}],
}
ONE_DESK: Final[dict[str, Any]] = {
    "seller_offer_reference": "E2E-DESK",
    "lines": [{"title": "Standing desk", "sku": "DESK-E2E", "contract_type": "pay_now"}],
}


def accepted_order(demo: Demo, spec: dict[str, Any]) -> StoryResult:
    """An order received, acknowledged and accepted (topi: confirmed)."""
    result = demo.receive("E", spec, "an e2e order")
    receipt = demo.hub.command(result.order_id, "accept")
    demo.command_outcome(receipt["command_id"])
    demo.topi_order(result.topi_id, "confirmed")
    return result


def only_line(demo: Demo, order_id: str) -> str:
    (line,) = demo.hub.order(order_id)["lines"]
    line_id: str = line["id"]
    return line_id


def shipment_calls(demo: Demo, topi_id: str) -> list[dict[str, Any]]:
    """topi's record of ``POST /v1/shipment`` calls for this order (status codes, faults)."""
    return [
        call
        for call in demo.topi.control.calls(method="POST", path="/v1/shipment")
        if json.loads(call["body"]).get("order_id") == topi_id
    ]


def test_lost_webhook_is_recovered_by_the_reconciliation_walk(demo: Demo) -> None:
    demo.topi.control.drop_webhooks(1)
    topi_id = demo.place_order(TWO_PHONES)

    (record,) = demo.topi.control.webhooks(topi_id)
    assert (record["status"], record["dropped"], record["delivered"]) == ("created", True, False)
    # the next walk (every RECONCILE_INTERVAL s) lists topi's new orders and finds it
    order = demo.hub_order(
        topi_id, status="awaiting_acceptance", timeout=STEP_TIMEOUT + 3 * RECONCILE_INTERVAL
    )
    demo.hub_command(order["id"], "acknowledge")
    assert demo.topi.order(topi_id)["status"] == "acknowledged"
    assert demo.topi.control.webhooks(topi_id) == [record]  # it never came by webhook
    assert demo.topi.control.calls(method="GET", path="/v1/orders/paginated")
    assert Counter(e["type"] for e in demo.hub.events_for(order["id"]))["order.received"] == 1

    # and the recovered order works like any other
    receipt = demo.hub.command(order["id"], "accept")
    demo.command_outcome(receipt["command_id"])
    demo.topi_order(topi_id, "confirmed")


def test_duplicate_webhook_is_acknowledged_and_not_applied_twice(demo: Demo) -> None:
    result = demo.receive("E", TWO_PHONES, "an order whose webhook comes twice")
    record = demo.webhook_delivered(result.topi_id, "created")

    # topi sends the same message again (same webhook-id, fresh signature)
    again = redeliver_webhook(demo.stack, record)
    assert again.status_code == 200, again.text
    assert again.json()["duplicate"] is True
    again = redeliver_webhook(demo.stack, record)
    assert (again.status_code, again.json()["duplicate"]) == (200, True)

    # later events come and go as usual...
    receipt = demo.hub.command(result.order_id, "accept")
    demo.command_outcome(receipt["command_id"])
    # ...and the order was received once, and exists once
    counts = Counter(e["type"] for e in demo.hub.events_for(result.order_id))
    assert counts["order.received"] == 1
    assert counts["command.succeeded"] == 2  # acknowledge, accept
    same = [o for o in demo.hub.orders(channel="topi") if o["channel_order_id"] == result.topi_id]
    assert len(same) == 1


def test_forged_or_stale_webhooks_are_refused(demo: Demo) -> None:
    result = demo.receive("E", ONE_DESK, "an order for forged webhooks")
    record = demo.webhook_delivered(result.topi_id, "created")
    forged = {**record, "id": "msg_forged", "body": record["body"].replace("created", "canceled")}

    wrong_key = redeliver_webhook(demo.stack, forged, secret="whsec_" + "QUJD" * 11)
    stale = redeliver_webhook(demo.stack, record, timestamp=int(time.time()) - 3600)

    for refused in (wrong_key, stale):
        assert refused.status_code == 401, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
    receipt = demo.hub.command(result.order_id, "accept")  # the order is untouched
    demo.command_outcome(receipt["command_id"])
    assert demo.hub.order(result.order_id)["status"] == "ready_to_ship"


def test_topi_500_on_a_shipment_is_retried_and_ships_once(demo: Demo) -> None:
    result = accepted_order(demo, TWO_PHONES)
    demo.topi.control.add_fault("/v1/shipment", method="POST", status=500, count=1)

    receipt = demo.hub.command(
        result.order_id,
        "shipments",
        {
            "carrier": "DHL",
            "tracking_number": "E2E-500",
            "tracking_url": "https://tracking.example/dhl/E2E-500",
            "items": [
                {
                    "line_id": only_line(demo, result.order_id),
                    "quantity": 2,
                    "serial_numbers": ["SN-E2E-1", "SN-E2E-2"],
                }
            ],
        },
    )
    event = demo.command_outcome(receipt["command_id"], state="succeeded")
    assert event["data"]["attempts"] == 2

    calls = shipment_calls(demo, result.topi_id)
    assert [(c["status_code"], c["fault"]) for c in calls] == [(500, True), (200, False)]
    topi = demo.topi_order(result.topi_id, "completed")
    assert sorted(a["serial_number"] for a in topi["assets"]) == ["SN-E2E-1", "SN-E2E-2"]
    assert topi["tracking_urls"] == ["https://tracking.example/dhl/E2E-500"]

    order = demo.hub_order(result.topi_id, status="shipped", channel_status="completed")
    assert len(order["shipments"]) == 1
    assert order["pending_commands"] == order["failed_commands"] == []
    outcomes = [
        e["type"]
        for e in demo.hub.events_for(result.order_id)
        if e["data"].get("command_id") == receipt["command_id"]
    ]
    assert outcomes == ["command.succeeded"]


TOPI_MESSAGE: Final = "shipment refused: the order is under review by topi support"


def test_topi_4xx_fails_the_command_and_keeps_topis_message(demo: Demo) -> None:
    result = accepted_order(demo, ONE_DESK)
    demo.topi.control.add_fault(
        "/v1/shipment",
        method="POST",
        status=400,
        body={
            "name": "bad_request",
            "id": "e2e-4xx",
            "message": TOPI_MESSAGE,
            "temporary": False,
            "timeout": False,
            "fault": False,
        },
    )
    receipt = demo.hub.command(
        result.order_id,
        "shipments",
        {
            "carrier": "DHL",
            "tracking_number": "E2E-400",
            "items": [{"line_id": only_line(demo, result.order_id), "quantity": 1}],
        },
    )

    event = demo.command_outcome(receipt["command_id"], state="failed")
    assert event["type"] == "command.failed"
    assert event["data"]["attempts"] == 1  # a 4xx is not retried
    assert TOPI_MESSAGE in event["data"]["error"]

    order = demo.hub.order(result.order_id)
    (failed,) = order["failed_commands"]
    assert failed["id"] == receipt["command_id"]
    assert failed["kind"] == "ship"
    assert failed["last_error"] == f"topi: {TOPI_MESSAGE}"
    assert [c["status_code"] for c in shipment_calls(demo, result.topi_id)] == [400]
    assert demo.topi.order(result.topi_id)["status"] == "confirmed"  # nothing shipped


def test_topi_validation_error_is_visible_to_the_wms(demo: Demo) -> None:
    """A real refusal, not an injected one: topi takes only http(s) tracking URLs."""
    result = accepted_order(demo, ONE_DESK)
    receipt = demo.hub.command(
        result.order_id,
        "shipments",
        {
            "carrier": "DHL",
            "tracking_number": "E2E-URL",
            "tracking_url": "tracking.example/E2E-URL",
            "items": [{"line_id": only_line(demo, result.order_id), "quantity": 1}],
        },
    )
    event = demo.command_outcome(receipt["command_id"], state="failed")
    assert event["data"]["error"] == "topi: tracking_url must be an http(s) URI"
    (failed,) = demo.hub.order(result.order_id)["failed_commands"]
    assert failed["last_error"] == "topi: tracking_url must be an http(s) URI"
