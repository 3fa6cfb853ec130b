"""What the suite's tests check, one helper each: counters a snapshot cannot hold, what a
later snapshot leaves out, commands out of order, a retry, a failure; and the per-path
runner that holds an adapter's declared gaps to account."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Final

from orderhub.application.ports import CommandState
from orderhub.application.services.dispatch import Dispatched, dispatch_command
from orderhub.channels.spi import ChannelCommand, CommandKind
from orderhub.domain.events import EventType
from orderhub.domain.model import ChannelSnapshot, Order
from orderhub.testing.conformance.driver import ChannelCall, ConformanceDriver
from orderhub.testing.conformance.rig import HubRig

#: Transitions an order makes once: a second one in the feed is a duplicate.
ONCE: Final = frozenset(
    {
        EventType.ORDER_RECEIVED,
        EventType.ORDER_READY_TO_SHIP,
        EventType.ORDER_SHIPPED,
        EventType.ORDER_DELIVERED,
        EventType.ORDER_REJECTED,
        EventType.ORDER_CANCELLED,
    }
)


def ok(call: ChannelCall) -> bool:
    return call.status is not None and 200 <= call.status < 300


def writes(calls: Sequence[ChannelCall], kind: CommandKind | None = None) -> list[ChannelCall]:
    return [c for c in calls if c.kind is not None and (kind is None or c.kind is kind)]


def feed_duplicates(rig: HubRig, order: Order) -> list[str]:
    types = Counter(e.type for e in rig.feed(order))
    return sorted(t for t in ONCE if types[t.value] > 1)


def counters(snapshot: ChannelSnapshot) -> dict[str, tuple[int, int, int, int]]:
    return {
        ls.channel_line_id: (ls.accepted, ls.rejected, ls.shipped, ls.delivered)
        for ls in snapshot.lines
    }


def inconsistent(snapshot: ChannelSnapshot, acceptance: bool) -> list[str]:
    """A counter the line cannot hold: a delivered unit is also a shipped one, and (where
    the channel has acceptance) an accepted one."""
    wrong = []
    for ls in snapshot.lines:
        if (
            ls.accepted + ls.rejected > ls.quantity
            or ls.delivered > ls.shipped
            or ls.shipped > ls.quantity - ls.rejected
            or (acceptance and ls.shipped > ls.accepted)
        ):
            wrong.append(f"{snapshot.channel_status} line {ls.channel_line_id}: {ls}")
    return wrong


def left_out(later: ChannelSnapshot, earlier: ChannelSnapshot, terminal: bool) -> list[str]:
    """What ``later`` (a later state of the channel) leaves out that ``earlier`` showed."""
    missing = []
    now = counters(later)
    for line, counts in counters(earlier).items():
        if line in now and any(a < b for a, b in zip(now[line], counts, strict=True)):
            missing.append(
                f"line {line}: {now[line]} after {counts} (accepted, rejected, shipped, delivered)"
            )
    if earlier.released and not later.released and not terminal:
        missing.append("released, then not")
    gone = {c.channel_cancellation_id for c in earlier.cancellations} - {
        c.channel_cancellation_id for c in later.cancellations
    }
    if gone:
        missing.append(f"cancellations no longer listed: {sorted(gone)}")
    return [f"{later.channel_status} after {earlier.channel_status}: {m}" for m in missing]


def out_of_order(
    rig: HubRig, commands: list[ChannelCommand], calls: list[ChannelCall]
) -> list[str]:
    """Commands whose calls reached the channel before an earlier command's call that
    they must wait for (the adapter's ``independent`` says which need not)."""
    position: dict[str, int] = {}
    seen: Counter[CommandKind] = Counter()
    by_kind = {k: [c for c in commands if c.kind is k] for k in {c.kind for c in commands}}
    for index, call in enumerate(calls):
        assert call.kind is not None
        command = by_kind[call.kind][seen[call.kind]]
        seen[call.kind] += 1
        position[command.id] = index
    wrong = []
    for earlier, later in itertools.combinations(commands, 2):
        if rig.account.independent(earlier.kind, later.kind):
            continue
        if position[later.id] < position[earlier.id]:
            wrong.append(
                f"{later.kind.value} #{later.seq} before {earlier.kind.value} #{earlier.seq}"
            )
    return wrong


async def retried(
    rig: HubRig, driver: ConformanceDriver, channel_order_id: str, command_id: str
) -> None:
    kind = rig.uow.db.commands[command_id].kind
    before = len(writes(await driver.calls(channel_order_id), kind))
    outcomes = {d.command.id: d.outcome for d in await rig.dispatch_queued()}
    assert outcomes[command_id] is Dispatched.RETRY
    command = rig.uow.db.commands[command_id]
    assert (command.state, command.attempts) == (CommandState.PENDING, 1)
    assert command.last_error
    assert command.next_attempt_at is not None
    assert command.next_attempt_at > rig.clock.now()
    assert await dispatch_command(rig.hub, command_id) is Dispatched.NOT_DUE
    calls = writes(await driver.calls(channel_order_id), kind)[before:]
    assert [ok(c) for c in calls] == [False], [c.what for c in calls]
    await rig.settle(channel_order_id)
    command = rig.uow.db.commands[command_id]
    assert (command.state, command.attempts) == (CommandState.SUCCEEDED, 2), command.last_error
    calls = writes(await driver.calls(channel_order_id), kind)[before:]
    assert [ok(c) for c in calls] == [False, True], [c.what for c in calls]


async def failed(
    rig: HubRig, driver: ConformanceDriver, channel_order_id: str, command_id: str, said: str
) -> None:
    kind = rig.uow.db.commands[command_id].kind
    before = len(writes(await driver.calls(channel_order_id), kind))
    outcomes = {d.command.id: d.outcome for d in await rig.dispatch_queued()}
    assert outcomes[command_id] is Dispatched.FAILED
    await rig.settle(channel_order_id)
    command = rig.uow.db.commands[command_id]
    assert (command.state, command.attempts) == (CommandState.FAILED, 1)
    assert said, "the driver must return the text of the refusal it injected"
    assert said in (command.last_error or ""), (said, command.last_error)
    assert len(writes(await driver.calls(channel_order_id), kind)) == before + 1
    failures = [e for e in rig.uow.db.feed if e.type == EventType.COMMAND_FAILED.value]
    assert [e.data["error"] for e in failures if e.data["command_id"] == command_id] == [
        command.last_error
    ]
    assert command_id not in [queued for queued, _ in rig.queue.commands]


async def each_path(
    driver: ConformanceDriver, check: str, run: Callable[[int, tuple[str, ...]], Awaitable[None]]
) -> None:
    """Run ``check`` along every path; a failure fails the test unless the driver declares
    it a known gap (``known_gaps``: "check: a > b > c" -> why), and a declared gap that no
    longer fails fails it too (remove it: the adapter was fixed)."""
    gaps: Mapping[str, str] = getattr(driver, "known_gaps", {})
    failures: dict[str, str] = {}
    for number, path in enumerate(driver.paths):
        key = f"{check}: {' > '.join(path)}"
        try:
            await run(number, tuple(path))
        except AssertionError as exc:
            failures[key] = str(exc)
    unexpected = [f"{key}\n{why}" for key, why in failures.items() if key not in gaps]
    if unexpected:
        raise AssertionError("\n\n".join(unexpected))
    fixed = [key for key in gaps if key.startswith(f"{check}: ") and key not in failures]
    assert fixed == [], "declared gaps that no longer fail: remove them from the driver"
