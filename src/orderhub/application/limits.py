"""What a channel's snapshot must be before the hub stores it (docs/limits.md).

* A snapshot over :data:`MAX_LINES_PER_ORDER` lines is refused when it is applied
  (:class:`TooManyLines`): its message stays in the inbox, failed with that reason for an
  operator, and no worker spends minutes or gigabytes on it. The warehouse API refuses a
  request naming more lines than that (its schemas use the same constant).
* Text PostgreSQL cannot store (a NUL, a lone UTF-16 surrogate, which JSON's ``\\u0000``
  and ``\\ud800`` decode to) is replaced by U+FFFD in every field
  (:func:`storable`), the same way every time, so the order is kept and the next
  snapshot of it matches; the raw message keeps what the channel sent."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Final, TypeVar

from orderhub.domain.errors import InvalidInput
from orderhub.domain.model import ChannelSnapshot

T = TypeVar("T")

MAX_LINES_PER_ORDER: Final = 5000
UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT: Final = "\ufffd"


class TooManyLines(InvalidInput):
    rule = "too-many-lines"


def check_size(snapshot: ChannelSnapshot) -> None:
    """Refuse a snapshot with more lines than the hub handles in one order."""
    if len(snapshot.lines) > MAX_LINES_PER_ORDER:
        raise TooManyLines(
            f"order {snapshot.channel_order_id[:100]!r} has {len(snapshot.lines)} lines; "
            f"the hub takes at most {MAX_LINES_PER_ORDER} per order"
        )


def storable(snapshot: ChannelSnapshot) -> ChannelSnapshot:
    """``snapshot`` with its text storable (see the module); the same object when it is."""
    return _storable(snapshot)


def _storable(value: T) -> T:
    found: Any = value
    if isinstance(value, str):
        if UNSTORABLE.search(value) is not None:
            found = UNSTORABLE.sub(REPLACEMENT, value)
    elif isinstance(value, tuple | list):
        items = [_storable(item) for item in value]
        if any(new is not old for new, old in zip(items, value, strict=True)):
            found = type(value)(items)
    elif isinstance(value, dict):
        pairs = [(_storable(k), _storable(v)) for k, v in value.items()]
        if any(
            k is not old_k or v is not old_v
            for (k, v), (old_k, old_v) in zip(pairs, value.items(), strict=True)
        ):
            found = dict(pairs)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for field in dataclasses.fields(value):
            old = getattr(value, field.name)
            if (new := _storable(old)) is not old:
                changes[field.name] = new
        if changes:
            found = dataclasses.replace(value, **changes)
    return found  # type: ignore[no-any-return]
