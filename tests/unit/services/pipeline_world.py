"""The hub on fakes with the model channel (pipeline_model.py) as its account, the jobs
the pipeline machine plays (test_pipeline_machine.py), and the promises it checks."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import random
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, TypeVar

from orderhub.application.hub import Hub, RetryPolicy
from orderhub.application.ports import ChannelCommand, CommandState, InboxState
from orderhub.application.services.dispatch import Dispatched, dispatch_command
from orderhub.application.services.intake import Processed, process_message, store_message
from orderhub.application.services.operations import (
    failed_commands,
    failed_messages,
    held_commands,
    resync_order,
    sweep,
)
from orderhub.channels.registry import ChannelRegistry, LoadedPlugin
from orderhub.channels.spi import AccountConfig, CommandView
from orderhub.domain.model import Order
from orderhub.testing.fakes import FakeDatabase, FixedClock, SequentialIds

from .pipeline_model import (
    ACCOUNT,
    CHANNEL,
    INTAKE_BUG,
    Answer,
    CallPlan,
    ModelAccount,
    ModelChannel,
    ModelPlugin,
    Webhook,
    expected_status,
)
from .support import CheckingQueue, RacingFactory

T = TypeVar("T")

POLICY: Final = RetryPolicy(base_seconds=2.0, max_seconds=30.0, max_attempts=3, lease_seconds=60.0)
REQUEUE_AFTER: Final = 30.0
#: long enough for every backoff, lease and requeue delay to come due
QUIET: Final = POLICY.max_seconds + POLICY.lease_seconds + REQUEUE_AFTER + 1
TERMINAL: Final = frozenset({"command.succeeded", "command.failed"})


class Job(StrEnum):
    COMMAND = "command"
    MESSAGE = "message"


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryMark:
    """An operator retry: the call log's length and the feed's last seq when it happened."""

    log_index: int
    feed_seq: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Hanging:
    """A worker whose call (or mapping) reached the channel and waits there for its answer."""

    job: Job
    id: str
    task: asyncio.Task[Dispatched | Processed]
    gate: asyncio.Event
    fence: int  # the claim it holds


def comparable(order: Order | None) -> Order | None:
    """The order without its version (a racing writer bumps it without changing it)."""
    if order is None:
        return None
    kept = copy.deepcopy(order)
    kept.version = 0
    return kept


class PipelineWorld:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.clock = FixedClock()
        self.db = FakeDatabase()
        self.uow = RacingFactory(self.db, self.clock)
        self.queue = CheckingQueue(self.db)
        self.model = ModelChannel(stamps=False)
        self.model.watch = self._watch
        registry = ChannelRegistry(
            {
                CHANNEL: LoadedPlugin(
                    plugin=ModelPlugin(model=self.model), distribution="tests", version="0"
                )
            },
            [AccountConfig(channel=CHANNEL, name=ACCOUNT, settings={"profile": "topi"})],
        )
        account = registry.account(CHANNEL, ACCOUNT)
        assert isinstance(account, ModelAccount)
        self.account = account
        self.hub = Hub(
            uow=self.uow,
            channels=registry,
            clock=self.clock,
            ids=SequentialIds(),
            queue=self.queue,
            retry=POLICY,
            rng=random.Random(0),
        )
        self.violations: list[str] = []
        self.retries: defaultdict[str, list[RetryMark]] = defaultdict(list)
        self.hanging: list[Hanging] = []
        self.workers: list[asyncio.Task[Dispatched | Processed]] = []  # every one started

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        """Kill the workers still held at the channel (a failing step may leave some)."""
        pending = [task for task in self.workers if not task.done()]
        for task in pending:
            task.cancel()

        async def reap() -> None:
            await asyncio.gather(*pending, return_exceptions=True)

        self.loop.run_until_complete(reap())
        self.loop.close()

    def orders(self) -> list[Order]:
        return sorted(self.db.orders.values(), key=lambda o: o.id)

    # --- the queues ---------------------------------------------------------------------

    def take_command(self, index: int) -> str:
        command_id, _ = self.queue.commands.pop(index % len(self.queue.commands))
        return command_id

    def take_message(self, index: int) -> str:
        at = index % len(self.queue.messages)
        self.queue.message_delays.pop(at)
        return self.queue.messages.pop(at)

    async def deliver(self, webhook: Webhook, webhook_id: str) -> None:
        await store_message(
            self.hub,
            channel=CHANNEL,
            account=ACCOUNT,
            body=webhook.body,
            headers={"webhook-id": webhook_id},
        )

    # --- the workers --------------------------------------------------------------------

    def _fence(self, job: Job, job_id: str) -> int:
        return self.db.commands[job_id].fence if job is Job.COMMAND else self.db.inbox[job_id].fence

    async def work(self, job: Job, job_id: str, plan: CallPlan) -> Dispatched | Processed:
        """One worker on one job; the channel answers as ``plan`` says."""
        script = self.model.script if job is Job.COMMAND else self.model.intake_script
        script[:] = [plan]
        try:
            if job is Job.COMMAND:
                return await dispatch_command(self.hub, job_id)
            return await process_message(self.hub, job_id)
        finally:
            script.clear()

    async def start(self, job: Job, job_id: str, plan: CallPlan) -> Hanging | None:
        """A worker on the job, held at the channel by a gate once it got there; None if it
        ended without reaching the channel (waiting, not due, leased, an answer to map)."""
        gate = asyncio.Event()
        script = self.model.script if job is Job.COMMAND else self.model.intake_script
        script[:] = [CallPlan(answer=plan.answer, retry_after=plan.retry_after, gate=gate)]
        self.model.arrived.clear()
        coro = (
            dispatch_command(self.hub, job_id)
            if job is Job.COMMAND
            else process_message(self.hub, job_id)
        )
        task: asyncio.Task[Dispatched | Processed] = asyncio.ensure_future(coro)
        self.workers.append(task)
        arrived = asyncio.ensure_future(self.model.arrived.wait())
        await asyncio.wait({task, arrived}, return_when=asyncio.FIRST_COMPLETED)
        arrived.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await arrived
        script.clear()
        if task.done():
            task.result()
            return None
        return Hanging(job=job, id=job_id, task=task, gate=gate, fence=self._fence(job, job_id))

    async def answer(self, hanging: Hanging) -> None:
        """The held worker gets its answer; if another claim came meanwhile, whatever it
        got must be dropped (fenced)."""
        hanging.gate.set()
        outcome = await hanging.task
        if self._fence(hanging.job, hanging.id) != hanging.fence:
            assert outcome in (Dispatched.STALE, Processed.STALE), (
                f"a worker whose {hanging.job} {hanging.id} was claimed again recorded {outcome}"
            )

    async def kill(self, hanging: Hanging) -> None:
        hanging.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await hanging.task

    async def late(self, job: Job, job_id: str, first: CallPlan, second: CallPlan) -> None:
        """The first worker's answer comes after its lease ran out and a second worker
        claimed the job."""
        hanging = await self.start(job, job_id, first)
        if hanging is None:
            return
        self.clock.advance(POLICY.lease_seconds + 1)
        await self.work(job, job_id, second)
        await self.answer(hanging)

    async def sweep_and_work(self, plan: CallPlan) -> None:
        """The sweeper queues what was left behind; a worker takes each of those at once."""
        commands, messages = len(self.queue.commands), len(self.queue.messages)
        await sweep(self.hub, requeue_after_seconds=REQUEUE_AFTER)
        swept_commands = [c for c, _ in self.queue.commands[commands:]]
        swept_messages = self.queue.messages[messages:]
        del self.queue.commands[commands:]
        del self.queue.messages[messages:]
        del self.queue.message_delays[messages:]
        for message_id in swept_messages:
            await self.work(Job.MESSAGE, message_id, CallPlan())
        for command_id in swept_commands:
            await self.work(Job.COMMAND, command_id, plan)

    # --- quiet --------------------------------------------------------------------------

    async def settle(self, *, newest_first: bool = False) -> None:
        """Every held worker answers and every webhook on its way arrives; lost orders are
        found again (topi's reconciliation); the queues are drained with the sweeper and
        a channel that answers from now on; every order is resynced, the queues drained
        again. Then nothing is left to do and every order shows the channel's truth, or
        says why not."""
        self.model.script.clear()
        self.model.intake_script.clear()
        self.uow.races = 0
        while self.hanging:
            await self.answer(self.hanging.pop(0))
        while self.model.outbox:
            webhook = self.model.outbox.pop(-1 if newest_first else 0)
            await self.deliver(webhook, webhook.id)
        known = {o.channel_order_id for o in self.db.orders.values()}
        for truth in self.model.orders.values():
            if truth.id not in known:  # its creation was lost: the reconciliation finds it
                body = self.model.body(truth)
                await store_message(
                    self.hub,
                    channel=CHANNEL,
                    account=ACCOUNT,
                    body=body,
                    headers={},
                    source="reconciliation",
                    key=f"reconcile:{hashlib.sha256(body).hexdigest()}",
                )
        await self.drain()
        for order in self.orders():
            await resync_order(self.hub, order.id)
        await self.drain()
        self.check_promises()
        await self.check_converged()

    async def drain(self) -> None:
        for _ in range(50):
            for _ in range(2000):
                if self.queue.messages:
                    await process_message(self.hub, self.take_message(0))
                elif self.queue.commands:
                    await dispatch_command(self.hub, self.take_command(0))
                else:
                    break
            else:
                raise AssertionError("the queues never empty")
            self.clock.advance(QUIET)
            swept = await sweep(self.hub, requeue_after_seconds=REQUEUE_AFTER)
            if swept.commands == 0 and swept.messages == 0:
                break
        else:
            raise AssertionError("the sweeper keeps finding work")
        waiting = [m.id for m in self.db.inbox.values() if m.state is InboxState.RECEIVED]
        assert not waiting, f"inbox messages left waiting: {waiting}"
        stuck = [
            c.id
            for c in self.db.commands.values()
            if c.state is CommandState.PENDING and not self._behind_a_failure(c)
        ]
        assert not stuck, f"pending commands nobody will send: {stuck}"

    def _behind_a_failure(self, command: ChannelCommand) -> bool:
        """Held, or waiting behind an earlier command of its order that failed or is held:
        an operator's decision lets it go."""
        if command.held_by is not None:
            return True
        return any(
            other.order_id == command.order_id
            and other.seq < command.seq
            and (
                other.state is CommandState.FAILED
                or (other.state is CommandState.PENDING and other.held_by is not None)
            )
            for other in self.db.commands.values()
        )

    async def check_converged(self) -> None:
        """Promise 5: the canonical status is the channel's truth, and so is the channel
        status (every order was just resynced: the channel's current word came last)."""
        failed = {c.order_id for c in await failed_commands(self.hub, limit=10_000)}
        held = {c.order_id for c in await held_commands(self.hub, limit=10_000)}
        for message in await failed_messages(self.hub, limit=10_000):
            error = message.last_error or ""
            assert error.startswith("transient errors exhausted") or INTAKE_BUG in error, (
                f"message {message.id} failed: {error}"
            )
        for order in self.orders():
            truth = self.model.orders[order.channel_order_id]
            want = expected_status(truth)
            if order.status is want and order.channel_status == truth.status:
                continue
            if order.attention or order.id in failed or order.id in held:
                continue
            raise AssertionError(
                f"order {order.id} ({order.channel_order_id}) shows {order.status.value} "
                f"(channel status {order.channel_status}) but the channel holds "
                f"{truth.status.value} (expected {want.value}, shipped {truth.shipped}); "
                "no attention reason, no failed or held command"
            )

    # --- the promises -------------------------------------------------------------------

    def _watch(self, command: CommandView) -> None:
        """Promises 3 and 4, checked when a call reaches the channel."""
        stored = self.db.commands.get(command.id)
        if stored is None or stored.state is not CommandState.PENDING:
            state = stored.state.value if stored else "missing"
            self.violations.append(f"{command.kind} {command.id} called while {state}")
        if any(
            e.type == "command.succeeded" and e.data.get("command_id") == command.id
            for e in self.db.feed
        ):
            self.violations.append(f"{command.kind} {command.id} called after it succeeded")
        earlier = sorted(
            (c for c in self.db.commands.values() if c.order_id == command.order_id),
            key=lambda c: c.seq,
        )
        for other in earlier:
            if other.seq >= command.seq:
                break
            if self.account.independent(other.kind, command.kind):
                continue
            if other.state is CommandState.ABANDONED:
                continue
            if other.state is CommandState.SUCCEEDED and other.id in self.model.done:
                continue
            self.violations.append(
                f"{command.kind} {command.id} (#{command.seq}) reached the channel before "
                f"{other.kind} {other.id} (#{other.seq}) ended there: {other.state.value}, "
                f"carried out by the channel: {other.id in self.model.done}"
            )

    def check_promises(self) -> None:
        """Promises 1 to 4 (3 and 4 as the calls came, see ``_watch``)."""
        assert not self.violations, self.violations
        terminal: defaultdict[str, list[tuple[int, str]]] = defaultdict(list)
        for entry in self.db.feed:
            if entry.type in TERMINAL:
                terminal[str(entry.data.get("command_id"))].append((entry.seq, entry.type))
        for command in self.db.commands.values():
            marks = self.retries.get(command.id, [])
            # 1. the budget between two operator retries
            since = marks[-1].log_index if marks else 0
            calls = self.model.calls_of(command.id, since=since)
            assert calls <= POLICY.max_attempts, (
                f"{command.kind} {command.id} called {calls} times since its last retry"
            )
            # 2. one terminal event per ending, matching how it ended
            events = terminal.get(command.id, [])
            start = 0
            for mark in marks:
                ended = [kind for seq, kind in events if start < seq <= mark.feed_seq]
                assert ended == ["command.failed"], (
                    f"{command.kind} {command.id}: events {ended} before retry at {mark}"
                )
                start = mark.feed_seq
            last = [kind for seq, kind in events if seq > start]
            want = {
                CommandState.PENDING: [],
                CommandState.SUCCEEDED: ["command.succeeded"],
                CommandState.FAILED: ["command.failed"],
                CommandState.ABANDONED: ["command.failed"],
            }[command.state]
            assert last == want, (
                f"{command.kind} {command.id} is {command.state.value} with events {last}"
            )
            # 4. a success the hub records is one the channel carried out
            if command.state is CommandState.SUCCEEDED:
                assert command.id in self.model.done, (
                    f"{command.kind} {command.id} recorded as succeeded; the channel never "
                    "carried it out"
                )


__all__ = ["POLICY", "Answer", "CallPlan", "Hanging", "Job", "PipelineWorld", "RetryMark"]
