from __future__ import annotations

import json

import pytest
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from orderhub.application.ports import InboxState
from orderhub.application.services.intake import Processed, process_message
from orderhub.metrics import WEBHOOKS_RECEIVED

from .support import BEARER_TOKEN, OLD_SECRET, PATH_TOKEN, Harness, assert_problem, auth

ORDER = json.dumps({"id": "CH-77", "lines": [{"id": "a", "quantity": 1}]}).encode()
OTHER_SECRET = "whsec_c29tZWJvZHktZWxzZS1zLXNlY3JldC0zMi1ieXRlcyE="


def assert_nothing_stored(harness: Harness) -> None:
    assert harness.db.inbox == {}
    assert harness.queue.messages == []


async def test_a_signed_webhook_is_stored_and_queued_before_the_answer(harness: Harness) -> None:
    headers = {**harness.signed(ORDER), "X-Trace": "t-1"}
    response = await harness.client.post("/webhooks/stub/main", content=ORDER, headers=headers)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["duplicate"] is False
    message = harness.db.inbox[body["message_id"]]
    assert message.body == ORDER
    assert (message.channel, message.account, message.source) == ("stub", "main", "webhook")
    assert message.headers["webhook-id"] == "msg-1"
    assert message.headers["x-trace"] == "t-1"
    assert message.dedupe_key == "stub:main:id:msg-1"
    assert harness.queue.messages == [body["message_id"]]
    # the worker applies it later: the order appears
    assert await process_message(harness.hub, body["message_id"]) is Processed.PROCESSED
    orders = await harness.client.get("/api/v1/orders", headers=auth("reader"))
    assert [o["channel_order_id"] for o in orders.json()["orders"]] == ["CH-77"]


async def test_a_message_signed_with_the_previous_secret_is_accepted(harness: Harness) -> None:
    response = await harness.client.post(
        "/webhooks/stub/main", content=ORDER, headers=harness.signed(ORDER, secret=OLD_SECRET)
    )
    assert response.status_code == 202


async def test_several_signatures_one_valid(harness: Harness) -> None:
    headers = harness.signed(ORDER)
    forged = harness.signed(ORDER, secret=OTHER_SECRET)["webhook-signature"]
    headers["webhook-signature"] = f"{forged} {headers['webhook-signature']}"
    response = await harness.client.post("/webhooks/stub/main", content=ORDER, headers=headers)
    assert response.status_code == 202


@pytest.mark.parametrize(
    "tamper",
    ["other-secret", "body", "message-id", "stale", "future", "no-signature", "no-timestamp"],
)
async def test_a_forged_or_replayed_signature_is_401_and_stores_nothing(
    harness: Harness, tamper: str
) -> None:
    now = int(harness.clock.now().timestamp())
    body = ORDER
    headers = harness.signed(ORDER)
    if tamper == "other-secret":
        headers = harness.signed(ORDER, secret=OTHER_SECRET)
    elif tamper == "body":
        body = ORDER.replace(b"CH-77", b"CH-78")
    elif tamper == "message-id":
        headers["webhook-id"] = "msg-2"
    elif tamper == "stale":
        headers = harness.signed(ORDER, timestamp=now - 301)
    elif tamper == "future":
        headers = harness.signed(ORDER, timestamp=now + 301)
    elif tamper == "no-signature":
        del headers["webhook-signature"]
    else:
        del headers["webhook-timestamp"]
    with capture_logs(processors=[merge_contextvars]) as logs:
        response = await harness.client.post("/webhooks/stub/main", content=body, headers=headers)
    assert_problem(response, 401, "unauthorized")
    assert_nothing_stored(harness)
    refused = next(log for log in logs if log["event"] == "webhook refused")
    assert (refused["channel"], refused["account"]) == ("stub", "main")


async def test_a_replayed_message_is_acknowledged_but_stored_once(harness: Harness) -> None:
    headers = harness.signed(ORDER)
    first = await harness.client.post("/webhooks/stub/main", content=ORDER, headers=headers)
    harness.clock.advance(60)  # a retry by the sender, still within the tolerance
    again = await harness.client.post("/webhooks/stub/main", content=ORDER, headers=headers)
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert len(harness.db.inbox) == 1
    assert harness.queue.messages == [first.json()["message_id"]]


async def test_bearer_token_accounts(harness: Harness) -> None:
    ok = await harness.client.post(
        "/webhooks/stub/plain", content=ORDER, headers={"Authorization": f"Bearer {BEARER_TOKEN}"}
    )
    assert ok.status_code == 202
    message = harness.db.inbox[ok.json()["message_id"]]
    assert "authorization" not in message.headers  # credentials are not stored
    before = harness.state()
    wrong = await harness.client.post(
        "/webhooks/stub/plain", content=ORDER, headers={"Authorization": "Bearer nope"}
    )
    assert_problem(wrong, 401, "unauthorized")
    signed = await harness.client.post(
        "/webhooks/stub/plain", content=ORDER, headers=harness.signed(ORDER)
    )
    assert_problem(signed, 401, "unauthorized")  # HMAC is not configured for this account
    assert harness.state() == before


async def test_path_token_accounts(harness: Harness) -> None:
    ok = await harness.client.post(f"/webhooks/stub/pathtoken?token={PATH_TOKEN}", content=ORDER)
    assert ok.status_code == 202
    wrong = await harness.client.post("/webhooks/stub/pathtoken?token=guess", content=ORDER)
    body = assert_problem(wrong, 401, "unauthorized")
    assert "guess" not in wrong.text
    assert body["instance"] == "/webhooks/stub/pathtoken"
    missing = await harness.client.post("/webhooks/stub/pathtoken", content=ORDER)
    assert_problem(missing, 401, "unauthorized")
    assert len(harness.db.inbox) == 1


async def test_an_account_without_authentication_refuses_everything(harness: Harness) -> None:
    for headers in ({}, harness.signed(ORDER), {"Authorization": f"Bearer {BEARER_TOKEN}"}):
        response = await harness.client.post(
            f"/webhooks/stub/closed?token={PATH_TOKEN}", content=ORDER, headers=headers
        )
        assert_problem(response, 401, "unauthorized")
    assert_nothing_stored(harness)


@pytest.mark.parametrize("path", ["/webhooks/nowhere/main", "/webhooks/stub/nobody"])
async def test_an_unknown_channel_or_account_is_404(harness: Harness, path: str) -> None:
    response = await harness.client.post(path, content=ORDER, headers=harness.signed(ORDER))
    assert_problem(response, 404, "unknown-channel")
    assert_nothing_stored(harness)


async def test_an_unparseable_body_is_still_stored_and_failed_later(harness: Harness) -> None:
    body = b"\x00\xff not json at all"
    response = await harness.client.post(
        "/webhooks/stub/main", content=body, headers=harness.signed(body)
    )
    assert response.status_code == 202
    message_id = response.json()["message_id"]
    assert harness.db.inbox[message_id].body == body
    assert await process_message(harness.hub, message_id) is Processed.FAILED
    assert harness.db.inbox[message_id].state is InboxState.FAILED


async def test_a_body_over_the_limit_is_413_and_stores_nothing(harness: Harness) -> None:
    body = b"x" * (65 * 1024)
    response = await harness.client.post(
        "/webhooks/stub/main", content=body, headers=harness.signed(body)
    )
    assert_problem(response, 413, "payload-too-large")
    assert_nothing_stored(harness)


async def test_webhook_outcomes_are_counted_for_prometheus(harness: Harness) -> None:
    def count(outcome: str) -> float:
        return WEBHOOKS_RECEIVED.labels(channel="stub", outcome=outcome)._value.get()

    before = {o: count(o) for o in ("stored", "duplicate", "unauthorized")}
    signed = harness.signed(ORDER)
    await harness.client.post("/webhooks/stub/main", content=ORDER, headers=signed)
    await harness.client.post("/webhooks/stub/main", content=ORDER, headers=signed)
    forged = harness.signed(ORDER, secret=OTHER_SECRET)
    await harness.client.post("/webhooks/stub/main", content=ORDER, headers=forged)
    assert {o: count(o) - before[o] for o in before} == {
        "stored": 1,
        "duplicate": 1,
        "unauthorized": 1,
    }
