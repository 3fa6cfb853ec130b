"""``/webhooks/{channel}/{account}/{topic}``: the event type named by the URL (Spresso may
register one URL per event) reaches the adapter as the header ``x-orderhub-webhook-topic``
and is stored with the message; only the path sets it."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from orderhub.entrypoints.web.routes.webhooks import TOPIC_HEADER

from .support import Harness, assert_problem

ORDER = json.dumps({"id": "CH-90", "lines": [{"id": "a", "quantity": 1}]}).encode()


def spy_on_headers(harness: Harness) -> list[dict[str, str]]:
    """What the account's ``dedupe_key`` and ``order_key`` are given, call by call."""
    account = harness.hub.channels.account("stub", "main")
    seen: list[dict[str, str]] = []

    def dedupe_key(body: bytes, headers: Mapping[str, str]) -> str | None:
        seen.append(dict(headers))
        return f"{headers.get(TOPIC_HEADER)}:{headers.get('webhook-id')}"

    def order_key(body: bytes, headers: Mapping[str, str]) -> str | None:
        seen.append(dict(headers))
        return None

    account.dedupe_key = dedupe_key  # type: ignore[method-assign]
    account.order_key = order_key  # type: ignore[method-assign]
    return seen


async def test_the_topic_of_the_path_reaches_the_adapter_and_is_stored(harness: Harness) -> None:
    seen = spy_on_headers(harness)
    response = await harness.client.post(
        "/webhooks/stub/main/order_cancelled", content=ORDER, headers=harness.signed(ORDER)
    )
    assert response.status_code == 202, response.text
    message = harness.db.inbox[response.json()["message_id"]]
    assert message.headers[TOPIC_HEADER] == "order_cancelled"
    assert message.dedupe_key == "stub:main:id:order_cancelled:msg-1"
    assert seen
    assert all(h[TOPIC_HEADER] == "order_cancelled" for h in seen)
    assert harness.queue.messages == [message.id]


async def test_the_same_message_under_two_topics_is_two_messages(harness: Harness) -> None:
    spy_on_headers(harness)
    answers = [
        await harness.client.post(
            f"/webhooks/stub/main/{topic}", content=ORDER, headers=harness.signed(ORDER)
        )
        for topic in ("order_fulfillable", "order_cancelled", "order_cancelled")
    ]
    assert [a.status_code for a in answers] == [202, 202, 200]
    assert [a.json()["duplicate"] for a in answers] == [False, False, True]
    assert len(harness.db.inbox) == 2


async def test_without_a_topic_in_the_path_a_sent_topic_header_is_dropped(
    harness: Harness,
) -> None:
    seen = spy_on_headers(harness)
    headers = {**harness.signed(ORDER), TOPIC_HEADER: "order_cancelled"}
    response = await harness.client.post("/webhooks/stub/main", content=ORDER, headers=headers)
    assert response.status_code == 202, response.text
    message = harness.db.inbox[response.json()["message_id"]]
    assert TOPIC_HEADER not in message.headers
    assert seen
    assert all(TOPIC_HEADER not in h for h in seen)
    assert message.dedupe_key == "stub:main:id:None:msg-1"


async def test_the_path_wins_over_a_sent_topic_header(harness: Harness) -> None:
    spy_on_headers(harness)
    headers = {**harness.signed(ORDER), TOPIC_HEADER: "order_fulfillable"}
    response = await harness.client.post(
        "/webhooks/stub/main/order_cancelled", content=ORDER, headers=headers
    )
    assert response.status_code == 202, response.text
    message = harness.db.inbox[response.json()["message_id"]]
    assert message.headers[TOPIC_HEADER] == "order_cancelled"


@pytest.mark.parametrize("topic", ["-leading-dash", "x" * 101, "a%20b", "%C3%A9v%C3%A9nement"])
async def test_a_topic_that_is_no_plain_name_is_404_and_stores_nothing(
    harness: Harness, topic: str
) -> None:
    response = await harness.client.post(
        f"/webhooks/stub/main/{topic}", content=ORDER, headers=harness.signed(ORDER)
    )
    assert_problem(response, 404, "unknown-webhook-topic")
    assert harness.db.inbox == {}
    assert harness.queue.messages == []


async def test_an_unauthenticated_webhook_with_a_topic_is_401(harness: Harness) -> None:
    response = await harness.client.post("/webhooks/stub/main/order_cancelled", content=ORDER)
    assert_problem(response, 401, "unauthorized")
    assert harness.db.inbox == {}


async def test_a_topic_for_an_unknown_account_is_404(harness: Harness) -> None:
    response = await harness.client.post(
        "/webhooks/stub/nobody/order_cancelled", content=ORDER, headers=harness.signed(ORDER)
    )
    assert response.status_code == 404, response.text
    assert harness.db.inbox == {}
