"""Status stamps with and without a zone in one order: read as UTC, never a TypeError."""

from __future__ import annotations

import copy
import datetime as dt

from spresso_orders import ORDER, body

from orderhub_spresso import mapping, wire


def test_a_stamp_without_a_zone_next_to_one_with_a_zone_is_utc() -> None:
    doc = copy.deepcopy(ORDER)
    doc["fulfillments"][0]["statusHistory"] = [
        {"status": "order_placed", "updatedAt": "2026-01-05T10:20:00"}  # no zone
    ]
    webhook = wire.decode_webhook(body(doc))
    assert webhook.order.updated_at == dt.datetime(2026, 1, 5, 10, 20, tzinfo=dt.UTC)
    assert "2026-01-05T10:20:00+00:00" in wire.dedupe_key(webhook)
    assert mapping.to_snapshot(webhook).updated_at == webhook.order.updated_at
