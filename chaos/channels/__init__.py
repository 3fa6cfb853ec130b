"""Each marketplace of a chaos run: its simulator process, the hub account that points at
it, its customers' and its own moves, the faults it can be told to inject, and what it
shows afterwards (its orders, its call log, its webhook log)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from chaos.stack import Stack

Record = Callable[..., None]
"""``record(kind, **details)``: writes one entry of the run's timeline."""


class Channel(Protocol):
    name: str

    def start(self, stack: Stack, *, hub_url: str) -> None:
        """Start the simulator (``stack.add_simulator``), webhooks to ``hub_url``."""

    def wait_ready(self) -> None: ...

    def account(self) -> dict[str, Any]:
        """The hub's ``[[channels.accounts]]`` entry for the simulator."""

    def customer_step(self, rng: random.Random, record: Record) -> None:
        """One move of a customer or of the marketplace: a new order, a cancellation..."""

    def wms_move(self, order: dict[str, Any], rng: random.Random) -> tuple[str, Any] | None:
        """What the warehouse does next with this hub order: ``(path suffix, body)``."""

    def inject_fault(self, rng: random.Random) -> str:
        """Tell the simulator to misbehave once (or a few times); the fault's kind."""

    def clear_faults(self) -> None: ...

    def settle_step(self) -> None:
        """While the hub settles: what the marketplace still does by itself (a later
        retry of a webhook it had given up on)."""

    def observe(self) -> dict[str, Any]:
        """``{"orders": [{"id", "status", ...}], "calls": [...], "webhooks": [...]}``."""

    def close(self) -> None: ...


def all_channels(names: list[str]) -> list[Channel]:
    """The channels called ``names`` (``topi``, ``octopia``, ``spresso``), in that order."""
    found: list[Channel] = []
    for name in names:
        if name == "topi":
            from chaos.channels.topi import TopiChannel

            found.append(TopiChannel())
        elif name == "octopia":
            from chaos.channels.octopia import OctopiaChannel

            found.append(OctopiaChannel())
        elif name == "spresso":
            from chaos.channels.spresso import SpressoChannel

            found.append(SpressoChannel())
        else:
            raise ValueError(f"unknown channel {name!r}")
    return found
