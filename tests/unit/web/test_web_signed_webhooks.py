"""The webhook door with an adapter's own signature scheme (a Spresso-like channel, see
:mod:`.signed_channel`): its verdict is final, its ack status is answered, the variant
that matched is counted, and its natural dedupe key stores each event once."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import pytest

from orderhub.application.services import intake
from orderhub.channels.registry import ChannelRegistry
from orderhub.channels.spi import AccountConfig
from orderhub.metrics import REGISTRY

from .signed_channel import (
    CHANNEL,
    OLD_SECRET,
    OTHER_SECRET,
    SCHEME,
    SECRET,
    Calls,
    order_body,
    signed,
    signed_registry,
)
from .support import FULL, PATH_TOKEN, Harness, StubAccount, assert_problem

MAIN = f"/webhooks/{CHANNEL}/main"
BODY = order_body()


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def registry(calls: Calls) -> ChannelRegistry:
    return signed_registry(calls)


def matched(variant: str) -> float:
    """The Prometheus counter of adapter signatures that matched, as scraped."""
    labels = {"channel": CHANNEL, "scheme": SCHEME, "variant": variant}
    value = REGISTRY.get_sample_value("orderhub_webhook_signatures_matched_total", labels)
    return value or 0.0


def received(outcome: str) -> float:
    labels = {"channel": CHANNEL, "outcome": outcome}
    return REGISTRY.get_sample_value("orderhub_webhooks_received_total", labels) or 0.0


def assert_nothing_stored(harness: Harness) -> None:
    assert harness.db.inbox == {}
    assert harness.queue.messages == []


@pytest.mark.parametrize("secret", [SECRET, OLD_SECRET], ids=["current", "previous"])
async def test_a_body_signed_with_a_current_or_previous_secret_is_stored_and_answered_200(
    harness: Harness, calls: Calls, secret: str
) -> None:
    response = await harness.client.post(MAIN, content=BODY, headers=signed(BODY, secret))

    assert response.status_code == 200, response.text  # the adapter's ack, not the default 202
    assert response.json()["duplicate"] is False
    message_id = response.json()["message_id"]
    assert list(harness.db.inbox) == [message_id]
    message = harness.db.inbox[message_id]
    assert message.body == BODY
    assert (message.channel, message.account) == (CHANNEL, "main")
    assert message.dedupe_key == (
        "signed:main:id:order_fulfillable:CH-1:created:2026-01-01T11:59:00Z"
    )
    assert message.headers["x-signed-hmac-sha256"] == signed(BODY, secret)["X-Signed-Hmac-SHA256"]
    assert harness.queue.messages == [message_id]
    assert calls.verified == [BODY]  # the adapter saw the bytes as received


@pytest.mark.parametrize(
    "tamper", ["unknown-secret", "body", "missing-header", "not-base64", "empty-header"]
)
async def test_a_bad_adapter_signature_is_401_and_stores_nothing(
    harness: Harness, tamper: str
) -> None:
    body, headers = BODY, signed(BODY)
    if tamper == "unknown-secret":
        headers = signed(BODY, OTHER_SECRET)
    elif tamper == "body":
        body = BODY.replace(b"CH-1", b"CH-2")
    elif tamper == "missing-header":
        headers = {}
    elif tamper == "not-base64":
        headers = {"X-Signed-Hmac-SHA256": "not base64 at all!"}
    else:
        headers = {"X-Signed-Hmac-SHA256": ""}
    refused_before = received("unauthorized")

    response = await harness.client.post(MAIN, content=body, headers=headers)

    problem = assert_problem(response, 401, "unauthorized")
    assert SECRET not in response.text
    assert OLD_SECRET not in response.text
    assert problem["detail"].startswith("webhook not authenticated")
    assert_nothing_stored(harness)
    assert received("unauthorized") - refused_before == 1


async def test_an_account_without_client_secrets_refuses_a_signed_body(harness: Harness) -> None:
    response = await harness.client.post(
        f"/webhooks/{CHANNEL}/nosecret", content=BODY, headers=signed(BODY)
    )

    body = assert_problem(response, 401, "unauthorized")
    assert "no webhook secret is configured" in body["detail"]
    assert_nothing_stored(harness)


async def test_an_adapter_check_that_raises_is_a_401_not_a_500(
    harness: Harness, calls: Calls
) -> None:
    calls.explode = True

    response = await harness.client.post(MAIN, content=BODY, headers=signed(BODY))

    body = assert_problem(response, 401, "unauthorized")
    assert "the signed signature check failed" in body["detail"]
    assert "a bug in the adapter" not in response.text
    assert_nothing_stored(harness)


def js_stringify(data: object) -> bytes:
    """What a JavaScript sender signs: ``JSON.stringify(JSON.parse(body))``."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


async def test_the_compact_re_serialisation_matches_and_is_counted_as_such(
    harness: Harness,
) -> None:
    pretty = order_body(indent=2)  # on the wire: indented, "weight_kg": 1.0
    parsed = json.loads(pretty)
    sender_signed = js_stringify({**parsed, "weight_kg": 1})  # JavaScript prints 1.0 as 1
    assert sender_signed != pretty
    raw_before, compact_before = matched("raw"), matched("compact")

    response = await harness.client.post(MAIN, content=pretty, headers=signed(sender_signed))

    assert response.status_code == 200, response.text
    assert harness.db.inbox[response.json()["message_id"]].body == pretty  # stored as received
    assert (matched("raw") - raw_before, matched("compact") - compact_before) == (0, 1)


async def test_a_raw_match_is_counted_as_raw(harness: Harness) -> None:
    raw_before, compact_before = matched("raw"), matched("compact")

    response = await harness.client.post(MAIN, content=BODY, headers=signed(BODY))

    assert response.status_code == 200
    assert (matched("raw") - raw_before, matched("compact") - compact_before) == (1, 0)


async def test_a_compact_signature_of_another_body_still_fails(harness: Harness) -> None:
    pretty = order_body(indent=2)
    other = js_stringify({**json.loads(pretty), "status": "cancelled", "weight_kg": 1})
    compact_before = matched("compact")

    response = await harness.client.post(MAIN, content=pretty, headers=signed(other))

    assert_problem(response, 401, "unauthorized")
    assert_nothing_stored(harness)
    assert matched("compact") == compact_before


async def test_the_same_event_delivered_twice_is_200_both_times_and_stored_once(
    harness: Harness,
) -> None:
    first = await harness.client.post(MAIN, content=BODY, headers=signed(BODY))
    harness.clock.advance(3600)  # the sender retries an hour later, with no message id
    pretty = order_body(indent=2)  # even re-encoded, it is the same event
    again = await harness.client.post(MAIN, content=pretty, headers=signed(pretty))

    assert (first.status_code, again.status_code) == (200, 200)
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)
    assert again.json()["message_id"] == first.json()["message_id"]
    assert len(harness.db.inbox) == 1
    assert harness.queue.messages == [first.json()["message_id"]]


@pytest.mark.parametrize(
    "change",
    [
        {"status": "in_transit"},
        {"updated_at": "2026-01-01T12:30:00Z"},
        {"event": "order_cancelled"},
        {"order_id": "CH-2"},
    ],
    ids=["status", "updated_at", "event", "order"],
)
async def test_another_state_of_the_order_is_a_new_message(
    harness: Harness, change: dict[str, Any]
) -> None:
    later = order_body(**change)

    first = await harness.client.post(MAIN, content=BODY, headers=signed(BODY))
    second = await harness.client.post(MAIN, content=later, headers=signed(later))

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["duplicate"] is False
    assert len(harness.db.inbox) == 2
    assert harness.queue.messages == [first.json()["message_id"], second.json()["message_id"]]


async def test_a_body_without_the_natural_key_is_deduplicated_by_its_hash(
    harness: Harness,
) -> None:
    body = b'{"id": "CH-1", "lines": []}'  # no event, no updated time

    first = await harness.client.post(MAIN, content=body, headers=signed(body))
    again = await harness.client.post(MAIN, content=body, headers=signed(body))

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["duplicate"] is True
    (message,) = harness.db.inbox.values()
    assert message.dedupe_key.startswith("signed:main:sha256:")


async def test_without_the_adapters_header_the_configured_methods_decide(
    harness: Harness, calls: Calls
) -> None:
    raw_before = matched("raw")

    ok = await harness.client.post(f"/webhooks/{CHANNEL}/fallback?token={PATH_TOKEN}", content=BODY)
    no_token = await harness.client.post(f"/webhooks/{CHANNEL}/fallback", content=BODY)

    assert ok.status_code == 200, ok.text  # still the adapter's ack status
    assert_problem(no_token, 401, "unauthorized")
    assert len(harness.db.inbox) == 1
    assert calls.verified == [BODY, BODY]  # asked first both times: "not my scheme"
    assert matched("raw") == raw_before  # a configured method is not the adapter's scheme


async def test_the_adapters_refusal_is_final_even_with_a_valid_path_token(
    harness: Harness,
) -> None:
    response = await harness.client.post(
        f"/webhooks/{CHANNEL}/fallback?token={PATH_TOKEN}",
        content=BODY,
        headers=signed(BODY, OTHER_SECRET),
    )

    assert_problem(response, 401, "unauthorized")
    assert_nothing_stored(harness)


@pytest.mark.parametrize(
    "order_id",
    ["CH-\u0000-1", "CH-\ud800-1", "CH-" + "9" * 5000],
    ids=["nul", "lone-surrogate", "long"],
)
async def test_a_natural_key_the_database_cannot_index_is_stored_hashed(
    harness: Harness, order_id: str
) -> None:
    body = order_body(order_id)  # json.dumps escapes them: the bytes are plain ASCII

    first = await harness.client.post(MAIN, content=body, headers=signed(body))
    again = await harness.client.post(MAIN, content=body, headers=signed(body))

    assert (first.status_code, again.status_code) == (200, 200), first.text
    assert again.json()["duplicate"] is True
    (message,) = harness.db.inbox.values()
    key = message.dedupe_key
    assert key.startswith("signed:main:id-sha256:")
    assert len(key) < 100
    key.encode("utf-8")  # PostgreSQL text: valid UTF-8, no NUL
    assert "\x00" not in key


class RaisingKeyAccount(StubAccount):
    def dedupe_key(self, body: bytes, headers: Mapping[str, str]) -> str | None:
        return str(json.loads(body)["id"])  # KeyError, or ValueError on a body not JSON


@pytest.mark.parametrize("body", [b"\xff not json", b"{}"])
def test_an_adapter_key_that_raises_leaves_it_to_the_bodys_hash(body: bytes) -> None:
    account = RaisingKeyAccount(AccountConfig(channel="raising", name="main"), FULL)

    key = intake.dedupe_key(account, body, {})

    assert key == f"raising:main:sha256:{hashlib.sha256(body).hexdigest()}"


@pytest.mark.parametrize("order_id", ["CH-\u0000-1", "CH-\ud800-1", "CH-" + "9" * 5000])
def test_an_order_key_the_database_cannot_index_is_hashed_the_same_everywhere(
    order_id: str,
) -> None:
    key = intake.storable_order_key(order_id)

    assert key.startswith("sha256:")
    assert len(key) < 100
    key.encode("utf-8")
    assert key == intake.storable_order_key(order_id)  # webhook and command answers agree
    assert intake.storable_order_key("CH-1") == "CH-1"
