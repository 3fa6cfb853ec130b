"""Cancellations counted line by line, for :mod:`chaos.checker`.

A marketplace call that cancels lines (``cancel:L1,L2``) cancels those; one that cancels
the whole order (``cancel``) cancels the lines still live at that moment: those the
order has (the hub's view: leaf lines not wholly rejected) less those cancelled by the
order's earlier calls. So a line cancelled twice is seen, whichever calls did it; a
warehouse command that accepted a request for some lines is done by a call that
cancelled them (a whole-order call when they were all that was left: Octopia's adapter
sends one then); and a line cancelled that no command asked for is seen too."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from chaos.effects import Effect, named_lines

AGAIN_WHOLE: Final = "(the whole order)"


@dataclass(frozen=True)
class Cancelled:
    call: dict[str, Any]
    whole: bool
    lines: frozenset[str]
    """The lines this call cancelled."""
    again: frozenset[str]
    """Of those, the ones an earlier call had cancelled already (a duplicate)."""


def live_lines(order: dict[str, Any] | None) -> frozenset[str]:
    """The marketplace ids of a hub order's leaf lines that are not wholly rejected."""
    lines = (order or {}).get("lines", [])
    parents = {line.get("parent_line_id") for line in lines}
    return frozenset(
        str(line.get("channel_line_id"))
        for line in lines
        if line.get("id") not in parents
        and (line.get("rejected") or 0) < (line.get("quantity") or 0)
    )


def cancellations(
    taken: Sequence[tuple[Effect, dict[str, Any]]], lines: Iterable[str]
) -> list[Cancelled]:
    """One order's cancellation calls that the marketplace took (2xx), in call order,
    each with the lines it cancelled."""
    every = frozenset(lines)
    done: set[str] = set()
    whole_before = False
    found: list[Cancelled] = []
    for effect, call in taken:
        named = named_lines(effect.key)
        if named is None:
            covered = every - done
            again = frozenset({AGAIN_WHOLE}) if whole_before else frozenset()
            whole_before = True
        else:
            covered = named
            again = named if whole_before else named & done
        found.append(Cancelled(call, named is None, frozenset(covered), frozenset(again)))
        done |= covered
    return found


def serves(cancelled: Cancelled, expected: str) -> bool:
    """The call does what a command expecting ``expected`` asked: the whole order for a
    whole-order command; at least the request's lines for one that accepted a request.
    One call may do several requests' (the adapter cancels what is left of the order in
    one call when the warehouse accepted the requests for all of it before the first
    call went); that it cancelled nothing the warehouse did not ask for is checked
    apart (``effect-unasked``)."""
    want = named_lines(expected)
    return cancelled.whole if want is None else want <= cancelled.lines
