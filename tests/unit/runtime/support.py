"""A scriptable channel and a Hub over the in-memory fakes, for the runtime tests.

``ScriptedAccount`` maps an inbox body ``b"order:<id>"`` to a one-line snapshot, asks for
an ``acknowledge`` follow-up on every new order, and records every ``execute``. Tests
script failures with ``fail_snapshots`` / ``fail_execute`` (exceptions raised in turn)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from orderhub.application.hub import Hub, RetryPolicy
from orderhub.application.ports import ChannelCommand, Clock, CommandQueue, InboxMessage
from orderhub.channels.registry import ChannelRegistry, LoadedPlugin
from orderhub.channels.spi import (
    AccountConfig,
    ChannelAccount,
    CommandKind,
    CommandOutcome,
    FollowUp,
    ScheduledJob,
)
from orderhub.domain.capabilities import Capabilities, Scope
from orderhub.domain.model import ChannelSnapshot, LineSnapshot, Order
from orderhub.testing.fakes import FakeDatabase, FakeUnitOfWorkFactory, FixedClock, SequentialIds

CHANNEL = "scripted"
ACCOUNT = "main"
CAPS = Capabilities(acceptance=Scope.ORDER, rejection=Scope.ORDER, shipment=Scope.ORDER)


@dataclass
class Script:
    """What the scripted channel does; shared by every account of a plugin."""

    fail_snapshots: list[Exception] = field(default_factory=list)
    fail_execute: list[Exception] = field(default_factory=list)
    snapshot_calls: list[bytes] = field(default_factory=list)
    executed: list[tuple[str, CommandKind]] = field(default_factory=list)
    jobs: list[ScheduledJob] = field(default_factory=list)
    follow_up: bool = True


class ScriptedAccount(ChannelAccount):
    def __init__(self, config: AccountConfig, script: Script) -> None:
        super().__init__(config, CAPS)
        self.script = script
        self.closed = False

    async def snapshots(self, body: bytes, headers: Mapping[str, str]) -> Sequence[ChannelSnapshot]:
        self.script.snapshot_calls.append(body)
        if self.script.fail_snapshots:
            raise self.script.fail_snapshots.pop(0)
        order_id = body.decode().removeprefix("order:")
        line = LineSnapshot(channel_line_id="1", sku="SKU-1", title="A thing", quantity=1)
        return [ChannelSnapshot(channel_order_id=order_id, channel_status="new", lines=(line,))]

    async def execute(self, command: ChannelCommand, order: Order) -> CommandOutcome:
        self.script.executed.append((command.id, command.kind))
        if self.script.fail_execute:
            raise self.script.fail_execute.pop(0)
        return CommandOutcome(data={"ok": True})

    def follow_ups(self, order: Order, *, new: bool) -> Sequence[FollowUp]:
        return [FollowUp(kind=CommandKind.ACKNOWLEDGE)] if new and self.script.follow_up else []

    def jobs(self) -> Sequence[ScheduledJob]:
        return list(self.script.jobs)

    async def aclose(self) -> None:
        self.closed = True


class ScriptedPlugin:
    name = CHANNEL

    def __init__(self, script: Script | None = None) -> None:
        self.script = script or Script()

    def capabilities(self, config: AccountConfig) -> Capabilities:
        return CAPS

    def open_account(self, config: AccountConfig) -> ChannelAccount:
        return ScriptedAccount(config, self.script)


def registry(script: Script, *accounts: str) -> ChannelRegistry:
    plugin = ScriptedPlugin(script)
    loaded = LoadedPlugin(plugin=plugin, distribution="tests", version="0")
    return ChannelRegistry(
        {CHANNEL: loaded},
        [AccountConfig(channel=CHANNEL, name=name) for name in (accounts or (ACCOUNT,))],
    )


def make_hub(
    queue: CommandQueue,
    *,
    script: Script | None = None,
    db: FakeDatabase | None = None,
    retry: RetryPolicy | None = None,
    clock: Clock | None = None,
) -> Hub:
    """A hub over the fakes. The default clock stands still: give ``SystemClock()`` when a
    test waits for a delay the services computed (a command's ``next_attempt_at``)."""
    fixed = FixedClock()
    return Hub(
        uow=FakeUnitOfWorkFactory(db or FakeDatabase(), fixed),
        channels=registry(script or Script()),
        clock=clock or fixed,
        ids=SequentialIds(),
        queue=queue,
        retry=retry or RetryPolicy(base_seconds=0.01, max_seconds=0.05, max_attempts=3),
    )


def put_message(db: FakeDatabase, message_id: str, channel_order_id: str) -> None:
    """An inbox message as intake would have stored it (committed, not yet processed)."""
    db.inbox[message_id] = InboxMessage(
        id=message_id,
        channel=CHANNEL,
        account=ACCOUNT,
        dedupe_key=f"{CHANNEL}:{ACCOUNT}:id:{message_id}",
        body=f"order:{channel_order_id}".encode(),
        headers={},
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
