"""The command and intake pipeline against a model marketplace: a state machine.

The hub runs on the in-memory fakes; its channel account is a model of topi
(pipeline_model.py) that keeps its own truth per order and a log of every call
(pipeline_world.py wires them and holds the checks). Rules play

* the channel: orders placed; it confirms by itself, a customer cancels; webhooks arrive
  out of order, twice, late (an old one again, as a retry or as a new message) or never;
* the warehouse: accept, reject, (partial) shipments, a shipment sent again;
* the workers: a queued command or inbox message taken (any of them), the channel
  answering, failing before or after it took the call, refusing, or an adapter bug; a
  worker whose answer comes after its lease ran out and another worker claimed the job; a
  worker killed mid-call; a call left hanging across steps, answered or killed later;
  jobs lost by the broker; other writers racing the commits;
* time and the sweeper; the operator: retry or abandon a failed command, retry a failed
  message, resync an order (the channel may be down).

After every step:

1. no command is called more than ``max_attempts`` times between two operator retries;
2. each time a command leaves ``pending`` there is exactly one terminal ``command.*``
   event on the feed, matching how it ended (never a success after a failure);
3. the channel gets an order's commands in ``seq`` order (except the kinds the adapter
   declares independent): a call comes only when every earlier command succeeded *at the
   channel* or was abandoned (no shipment before the channel took the accept);
4. no command is called again after it succeeded, and the hub records a success only for
   a call the channel carried out; a worker whose job was claimed again records nothing.

``settle`` (a rule, now and then, and always at teardown) answers every held worker,
delivers every webhook on its way, finds lost orders again (topi's reconciliation),
drains the queues with the sweeper and a channel that answers from then on, resyncs every
order and drains again; then

5. nothing is left to do (every pending command waits, held or not, behind a failed one
   of its order, for an operator; no inbox message waits; messages failed only for the
   errors injected), and every order shows the channel's truth (its canonical status
   maps the channel's status, and its channel status is the channel's), unless it
   carries an attention reason or a failed or held command.

``PIPELINE_EXAMPLES=1000 pytest tests/unit/services/test_pipeline_machine.py`` hunts
longer, at random (the default run is derandomized, for CI).
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import Final

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from orderhub.application.ports import CommandState, InboxState
from orderhub.application.services.intake import process_message
from orderhub.application.services.operations import (
    abandon_command,
    resync_order,
    retry_command,
    retry_message,
)
from orderhub.application.services.seller_commands import (
    accept_order,
    record_shipment,
    reject_order,
)
from orderhub.domain.errors import DomainError
from orderhub.domain.model import Order
from orderhub.domain.values import LineQuantity, Reason

from .pipeline_world import POLICY, Answer, CallPlan, Job, PipelineWorld, RetryMark, comparable

LINE_SETS: Final = ({"L1": 1}, {"L1": 2}, {"L1": 2, "L2": 1})
MAX_ORDERS: Final = 3
#: the channel mostly answers; each way of failing now and then
ANSWERS: Final = st.sampled_from([Answer.OK, Answer.OK, Answer.OK, *Answer])
INTAKE: Final = st.sampled_from(
    [Answer.OK] * 6 + [Answer.TRANSIENT, Answer.RETRY_AFTER, Answer.ADAPTER_BUG]
)


@dataclass(frozen=True, kw_only=True, slots=True)
class SentShipment:
    order_id: str
    items: tuple[LineQuantity, ...]
    tracking_number: str


class PipelineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = PipelineWorld()
        self.shipments: list[SentShipment] = []
        self.counter = 0

    def next_number(self) -> int:
        self.counter += 1
        return self.counter

    def refused_unchanged(self, order_id: str, before: Order | None, commands: int) -> None:
        w = self.world
        assert comparable(w.db.orders.get(order_id)) == before, "a refusal changed the order"
        assert len(w.db.commands) == commands, "a refusal queued a command"

    @initialize(stamps=st.booleans())
    def channel_stamps(self, stamps: bool) -> None:
        """Documents carry the channel's update stamp, or not (arrival order decides)."""
        self.world.model.stamps = stamps

    # --- the channel --------------------------------------------------------------------

    @precondition(lambda self: len(self.world.model.orders) < MAX_ORDERS)
    @rule(lines=st.sampled_from(LINE_SETS), webhook=st.sampled_from(["processed", "sent"]))
    def new_order(self, lines: dict[str, int], webhook: str) -> None:
        """An order is placed; its webhook is processed at once, or just sent (it may be
        delayed or lost like any other)."""
        w = self.world
        w.model.create(f"CO-{self.next_number()}", lines)
        if webhook == "processed":
            sent = w.model.outbox.pop()
            w.run(w.deliver(sent, sent.id))
            w.run(process_message(w.hub, w.take_message(len(w.queue.messages) - 1)))

    @precondition(lambda self: bool(self.world.model.orders))
    @rule(data=st.data())
    def channel_acts(self, data: st.DataObject) -> None:
        """The channel changes its mind (it confirms by itself, a customer cancels), or a
        webhook travels: any one on its way arrives (out of order), maybe twice, or is
        lost; an old one comes again, as a retry (same id) or as a new message."""
        w = self.world
        actions = ["confirm", "cancel"]
        if w.model.outbox:
            actions += ["deliver", "deliver", "deliver", "deliver twice", "lose"]
        if w.model.sent:
            actions += ["old again", "old as new"]
        action = data.draw(st.sampled_from(actions), label="channel")
        if action in ("confirm", "cancel"):
            order_id = data.draw(st.sampled_from(sorted(w.model.orders)), label="order")
            if action == "cancel":
                w.model.customer_cancels(order_id)
            else:
                w.model.confirms_itself(order_id)
        elif action.startswith("old"):
            webhook = w.model.sent[data.draw(st.integers(0, len(w.model.sent) - 1), label="sent")]
            new_id = f"{webhook.id}-again-{self.next_number()}"
            w.run(w.deliver(webhook, new_id if action == "old as new" else webhook.id))
        else:
            index = data.draw(st.integers(0, len(w.model.outbox) - 1), label="webhook")
            webhook = w.model.outbox.pop(index)
            for _ in range({"lose": 0, "deliver": 1, "deliver twice": 2}[action]):
                w.run(w.deliver(webhook, webhook.id))

    # --- the warehouse ------------------------------------------------------------------

    @precondition(lambda self: bool(self.world.db.orders))
    @rule(data=st.data())
    def warehouse(self, data: st.DataObject) -> None:
        """The warehouse accepts, rejects or ships (part of) an order, or sends a shipment
        again. A refusal of the domain changes nothing."""
        w = self.world
        order = w.db.orders[data.draw(st.sampled_from(sorted(w.db.orders)), label="order")]
        action = data.draw(
            st.sampled_from(["accept", "accept", "reject", "ship", "ship", "ship again"]),
            label="warehouse",
        )
        if action == "ship again":
            self.ship_again(data)
            return
        before, commands = comparable(order), len(w.db.commands)
        try:
            if action == "accept":
                w.run(accept_order(w.hub, order_id=order.id))
            elif action == "reject":
                w.run(reject_order(w.hub, order_id=order.id, reason=Reason.OUT_OF_STOCK))
            else:
                self.ship(data, order)
        except DomainError:
            self.refused_unchanged(order.id, before, commands)

    def ship(self, data: st.DataObject, order: Order) -> None:
        lines = data.draw(
            st.lists(
                st.sampled_from([line.id for line in order.leaf_lines]),
                min_size=1,
                max_size=2,
                unique=True,
            ),
            label="lines",
        )
        items = tuple(
            LineQuantity(line_id=line, quantity=data.draw(st.integers(1, 2), label="units"))
            for line in lines
        )
        tracking = f"T-{self.next_number()}"
        w = self.world
        w.run(
            record_shipment(
                w.hub, order_id=order.id, items=items, carrier="DHL", tracking_number=tracking
            )
        )
        self.shipments.append(
            SentShipment(order_id=order.id, items=items, tracking_number=tracking)
        )

    def ship_again(self, data: st.DataObject) -> None:
        """The same parcel again (a WMS retry without its Idempotency-Key): answered with
        the first receipt, never a second command."""
        if not self.shipments:
            return
        w = self.world
        sent = data.draw(st.sampled_from(self.shipments), label="shipment")
        before, commands = comparable(w.db.orders[sent.order_id]), len(w.db.commands)
        with contextlib.suppress(DomainError):
            receipt = w.run(
                record_shipment(
                    w.hub,
                    order_id=sent.order_id,
                    items=sent.items,
                    carrier="DHL",
                    tracking_number=sent.tracking_number,
                )
            )
            assert receipt.details.get("replayed") is True, receipt
        self.refused_unchanged(sent.order_id, before, commands)

    # --- the workers --------------------------------------------------------------------

    @precondition(lambda self: bool(self.world.queue.messages))
    @rule(data=st.data())
    def inbox_workers(self, data: st.DataObject) -> None:
        """Workers take one to three queued inbox messages (any, not only the oldest)."""
        self.workers(data, Job.MESSAGE)

    @precondition(lambda self: bool(self.world.queue.commands))
    @rule(data=st.data())
    def command_workers(self, data: st.DataObject) -> None:
        """Workers take one to three queued commands (any, not only the oldest)."""
        self.workers(data, Job.COMMAND)

    def workers(self, data: st.DataObject, job: Job) -> None:
        w = self.world
        queue = w.queue.messages if job is Job.MESSAGE else w.queue.commands
        for _ in range(data.draw(st.integers(1, 3), label="jobs")):
            if not queue:
                return
            w.uow.races = data.draw(st.sampled_from([0, 0, 0, 1, 2]), label="racing writers")
            try:
                index = data.draw(st.integers(0, len(queue) - 1), label="job")
                self.job(
                    data,
                    job,
                    w.take_message(index) if job is Job.MESSAGE else w.take_command(index),
                )
            finally:
                w.uow.races = 0

    def job(self, data: st.DataObject, job: Job, job_id: str) -> None:
        """The channel answers as drawn, maybe late (after the lease ran out and another
        worker claimed the job), or the worker is killed mid-call, or its call hangs
        (answered or killed in a later step); or the broker loses the job."""
        w = self.world
        mode = data.draw(
            st.sampled_from(["work", "work", "work", "late", "killed", "hangs", "lost"]),
            label="mode",
        )
        answers = INTAKE if job is Job.MESSAGE else ANSWERS
        plan = CallPlan(
            answer=data.draw(answers, label="answer"),
            retry_after=data.draw(st.sampled_from([1.0, 45.0]), label="retry_after"),
        )
        if mode == "work":
            w.run(w.work(job, job_id, plan))
        elif mode == "late":
            second = CallPlan(answer=data.draw(answers, label="second worker's answer"))
            w.run(w.late(job, job_id, plan, second))
        elif mode in ("killed", "hangs"):
            hanging = w.run(w.start(job, job_id, plan))
            if hanging is not None and mode == "killed":
                w.run(w.kill(hanging))
            elif hanging is not None:
                w.hanging.append(hanging)

    @precondition(lambda self: bool(self.world.hanging))
    @rule(data=st.data())
    def hanging_worker_ends(self, data: st.DataObject) -> None:
        """A worker held at the channel since an earlier step gets its answer (dropped if
        its job was claimed again meanwhile), or dies."""
        w = self.world
        hanging = w.hanging.pop(data.draw(st.integers(0, len(w.hanging) - 1), label="worker"))
        if data.draw(st.sampled_from(["answered", "answered", "killed"]), label="end") == "killed":
            w.run(w.kill(hanging))
        else:
            w.run(w.answer(hanging))

    @precondition(lambda self: bool(self.world.db.commands or self.world.db.inbox))
    @rule(
        seconds=st.sampled_from([1.0, 5.0, 20.0, POLICY.lease_seconds + 1, 300.0]),
        sweeper=st.one_of(st.none(), ANSWERS),
    )
    def time_passes(self, seconds: float, sweeper: Answer | None) -> None:
        """The clock moves (backoffs come due, leases run out); then maybe the sweeper
        runs and a worker takes each job it queued (the channel answering ``sweeper``)."""
        self.world.clock.advance(seconds)
        if sweeper is not None:
            self.world.run(self.world.sweep_and_work(CallPlan(answer=sweeper, retry_after=45.0)))

    # --- the operator -------------------------------------------------------------------

    @precondition(lambda self: bool(self.world.db.orders))
    @rule(data=st.data())
    def operator(self, data: st.DataObject) -> None:
        """The operator retries or abandons a failed command (a retry the order no longer
        allows is refused), retries a failed message, or resyncs an order (the channel
        may be down)."""
        w = self.world
        failed = sorted(c.id for c in w.db.commands.values() if c.state is CommandState.FAILED)
        bad = sorted(m.id for m in w.db.inbox.values() if m.state is InboxState.FAILED)
        actions = ["resync", "resync while down"]
        actions += ["retry", "retry", "abandon"] if failed else []
        actions += ["retry message"] if bad else []
        action = data.draw(st.sampled_from(actions), label="operator")
        if action.startswith("resync"):
            order_id = data.draw(st.sampled_from(sorted(w.db.orders)), label="order")
            w.model.refresh_down = action == "resync while down"
            try:
                w.run(resync_order(w.hub, order_id))
            except DomainError:
                assert w.model.refresh_down, "a resync failed while the channel was up"
            finally:
                w.model.refresh_down = False
        elif action == "retry message":
            w.run(retry_message(w.hub, data.draw(st.sampled_from(bad), label="message")))
        else:
            command_id = data.draw(st.sampled_from(failed), label="command")
            if action == "abandon":
                w.run(abandon_command(w.hub, command_id))
                return
            mark = RetryMark(log_index=len(w.model.log), feed_seq=w.db.last_seq)
            try:
                w.run(retry_command(w.hub, command_id))
            except DomainError:  # the order no longer allows the decision
                assert w.db.commands[command_id].state is CommandState.FAILED
            else:
                w.retries[command_id].append(mark)

    # --- quiet --------------------------------------------------------------------------

    @precondition(lambda self: bool(self.world.model.orders))
    @rule(now=st.integers(0, 5), newest_first=st.booleans())
    def settle(self, now: int, newest_first: bool) -> None:
        """Now and then mid-run (``now == 5``: the rule is drawn often), and at teardown."""
        if now == 5:
            self.world.run(self.world.settle(newest_first=newest_first))

    @invariant()
    def promises(self) -> None:
        self.world.check_promises()

    def teardown(self) -> None:
        try:
            if sys.exc_info()[0] is None and self.world.model.orders:
                self.world.run(self.world.settle())
                self.world.check_promises()
        finally:
            self.world.close()


#: ``PIPELINE_EXAMPLES=1000 pytest ...`` for a longer, random hunt
SCALE: Final = int(os.environ.get("PIPELINE_EXAMPLES", "0"))

PipelineMachine.TestCase.settings = settings(
    max_examples=SCALE or 200,
    stateful_step_count=50,
    deadline=None,
    derandomize=not SCALE,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestPipeline = PipelineMachine.TestCase
