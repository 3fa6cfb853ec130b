from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from orderhub.channels.spi import WebhookAuth
from orderhub.entrypoints.web.webhook_auth import (
    WebhookAuthError,
    WebhookAuthMethod,
    decode_secret,
    sign,
    verify_signature,
    verify_webhook,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
STAMP = int(NOW.timestamp())
SECRET = "whsec_" + base64.b64encode(b"a-secret-of-thirty-two-bytes-xyz").decode()
OLD = "whsec_" + base64.b64encode(b"the-previous-secret-of-32-bytes!").decode()
BODY = b'{"id": "CH-1", "status": "created"}'


def headers(
    *, secret: str = SECRET, body: bytes = BODY, stamp: int = STAMP, msg: str = "msg_1"
) -> dict[str, str]:
    return {
        "webhook-id": msg,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(secret, message_id=msg, timestamp=stamp, body=body),
    }


def check(h: dict[str, str], *, body: bytes = BODY, secrets: tuple[str, ...] = (SECRET,)) -> None:
    verify_signature(secrets, headers=h, body=body, now=NOW, tolerance_seconds=300)


def test_standard_webhooks_reference_vector() -> None:
    # the example of the Standard Webhooks specification: we interoperate with its libraries
    assert (
        sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            message_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
            timestamp=1614265330,
            body=b'{"test": 2432232314}',
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_a_valid_signature_passes() -> None:
    check(headers())


def test_a_message_signed_with_the_previous_secret_passes_during_rotation() -> None:
    check(headers(secret=OLD), secrets=(SECRET, OLD))


def test_one_matching_signature_among_several_is_enough() -> None:
    h = headers()
    bogus = "v1," + base64.b64encode(b"x" * 32).decode()
    h["webhook-signature"] = f"{bogus} v1a,c29tZXRoaW5n {h['webhook-signature']} v1,not-base64!"
    check(h)


@pytest.mark.parametrize("offset", [-301, 301, -86_400, 86_400])
def test_a_timestamp_outside_the_tolerance_is_refused(offset: int) -> None:
    with pytest.raises(WebhookAuthError, match="tolerance"):
        check(headers(stamp=STAMP + offset))


@pytest.mark.parametrize("offset", [-300, 300])
def test_a_timestamp_at_the_edge_of_the_tolerance_passes(offset: int) -> None:
    check(headers(stamp=STAMP + offset))


def test_a_tampered_body_is_refused() -> None:
    with pytest.raises(WebhookAuthError, match="no webhook signature matches"):
        check(headers(), body=BODY.replace(b"created", b"shipped"))


def test_a_signature_with_another_secret_is_refused() -> None:
    wrong = "whsec_" + base64.b64encode(b"someone-else-s-secret-32-bytes!!").decode()
    with pytest.raises(WebhookAuthError, match="no webhook signature matches"):
        check(headers(secret=wrong))


def test_a_replayed_signature_with_another_message_id_is_refused() -> None:
    h = headers()
    h["webhook-id"] = "msg_2"
    with pytest.raises(WebhookAuthError):
        check(h)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_each_header_is_required(missing: str) -> None:
    h = headers()
    del h[missing]
    with pytest.raises(WebhookAuthError, match="headers are required"):
        check(h)


@pytest.mark.parametrize(
    "stamp",
    ["soon", "1.5", "-1", "", "\u00b9\u00b2\u00b3", "\u0661\u0662\u0663", "9" * 5000, "1" * 13],
)
def test_a_timestamp_must_be_unix_seconds(stamp: str) -> None:
    h = headers()
    h["webhook-timestamp"] = stamp
    with pytest.raises(WebhookAuthError, match="webhook-timestamp"):
        check(h)


@pytest.mark.parametrize("entry", ["v1,\u00e9\u00e9\u00e9\u00e9", "v1,!!!!", "v1,AAA", "v1,", "v1"])
def test_a_signature_that_is_not_base64_is_no_signature(entry: str) -> None:
    h = headers()
    h["webhook-signature"] = entry
    with pytest.raises(WebhookAuthError, match="no v1 signature"):
        check(h)


def test_a_non_ascii_whsec_secret_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="base64"):
        decode_secret("whsec_\u00e9t\u00e9")


def test_only_v1_signatures_count() -> None:
    h = headers()
    h["webhook-signature"] = h["webhook-signature"].replace("v1,", "v2,")
    with pytest.raises(WebhookAuthError, match="no v1 signature"):
        check(h)


def test_a_raw_secret_is_used_as_utf8_bytes() -> None:
    assert decode_secret("plain-secret") == b"plain-secret"
    check(headers(secret="plain-secret"), secrets=("plain-secret",))


def test_a_broken_whsec_secret_never_matches_but_others_still_do() -> None:
    with pytest.raises(ValueError, match="base64"):
        decode_secret("whsec_***")
    check(headers(), secrets=("whsec_***", SECRET))
    with pytest.raises(WebhookAuthError, match="no usable webhook secret"):
        check(headers(), secrets=("whsec_***",))


def test_an_account_without_authentication_refuses_everything() -> None:
    with pytest.raises(WebhookAuthError, match="no webhook authentication"):
        verify_webhook(WebhookAuth(), headers=headers(), query_token="x", body=BODY, now=NOW)


def test_hmac_accounts_verify_the_signature() -> None:
    method = verify_webhook(
        WebhookAuth(hmac_secrets=(SECRET,)), headers=headers(), query_token=None, body=BODY, now=NOW
    )
    assert method is WebhookAuthMethod.HMAC


def test_the_account_tolerance_applies() -> None:
    strict = WebhookAuth(hmac_secrets=(SECRET,), tolerance_seconds=10)
    with pytest.raises(WebhookAuthError, match="tolerance"):
        verify_webhook(
            strict, headers=headers(stamp=STAMP - 11), query_token=None, body=BODY, now=NOW
        )


def test_bearer_tokens() -> None:
    account = WebhookAuth(bearer_tokens=("old-token", "new-token"))
    for token in ("old-token", "new-token"):
        found = verify_webhook(
            account,
            headers={"authorization": f"Bearer {token}"},
            query_token=None,
            body=BODY,
            now=NOW,
        )
        assert found is WebhookAuthMethod.BEARER
    with pytest.raises(WebhookAuthError, match="bearer token is not valid"):
        verify_webhook(
            account, headers={"authorization": "Bearer nope"}, query_token=None, body=BODY, now=NOW
        )
    with pytest.raises(WebhookAuthError, match="no credentials"):
        verify_webhook(
            account,
            headers={"authorization": "Basic b2xkLXRva2Vu"},
            query_token=None,
            body=BODY,
            now=NOW,
        )


def test_path_tokens() -> None:
    account = WebhookAuth(path_tokens=("t0ken",))
    assert (
        verify_webhook(account, headers={}, query_token="t0ken", body=BODY, now=NOW)
        is WebhookAuthMethod.PATH_TOKEN
    )
    with pytest.raises(WebhookAuthError, match="path token is not valid"):
        verify_webhook(account, headers={}, query_token="t0ken!", body=BODY, now=NOW)
    with pytest.raises(WebhookAuthError, match="no credentials"):
        verify_webhook(account, headers={}, query_token=None, body=BODY, now=NOW)


def test_a_method_the_account_does_not_configure_is_not_accepted() -> None:
    account = WebhookAuth(hmac_secrets=(SECRET,))
    with pytest.raises(WebhookAuthError, match="no credentials"):
        verify_webhook(
            account, headers={"authorization": "Bearer x"}, query_token="x", body=BODY, now=NOW
        )
