"""Targeted fuzzing of the webhook door's credentials: whatever a sender puts in
``webhook-id``, ``webhook-timestamp``, ``webhook-signature``, ``Authorization`` or
``?token=``, the answer is a 4xx problem (401, or 422 for a NUL byte), never a 5xx, and
nothing is stored; garbage beside one valid signature does not stop it counting.

The strategies lean on what broke before: digits of other scripts (``str.isdigit()`` is
true for "¹²³"), thousands of digits, and base64 that is not ASCII."""

from __future__ import annotations

import string
from datetime import UTC, datetime
from typing import Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderhub.channels.spi import WebhookAuth
from orderhub.entrypoints.web.webhook_auth import WebhookAuthError, sign, verify_webhook

from .fuzz_world import assert_no_server_error, send, shared_world
from .support import BEARER_TOKEN, CHANNEL, PATH_TOKEN, SECRET

NOW: Final = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # FixedClock's
STAMP: Final = int(NOW.timestamp())
BODY: Final = b'{"id": "CH-1", "lines": [{"id": "a", "quantity": 1}]}'
WORLD: Final = shared_world()


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


digits_of_any_script = st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=12)
long_ascii_digits = st.integers(1, 6000).map(lambda n: "9" * n)
near_stamps = st.integers(-(10**20), 10**20).map(str) | st.sampled_from(
    [f"{STAMP}.0", f" {STAMP} ", f"+{STAMP}", f"{STAMP:_}", f"0x{STAMP:x}", "1e9", "NaN"]
)
anything = st.text(max_size=60)
latin1 = st.binary(max_size=80).map(lambda raw: raw.decode("latin-1"))
base64ish = st.text(string.ascii_letters + string.digits + "+/=-_é\xff", max_size=48)
signature_entries = st.lists(
    st.tuples(st.sampled_from(["v1", "v2", "V1", "", "v1,v1"]), base64ish).map(",".join) | anything,
    max_size=4,
).map(" ".join)

timestamps = digits_of_any_script | long_ascii_digits | near_stamps | anything | latin1
signatures = signature_entries | anything | latin1
texts = anything | latin1
AUTHS: Final = (
    WebhookAuth(hmac_secrets=(SECRET,)),
    WebhookAuth(bearer_tokens=(BEARER_TOKEN,)),
    WebhookAuth(path_tokens=(PATH_TOKEN,)),
    WebhookAuth(hmac_secrets=(SECRET,), bearer_tokens=(BEARER_TOKEN,), path_tokens=(PATH_TOKEN,)),
    WebhookAuth(),
)


def _header_map(
    webhook_id: str | None, stamp: str | None, signature: str | None, authorization: str | None
) -> dict[str, str]:
    found = {
        "webhook-id": webhook_id,
        "webhook-timestamp": stamp,
        "webhook-signature": signature,
        "authorization": authorization,
    }
    return {name: value for name, value in found.items() if value is not None}


@fuzz_settings(250)
@given(
    auth=st.sampled_from(AUTHS),
    webhook_id=st.none() | texts,
    stamp=st.none() | timestamps,
    signature=st.none() | signatures,
    authorization=st.none() | texts | texts.map(lambda t: f"Bearer {t}"),
    token=st.none() | texts,
    body=st.binary(max_size=64),
)
def test_garbage_credentials_are_refused_with_a_reason(
    auth: WebhookAuth,
    webhook_id: str | None,
    stamp: str | None,
    signature: str | None,
    authorization: str | None,
    token: str | None,
    body: bytes,
) -> None:
    headers = _header_map(webhook_id, stamp, signature, authorization)
    with pytest.raises(WebhookAuthError) as refused:
        verify_webhook(auth, headers=headers, query_token=token, body=body, now=NOW)
    assert refused.value.reason


def _raw(value: str | None) -> bytes | None:
    return None if value is None else value.encode("utf-8", "surrogatepass")


@fuzz_settings(80)
@given(
    account=st.sampled_from(["main", "plain", "pathtoken", "closed"]),
    webhook_id=st.none() | st.binary(max_size=40) | texts.map(_raw),
    stamp=st.none() | st.binary(max_size=40) | timestamps.map(_raw),
    signature=st.none() | st.binary(max_size=80) | signatures.map(_raw),
    authorization=st.none()
    | st.binary(max_size=40)
    | texts.map(lambda t: b"Bearer " + t.encode("utf-8", "surrogatepass")),
    token=st.none() | st.binary(max_size=20),
)
def test_garbage_credentials_over_http_are_4xx_and_store_nothing(
    account: str,
    webhook_id: bytes | None,
    stamp: bytes | None,
    signature: bytes | None,
    authorization: bytes | None,
    token: bytes | None,
) -> None:
    WORLD.reset()
    named = {
        b"webhook-id": webhook_id,
        b"webhook-timestamp": stamp,
        b"webhook-signature": signature,
        b"authorization": authorization,
    }
    headers = [(name, value) for name, value in named.items() if value is not None]
    query = "" if token is None else "?token=" + "".join(f"%{byte:02X}" for byte in token)
    response = send(WORLD.app, "POST", f"/webhooks/{CHANNEL}/{account}{query}", headers, BODY)
    assert_no_server_error(
        response.status_code, response.headers.get("content-type", ""), response.content, WORLD
    )
    assert response.status_code in (401, 422), response.text
    if response.status_code == 401:
        assert response.json()["detail"].startswith("webhook not authenticated: ")
    assert WORLD.db.inbox == WORLD.seed.inbox
    assert WORLD.queue.messages == []


garbage_entry = st.text(
    st.characters(codec="latin-1", exclude_characters="\x00", exclude_categories=["Zs", "Cc"]),
    min_size=1,
    max_size=40,
)


@fuzz_settings(40)
@given(
    before=st.lists(garbage_entry, max_size=3),
    after=st.lists(garbage_entry, max_size=3),
    message_id=st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=30),
)
def test_garbage_beside_a_valid_signature_does_not_stop_it(
    before: list[str], after: list[str], message_id: str
) -> None:
    WORLD.reset()
    valid = sign(SECRET, message_id=message_id, timestamp=STAMP, body=BODY)
    entries = " ".join([*before, valid, *after])
    headers = [
        (b"webhook-id", message_id.encode()),
        (b"webhook-timestamp", str(STAMP).encode()),
        (b"webhook-signature", entries.encode("latin-1")),
    ]
    response = send(WORLD.app, "POST", f"/webhooks/{CHANNEL}/main", headers, BODY)
    assert response.status_code == 202, response.text
    assert len(WORLD.db.inbox) == len(WORLD.seed.inbox) + 1


def test_the_timestamp_strategy_reaches_what_broke_before() -> None:
    """A guard on the fuzzer itself: it does produce the two inputs that gave 500s."""
    found = {"other script": False, "past int()'s limit": False}

    @fuzz_settings(300)
    @given(stamp=timestamps)
    def look(stamp: str) -> None:
        found["other script"] |= stamp.isdigit() and not stamp.isascii()
        found["past int()'s limit"] |= stamp.isdigit() and len(stamp) > 4300

    look()
    assert all(found.values()), found
