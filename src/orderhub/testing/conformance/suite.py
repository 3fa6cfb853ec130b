"""The conformance tests. An adapter package subclasses :class:`ConformanceSuite` and
gives it a ``conformance_driver`` fixture (see the package docstring)."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from orderhub.application.ports import CommandState
from orderhub.channels.registry import discover
from orderhub.channels.spi import CommandKind
from orderhub.domain.errors import DomainError
from orderhub.domain.events import EventType
from orderhub.domain.model import ChannelSnapshot
from orderhub.testing.conformance.checks import (
    each_path,
    failed,
    feed_duplicates,
    inconsistent,
    left_out,
    ok,
    out_of_order,
    retried,
    writes,
)
from orderhub.testing.conformance.driver import ConformanceDriver, Delivery
from orderhub.testing.conformance.rig import HubRig, fingerprint
from orderhub.testing.conformance.scenarios import SCRIPTS, fulfil, mapped, move, place, walk
from orderhub.testing.conformance.scripts import PROBES, unsupported

RigFactory = Callable[..., HubRig]


@pytest.mark.asyncio
class ConformanceSuite:
    """The SPI contract, checked against the adapter's simulator. Subclass it as
    ``Test<Channel>Conformance`` and define the ``conformance_driver`` fixture."""

    @pytest.fixture
    def conformance_driver(self) -> ConformanceDriver:
        pytest.fail(
            "define a conformance_driver fixture (in the ConformanceSuite subclass or a "
            "conftest.py) returning the adapter's ConformanceDriver, its simulator reset"
        )

    @pytest_asyncio.fixture
    async def rigs(self, conformance_driver: ConformanceDriver) -> AsyncIterator[RigFactory]:
        opened: list[HubRig] = []

        def make(**kw: Any) -> HubRig:
            rig = HubRig(conformance_driver, **kw)
            opened.append(rig)
            return rig

        yield make
        for rig in opened:
            await rig.aclose()

    # --- the plugin and the mapping ---------------------------------------------------

    async def test_the_plugin_loads_through_its_entry_point(
        self, conformance_driver: ConformanceDriver
    ) -> None:
        name = conformance_driver.plugin.name
        loaded = discover(enabled=[name])[name]
        assert type(loaded.plugin) is type(conformance_driver.plugin)
        assert conformance_driver.account_config().channel == name

    async def test_each_channel_state_maps_to_its_documented_status(
        self, conformance_driver: ConformanceDriver, rigs: RigFactory
    ) -> None:
        driver = conformance_driver
        on_paths = set(itertools.chain.from_iterable(driver.paths))
        assert on_paths <= driver.statuses.keys(), "states on the paths, not in the table"
        rig = rigs()
        found = {}
        for state in driver.statuses:
            channel_order_id = await driver.create_order()
            await move(driver, channel_order_id, state)
            await rig.deliver_new(channel_order_id)
            order = rig.find(channel_order_id)
            found[state] = (order.status, order.channel_status) if order else rig.failed_messages()
        expected = {state: (status, state) for state, status in driver.statuses.items()}
        assert found == expected

    # --- intake -----------------------------------------------------------------------

    async def test_duplicated_and_reordered_messages_converge(
        self, conformance_driver: ConformanceDriver, rigs: RigFactory
    ) -> None:
        async def run(number: int, path: tuple[str, ...]) -> None:
            reference = rigs()
            channel_order_id, steps = await walk(conformance_driver, reference, path)
            expected = fingerprint(reference.order(channel_order_id))
            captured = [d for step in steps for d in step.deliveries]
            rng = random.Random(f"conformance:{number}")

            twice = captured + captured
            rng.shuffle(twice)
            shuffled = rigs(seed=number)
            await shuffled.deliver(twice)
            order = shuffled.order(channel_order_id)
            assert fingerprint(order) == expected, "delivered twice, shuffled"
            feed = [(e.type, e.data) for e in shuffled.feed(order)]

            again = list(captured)
            rng.shuffle(again)
            await shuffled.deliver(again, again=True)
            order = shuffled.order(channel_order_id)
            assert fingerprint(order) == expected, "sent again as new messages"
            assert [(e.type, e.data) for e in shuffled.feed(order)] == feed
            assert feed_duplicates(shuffled, order) == []
            assert shuffled.failed_messages() == []

        await each_path(conformance_driver, "converge", run)

    async def test_snapshots_are_complete_and_late_ones_never_move_an_order_back(
        self, conformance_driver: ConformanceDriver, rigs: RigFactory
    ) -> None:
        driver = conformance_driver

        async def run(number: int, path: tuple[str, ...]) -> None:
            rig = rigs()
            channel_order_id = await driver.create_order()
            acceptance = CommandKind.ACCEPT not in unsupported(rig.account.capabilities)
            seen: list[ChannelSnapshot] = []
            sent: list[Delivery] = []
            for state in path:
                await move(driver, channel_order_id, state)
                new = await rig.deliver_new(channel_order_id)
                refreshed = await rig.refresh(channel_order_id)
                if refreshed is not None:
                    await rig.deliver([refreshed])
                    new.append(refreshed)
                terminal = driver.statuses[state].is_terminal
                for snapshot in await mapped(rig, channel_order_id, new):
                    assert inconsistent(snapshot, acceptance) == []
                    assert [m for old in seen for m in left_out(snapshot, old, terminal)] == []
                    seen.append(snapshot)
                order = rig.order(channel_order_id)
                # a complete snapshot is not taken for a late one: its status is recorded
                assert order.channel_status == state, f"the hub holds {order.channel_status}"
                now, feed = fingerprint(order), [(e.type, e.data) for e in rig.feed(order)]
                for late in reversed(sent):  # every earlier message, one by one, late
                    await rig.deliver([late], again=True)
                    order = rig.order(channel_order_id)
                    assert fingerprint(order) == now, f"a late message, after {state}"
                    assert [(e.type, e.data) for e in rig.feed(order)] == feed, f"after {state}"
                sent += new
            if len(set(path)) > 1:  # the check above must have had late news to refuse
                late_states = {s.channel_status for s in await mapped(rig, channel_order_id, sent)}
                assert late_states - {path[-1]}, (
                    "every message shows the channel's latest state, so none was late: give the "
                    "kit messages that carry their state (ChannelAccount.refresh, or the driver's)"
                )

        await each_path(driver, "late", run)

    # --- refusals ---------------------------------------------------------------------

    async def test_declared_refusals_are_refused_before_anything_is_sent(
        self, conformance_driver: ConformanceDriver, rigs: RigFactory
    ) -> None:
        driver = conformance_driver
        problems: list[str] = []
        refused = 0
        for state in driver.statuses:
            channel_order_id = await driver.create_order()
            await move(driver, channel_order_id, state)
            for kind, probe in PROBES.items():
                rig = rigs()
                await rig.deliver_new(channel_order_id)
                order = rig.order(channel_order_id)
                caps = order.capabilities or rig.account.capabilities
                calls = list(await driver.calls(channel_order_id))
                before = (order.version, len(rig.feed(order)), len(rig.commands(order)))
                queued = list(rig.queue.commands)
                where = f"{kind.value} in {state}"
                try:
                    await probe(rig.hub, order, caps)
                except DomainError as exc:
                    refused += 1
                    order = rig.order(channel_order_id)
                    after = (order.version, len(rig.feed(order)), len(rig.commands(order)))
                    if after != before or rig.queue.commands != queued:
                        problems.append(f"{where}: refused ({exc.rule}) but the hub changed")
                    if list(await driver.calls(channel_order_id)) != calls:
                        problems.append(f"{where}: refused ({exc.rule}) but the channel was called")
                    told = caps.refusals.get(kind.value)
                    explained = not told or told in exc.detail
                    if kind in unsupported(caps) and not order.status.is_terminal and not explained:
                        problems.append(f"{where}: says {exc.detail!r}, not {told!r}")
                else:
                    if kind in unsupported(caps):
                        problems.append(f"{where}: declared unsupported, yet a command was queued")
                await rig.aclose()
        assert problems == []
        assert refused, "no probe was refused: the kit checked nothing"

    # --- commands ---------------------------------------------------------------------

    async def test_every_command_reaches_the_channel_once_and_in_order(
        self, conformance_driver: ConformanceDriver, rigs: RigFactory
    ) -> None:
        driver = conformance_driver
        sent = []
        for name, script in SCRIPTS.items():
            rig = rigs()
            channel_order_id = await place(driver, rig)
            await rig.settle(channel_order_id)
            async for _kind, issue in script(rig, channel_order_id):
                await issue()
                await rig.settle(channel_order_id)
            order = rig.order(channel_order_id)
            commands = rig.commands(order)
            sent.append((name, [c.kind.value for c in commands]))
            unsettled = [c for c in commands if c.state is not CommandState.SUCCEEDED]
            assert [(c.kind, c.state, c.last_error) for c in unsettled] == [], name
            calls = writes(await driver.calls(channel_order_id))
            assert [c.what for c in calls if not ok(c)] == [], name
            assert Counter(c.kind for c in calls) == Counter(c.kind for c in commands), (
                f"{name}: calls {[c.what for c in calls]} for commands {sent[-1][1]}"
            )
            assert out_of_order(rig, commands, calls) == [], name
            succeeded = [e for e in rig.feed(order) if e.type == EventType.COMMAND_SUCCEEDED.value]
            assert len(succeeded) == len(commands), name
            assert feed_duplicates(rig, order) == [], name
            state = await driver.channel_state(channel_order_id)
            assert (order.status, order.channel_status) == (driver.statuses[state], state), name
        assert any(kinds for _, kinds in sent), f"no command was sent: {sent}"

    async def test_transient_errors_retry_and_permanent_ones_fail_with_the_channels_message(
        self, conformance_driver: ConformanceDriver, rigs: RigFactory
    ) -> None:
        driver = conformance_driver
        never = unsupported(rigs().account.capabilities)
        kinds = (CommandKind.ACCEPT, CommandKind.SHIP, CommandKind.DELIVER)
        targets = [kind for kind in kinds if kind not in never]
        assert targets, "the channel takes none of the commands the kit sends"
        for target, transient in itertools.product(targets, (True, False)):
            rig = rigs()
            channel_order_id = await place(driver, rig)
            await rig.settle(channel_order_id)
            faulted = False
            async for kind, issue in fulfil(rig, channel_order_id):
                if kind is not target or faulted:
                    await issue()
                    await rig.settle(channel_order_id)
                    continue
                faulted = True
                said = await driver.inject_fault(kind, transient=transient)
                command_id = (await issue()).command_id
                if not transient:
                    await failed(rig, driver, channel_order_id, command_id, said)
                    break
                await retried(rig, driver, channel_order_id, command_id)
            assert faulted, f"the fulfilment never sent {target.value}"
            if transient:  # after the retry, the order went on to the end
                state = await driver.channel_state(channel_order_id)
                assert rig.order(channel_order_id).status is driver.statuses[state]
