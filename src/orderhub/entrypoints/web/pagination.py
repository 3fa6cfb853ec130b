"""Opaque order-list cursors: base64url of ``[updated_at ISO 8601, order id]``.

Orders are listed by ``(updated_at, id)``; a cursor is the key of the last order a page
showed. Clients must treat it as opaque: its format may change."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

import msgspec


class InvalidCursor(ValueError):
    pass


def encode_cursor(updated_at: datetime, order_id: str) -> str:
    raw = msgspec.json.encode([updated_at.isoformat(), order_id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, order_id = msgspec.json.decode(raw, type=tuple[str, str])
        updated_at = datetime.fromisoformat(stamp)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise InvalidCursor("the cursor is not one this API gave out") from exc
    if updated_at.tzinfo is None or not order_id:
        raise InvalidCursor("the cursor is not one this API gave out")
    return updated_at, order_id
