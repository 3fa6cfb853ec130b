"""The real clock and the hub's ids (UUIDv7: time-ordered, so ids sort by creation)."""

from __future__ import annotations

from datetime import UTC, datetime

import uuid_utils


class SystemClock:
    """Wall-clock time, always timezone-aware UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def uuid7() -> str:
    """A new UUIDv7 as its canonical 36-character string (an ``IdGenerator``)."""
    return str(uuid_utils.uuid7())
