"""How large an order may be, whoever sends it (docs/limits.md).

A channel's snapshot over :data:`MAX_LINES_PER_ORDER` lines is refused when it is applied
(:class:`TooManyLines`): its message stays in the inbox, failed with that reason for an
operator, and no worker spends minutes or gigabytes on it. The warehouse API refuses a
request naming more lines than that (its schemas use the same constant)."""

from __future__ import annotations

from typing import Final

from orderhub.domain.errors import InvalidInput
from orderhub.domain.model import ChannelSnapshot

MAX_LINES_PER_ORDER: Final = 5000


class TooManyLines(InvalidInput):
    rule = "too-many-lines"


def check_size(snapshot: ChannelSnapshot) -> None:
    """Refuse a snapshot with more lines than the hub handles in one order."""
    if len(snapshot.lines) > MAX_LINES_PER_ORDER:
        raise TooManyLines(
            f"order {snapshot.channel_order_id[:100]!r} has {len(snapshot.lines)} lines; "
            f"the hub takes at most {MAX_LINES_PER_ORDER} per order"
        )
