"""What an adapter package gives the conformance kit: a driver for its simulator.

The kit runs the hub in-process (the fakes of :mod:`orderhub.testing.fakes`) against the
adapter's plugin, which talks real HTTP to the adapter's simulator. Everything the kit
needs to know about the channel goes through :class:`ConformanceDriver`; the kit itself
names no channel."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from orderhub.channels.spi import AccountConfig, ChannelPlugin, CommandKind
from orderhub.domain.values import OrderStatus


@dataclass(frozen=True, kw_only=True, slots=True)
class Delivery:
    """One message the channel sent (a webhook) or a job found (a poll), as the hub's
    intake receives it. ``key``: the job's dedupe key; None lets the account derive it
    from the message (its ``dedupe_key`` hook), as the webhook door does."""

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    source: str = "webhook"
    key: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelCall:
    """One call the simulator received about one order.

    ``kind``: the command the call carries out (the driver reads it off the method and
    path); None for reads and anything else that changes nothing at the channel.
    ``status``: what the simulator answered (an injected fault's status included)."""

    kind: CommandKind | None
    status: int | None
    what: str = ""  # "POST /v1/orders/42/accept": shown when a check fails


class ConformanceDriver(Protocol):
    """The adapter's side of the kit. Every method acts on the simulator only, never on
    the hub; the simulator is reset before each test (the driver fixture's job)."""

    plugin: ChannelPlugin
    """The adapter's plugin, as its entry point exposes it."""

    statuses: Mapping[str, OrderStatus]
    """Every channel state -> the documented canonical status of an order that the hub
    first hears of in that state (docs: canonical-model.md, "Channel mapping")."""

    paths: Sequence[Sequence[str]]
    """Lifecycles an order can go through at the channel, each from its initial state
    (``[created, confirmed, completed]``); :meth:`move_to` walks them step by step."""

    # Optional: ``known_gaps: Mapping[str, str]``, checks the adapter is known to fail, by
    # the key the kit reports ("late: created > confirmed"), each with why. The kit passes
    # them, and fails again once one no longer fails (remove it: it was fixed).

    def account_config(self) -> AccountConfig:
        """The account the hub opens: settings pointing at the simulator."""
        ...

    async def create_order(self) -> str:
        """Place a new order at the simulator, in the channel's initial state; its channel
        order id. At least two lines, so that partial shipments can be told apart."""
        ...

    async def move_to(self, channel_order_id: str, state: str) -> None:
        """Make the channel put the order in ``state`` (a key of :attr:`statuses`), from
        the state it is in, as the channel's own users would (the customer, the channel's
        support, the seller through the API): not through the hub."""
        ...

    async def channel_state(self, channel_order_id: str) -> str:
        """The order's state at the simulator now."""
        ...

    async def messages(self, channel_order_id: str) -> Sequence[Delivery]:
        """Every message the channel has sent about the order so far, oldest first (a
        polling channel: what its job finds now)."""
        ...

    async def calls(self, channel_order_id: str) -> Sequence[ChannelCall]:
        """Every call the simulator received about the order, in the order received."""
        ...

    async def inject_fault(self, kind: CommandKind, *, transient: bool) -> str:
        """Make the simulator fail the next call that carries a ``kind`` command, with a
        transient error (5xx, 429) or a permanent refusal (a 4xx with a message). Returns
        the text the channel's refusal carries (the command's error must keep it)."""
        ...
