"""The plugin's webhook door: signatures (raw, re-serialised, forged, a rotated-out
secret), the 200 acknowledgement, the natural dedupe key; pre-flight refusals."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from spresso_orders import ORDER, ORDER_ID, body

from orderhub.channels.registry import discover
from orderhub.channels.signatures import body_signature
from orderhub.channels.spi import (
    WEBHOOK_TOPIC_HEADER,
    AccountConfig,
    CommandKind,
    CommandRefused,
)
from orderhub_spresso import plugin as plugin_module
from orderhub_spresso.plugin import SpressoAccount

NOW = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
OLD, NEW = "old-client-secret", "new-client-secret"


def account(**settings: object) -> SpressoAccount:
    config = AccountConfig(
        channel="spresso",
        name="main",
        settings={"base_url": "https://spresso.test", "access_token": "t", **settings},
    )
    return SpressoAccount(config)


def signed(secret: str, raw: bytes) -> dict[str, str]:
    return {"x-spresso-hmac-sha256": body_signature(secret, raw)}


def test_the_entry_point_loads_the_plugin_from_its_distribution() -> None:
    loaded = discover(enabled=["spresso"])["spresso"]
    assert loaded.plugin is plugin_module.plugin
    assert loaded.distribution == "orderhub-spresso"


def test_a_raw_body_signature_is_accepted_with_every_secret_of_a_rotation() -> None:
    acc = account(client_secrets=[OLD, NEW])
    raw = body()
    for secret in (OLD, NEW):
        verdict = acc.verify_webhook(signed(secret, raw), raw, NOW)
        assert verdict is not None
        assert (verdict.accepted, verdict.variant) == (True, "raw")
    assert acc.webhook_ack_status == 200


def test_a_re_serialised_signature_is_accepted_and_counted_as_compact() -> None:
    acc = account(client_secret=NEW)
    pretty = json.dumps(ORDER, indent=2).encode()
    compact = json.dumps(ORDER, separators=(",", ":"), ensure_ascii=False).encode()
    verdict = acc.verify_webhook(signed(NEW, compact), pretty, NOW)
    assert verdict is not None
    assert (verdict.accepted, verdict.variant) == (True, "compact")


@pytest.mark.parametrize("secret", ["forged-secret", OLD])
def test_a_forged_or_rotated_out_secret_is_refused(secret: str) -> None:
    acc = account(client_secret=NEW)
    raw = body()
    verdict = acc.verify_webhook(signed(secret, raw), raw, NOW)
    assert verdict is not None
    assert not verdict.accepted


def test_a_tampered_body_is_refused_and_no_header_is_not_this_scheme() -> None:
    acc = account(client_secret=NEW)
    raw = body()
    tampered = raw.replace(b"sent_to_fulfiller", b"cancelled")
    verdict = acc.verify_webhook(signed(NEW, raw), tampered, NOW)
    assert verdict is not None
    assert not verdict.accepted
    assert acc.verify_webhook({}, raw, NOW) is None


def test_the_dedupe_key_is_natural_and_a_bad_body_falls_back_to_its_hash() -> None:
    acc = account(client_secret=NEW)
    assert (acc.dedupe_key(body(), {}) or "").startswith(f"order_fulfillable:{ORDER_ID}:")
    assert acc.order_key(body(), {}) == ORDER_ID
    assert acc.dedupe_key(b"{not json", {}) is None
    assert acc.order_key(b"{not json", {}) is None


@pytest.mark.parametrize(
    ("payload", "rule"),
    [
        ({"carrier": "pigeon", "tracking_number": "1"}, "unknown-carrier"),
        ({"carrier": None, "tracking_number": "1"}, "unknown-carrier"),
        ({"carrier": "UPS", "tracking_number": None}, "tracking-number-required"),
    ],
)
def test_preflight_refuses_what_spresso_would(payload: dict[str, object], rule: str) -> None:
    acc = account(carriers={"dhl-de": "dhl"})
    with pytest.raises(CommandRefused) as refused:
        acc.preflight(CommandKind.SHIP, payload, None, acc.capabilities)  # type: ignore[arg-type]
    assert (refused.value.rule, refused.value.status) == (rule, 422)
    acc.preflight(
        CommandKind.SHIP, {"carrier": "DHL-DE", "tracking_number": "1"}, None, acc.capabilities
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "why"),
    [
        ({"base_url": ""}, "needs base_url"),
        ({"access_token": None}, "client_id and client_secret, or access_token"),
        ({"registration": "nowhere"}, "'rest', 'manual' or 'package.module:factory'"),
        ({"registration": "no_such_module:factory"}, "cannot be loaded"),
    ],
)
def test_bad_settings_are_clear_errors(settings: dict[str, object], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        account(**settings)


async def test_the_topic_of_the_url_names_the_event_of_a_body_without_one() -> None:
    """The hub hands ``/webhooks/spresso/main/order_cancelled``'s topic over as a header:
    the mapping cancels the order and the dedupe key tells the two events apart."""
    acc = account()
    raw = body()  # no event field, and the order does not look cancelled
    as_cancelled = {WEBHOOK_TOPIC_HEADER: "order_cancelled"}
    (snapshot,) = await acc.snapshots(raw, as_cancelled)
    assert snapshot.extras["event"] == "order_cancelled"
    assert [c.channel_reason for c in snapshot.cancellations] == ["order_cancelled"]
    (plain,) = await acc.snapshots(raw, {})
    assert (plain.extras["event"], plain.cancellations) == ("order_fulfillable", ())
    keys = {acc.dedupe_key(raw, {}), acc.dedupe_key(raw, as_cancelled)}
    assert len(keys) == 2
    assert acc.dedupe_key(raw, as_cancelled) == acc.dedupe_key(raw, dict(as_cancelled))
    await acc.aclose()


def test_setup_asks_for_one_url_per_event() -> None:
    acc = account()
    assert acc.webhook_url("https://hub.example/", "order_cancelled") == (
        "https://hub.example/webhooks/spresso/main/order_cancelled"
    )
