"""Opaque order-list cursors: base64url of ``["seq", <last_seq>]``.

Orders are listed by ``last_seq``, the feed sequence of each order's newest event, set in
the commit that changes the order: paging by it is as gapless as the feed (an order that
changes while a client pages appears again, later). A cursor is the ``last_seq`` of the
last order a page showed. Clients must treat it as opaque: its format may change."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Final

import msgspec

MAX_SEQ: Final = 2**63 - 1
Seq = Annotated[int, msgspec.Meta(ge=0, le=MAX_SEQ)]


class InvalidCursor(ValueError):
    pass


def encode_cursor(last_seq: int) -> str:
    raw = msgspec.json.encode(["seq", last_seq])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, last_seq = msgspec.json.decode(raw, type=tuple[str, Seq])
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise InvalidCursor("the cursor is not one this API gave out") from exc
    if kind != "seq":
        raise InvalidCursor("the cursor is not one this API gave out")
    return last_seq
