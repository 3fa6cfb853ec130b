"""Bad input over HTTP: the right status and problem type, and nothing lost or half-applied.

Each refusal is checked against a snapshot of what the warehouse can see (the order, the
feed) and of what it cannot (the rows of commands, inbox messages and feed events)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from .support import (
    HMAC_SECRET,
    OPS_KEY,
    READER_KEY,
    WEBHOOK_TOKEN,
    Hub,
    assert_gapless,
    auth,
    is_problem,
    line_ids,
    order_document,
    types_for,
    wait_until,
)

TABLES = ("channel_commands", "inbox_messages", "feed_events", "orders")


def state_of(hub: Hub, order_ids: list[str]) -> dict[str, Any]:
    """Everything a refused request must leave as it was."""
    return {
        "orders": {order_id: hub.order(order_id) for order_id in order_ids},
        "feed": hub.feed(),
        "rows": {table: hub.count(table) for table in TABLES},
    }


def unchanged(hub: Hub, order_ids: list[str]) -> Callable[[], None]:
    before = state_of(hub, order_ids)

    def check() -> None:
        after = state_of(hub, order_ids)
        assert after == before

    return check


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(message_id: str, body: bytes, *, secret: str = HMAC_SECRET) -> dict[str, str]:
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


def test_refused_commands_change_nothing(hub: Hub) -> None:
    channel_server = hub.channel_server
    channel_server.send_order(
        hub, "topi", order_document("CO-400", "created", [("L1", 2), ("L2", 1)])
    )
    channel_server.send_order(hub, "octopia", order_document("CO-401", "WaitingAcceptance", []))
    topi = hub.wait_for_order("topi", "CO-400")
    order_id = topi["id"]
    ids = line_ids(topi)
    # the Octopia document has no lines: stored, marked failed, visible to an operator
    failed = wait_until(
        lambda: [
            m
            for m in hub.get("/ops/failed-messages", headers=auth(OPS_KEY)).json()["messages"]
            if "CO-401" in m["body"]
        ],
        "the invalid document to be marked failed",
        alive=hub.check_alive,
    )
    assert [(m["account"], m["state"]) for m in failed] == [("octopia", "failed")]
    assert "at least one line" in failed[0]["last_error"]
    assert hub.find_order("octopia", "CO-401") is None

    check = unchanged(hub, [order_id])
    accept = f"/api/v1/orders/{order_id}/accept"

    # malformed JSON
    response = hub.api.post(
        accept, content=b'{"lines": [', headers={"Content-Type": "application/json"}
    )
    is_problem(response, 400, "malformed-json")
    check()

    # a body that is JSON but not the schema (a typo must not widen the command)
    response = hub.api.post(accept, json={"line": [{"line_id": ids["L1"], "quantity": 1}]})
    is_problem(response, 422, "validation-error")
    check()

    # a command without its Idempotency-Key: a WMS retry could do it twice
    response = hub.api.post(accept, json={})
    is_problem(response, 400, "idempotency-key-required")
    check()

    # unknown order
    response = hub.post("/orders/0190c0de-0000-7000-8000-000000000000/accept", json={})
    is_problem(response, 404, "order-not-found")
    check()

    # unknown line
    response = hub.post(
        f"/orders/{order_id}/accept", json={"lines": [{"line_id": "no-such-line", "quantity": 1}]}
    )
    is_problem(response, 422, "unknown-line")
    check()

    # too many units
    response = hub.post(
        f"/orders/{order_id}/accept", json={"lines": [{"line_id": ids["L1"], "quantity": 3}]}
    )
    is_problem(response, 422, "too-many-units")
    check()

    # wrong state: shipping an order nobody accepted
    response = hub.post(
        f"/orders/{order_id}/shipments",
        json={
            "carrier": "DHL",
            "tracking_number": "X",
            "items": [{"line_id": ids["L1"], "quantity": 1}],
        },
    )
    is_problem(response, 409, "ship-before-acceptance")
    check()

    # not supported by the channel: topi has no seller cancellation, nor partial acceptance
    response = hub.post(f"/orders/{order_id}/cancellations", json={"reason": "out_of_stock"})
    body = is_problem(response, 409, "seller-cancellation-not-supported")
    assert "topi" in body["detail"]
    response = hub.post(
        f"/orders/{order_id}/accept", json={"lines": [{"line_id": ids["L1"], "quantity": 1}]}
    )
    is_problem(response, 409, "acceptance-whole-order-only")
    check()

    # wrong API key, no API key, a key without the scope
    response = httpx.post(f"{hub.url}{accept}", json={}, headers=auth("not-a-key-0123456789abcdef"))
    is_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    response = httpx.post(f"{hub.url}{accept}", json={})
    is_problem(response, 401, "unauthorized")
    response = httpx.post(f"{hub.url}{accept}", json={}, headers=auth(READER_KEY))
    is_problem(response, 403, "forbidden")
    check()

    # an Idempotency-Key reused for another request
    key = {"Idempotency-Key": "wms-accept-CO-400"}
    first = hub.post(f"/orders/{order_id}/accept", json={}, headers=key)
    assert first.status_code == 202, first.text
    command_id = first.json()["command_id"]
    check = unchanged(hub, [order_id])  # the new baseline: one accepted command
    again = hub.post(f"/orders/{order_id}/accept", json={}, headers=key)
    assert again.status_code == 202
    assert again.json() == first.json()  # the first answer, no second command
    other = hub.post(f"/orders/{order_id}/reject", json={"reason": "out_of_stock"}, headers=key)
    is_problem(other, 422, "idempotency-key-reused")
    hub.wait_for_command(command_id)
    check = unchanged(hub, [order_id])

    # wrong state again, now that it is accepted: nothing is left to accept, and topi
    # rejects only before acceptance
    is_problem(hub.post(f"/orders/{order_id}/accept", json={}), 409, "nothing-to-accept")
    is_problem(
        hub.post(f"/orders/{order_id}/reject", json={"reason": "out_of_stock"}),
        409,
        "rejection-after-acceptance",
    )
    check()

    assert [c["command_id"] for c in channel_server.calls_for("CO-400")] == [command_id]
    events = hub.feed()
    assert_gapless(events)
    assert types_for(events, order_id) == [
        "order.received",
        "order.accepted",
        "order.ready_to_ship",
        "command.succeeded",
    ]


def test_replayed_webhook_is_acknowledged_and_applied_once(hub: Hub) -> None:
    channel_server = hub.channel_server
    document = order_document("CO-410", "created", [("L1", 1)])
    first = channel_server.send_order(hub, "topi", document, webhook_id="evt-410")
    assert first["status"] == 202, first
    first_ack = json.loads(first["body"])
    assert first_ack["duplicate"] is False
    hub.wait_for_message(first_ack["message_id"])
    order = hub.wait_for_order("topi", "CO-410")
    check = unchanged(hub, [order["id"]])

    replay = channel_server.send_order(hub, "topi", document, webhook_id="evt-410")
    assert replay["status"] == 200, replay  # acknowledged: already received
    replay_ack = json.loads(replay["body"])
    assert replay_ack["duplicate"] is True
    assert replay_ack["message_id"] == first_ack["message_id"]  # names the stored message
    check()

    # the same body under a new message id is a new message, but changes nothing: not even
    # the order's version or updated_at
    again = channel_server.send_order(hub, "topi", document, webhook_id="evt-410-b")
    assert again["status"] == 202, again
    hub.wait_for_message(json.loads(again["body"])["message_id"])
    assert hub.order(order["id"]) == order  # version and updated_at included
    assert types_for(hub.feed(), order["id"]) == ["order.received"]


def test_webhook_authentication(hub: Hub) -> None:
    """An HMAC-secured account: a forged or stale signature, or a wrong bearer token, is
    401 and stores nothing; the genuine message afterwards is new (not a duplicate)."""
    channel_server = hub.channel_server
    body = json.dumps(order_document("CO-420", "created", [("L1", 1)])).encode()
    url = hub.webhook_url("signed")
    check = unchanged(hub, [])

    forged = httpx.post(
        url,
        content=body,
        headers=signed_headers("evt-420", body, secret="whsec_" + base64.b64encode(b"x").decode()),
    )
    is_problem(forged, 401, "unauthorized")
    tampered = signed_headers("evt-420", body)
    response = httpx.post(url, content=body.replace(b"CO-420", b"CO-666"), headers=tampered)
    is_problem(response, 401, "unauthorized")
    stale = signed_headers("evt-420", body)
    stale["webhook-timestamp"] = str(int(time.time()) - 3600)
    stale["webhook-signature"] = sign(HMAC_SECRET, "evt-420", int(time.time()) - 3600, body)
    is_problem(httpx.post(url, content=body, headers=stale), 401, "unauthorized")
    bearer = httpx.post(url, content=body, headers=auth(WEBHOOK_TOKEN))  # not this account's
    is_problem(bearer, 401, "unauthorized")
    wrong_token = channel_server.send_order(
        hub, "topi", order_document("CO-421", "created", [("L1", 1)]), token="nope"
    )
    assert wrong_token["status"] == 401, wrong_token
    unknown_account = httpx.post(
        hub.webhook_url("no-such-account"), content=body, headers=auth(WEBHOOK_TOKEN)
    )
    is_problem(unknown_account, 404, "unknown-channel")
    check()

    genuine = httpx.post(url, content=body, headers=signed_headers("evt-420", body))
    assert genuine.status_code == 202, genuine.text
    assert genuine.json()["duplicate"] is False  # the forged ones left no trace
    order = hub.wait_for_order("signed", "CO-420")
    assert order["status"] == "awaiting_acceptance"
    assert hub.find_order("signed", "CO-666") is None
    assert hub.find_order("topi", "CO-421") is None
