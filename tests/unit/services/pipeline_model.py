"""A model marketplace with topi's rules, wired as the hub's channel account, for the
pipeline state machine (test_pipeline_machine.py).

The model holds its own truth per order (status, units shipped), a log of every call it
received, and the webhooks it sent. What each call does is steered by a *script* the
machine fills before a dispatch: answer, fail before reaching the channel, reach it and
lose the answer, refuse, or hold the call (after it changed the truth) on a gate so the
machine can expire the lease, let another worker take over, or kill the worker.

topi's rules, as the simulator (orderhub_topi.simulator.state) and the topi client have
them: acknowledge only from ``created``; accept and reject only from ``created`` or
``acknowledged`` (reject never after confirmation); a repeated call whose target the
order already reached is absorbed as done (the client's 422 read-back); shipments only
for ``confirmed`` or ``partially_fulfilled`` orders, all or nothing, and a shipment
already registered under the same command id is answered as done (the adapter's
``already_shipped`` check). topi sends no webhook for ``acknowledged`` and ``confirmed``
when they are the seller's calls; it reads the order back after acknowledge, accept and
reject and answers with it (``CommandOutcome.snapshot``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from orderhub.channels.spi import (
    AccountConfig,
    ChannelError,
    CommandKind,
    CommandOutcome,
    CommandView,
    FollowUp,
    IntakeMessage,
    PermanentChannelError,
    TransientChannelError,
)
from orderhub.domain.capabilities import Capabilities
from orderhub.domain.model import ChannelSnapshot, Order
from orderhub.domain.values import OrderStatus
from orderhub.testing.channel import TestChannelAccount, decode_orders, to_snapshot, topi_like

CHANNEL: Final = "testchannel"
ACCOUNT: Final = "main"


class Topi(StrEnum):
    CREATED = "created"
    ACKNOWLEDGED = "acknowledged"
    CONFIRMED = "confirmed"
    PARTIALLY_FULFILLED = "partially_fulfilled"
    COMPLETED = "completed"
    REJECTED = "rejected"
    CANCELED = "canceled"


ACCEPTED_STATUSES: Final = frozenset({Topi.CONFIRMED, Topi.PARTIALLY_FULFILLED, Topi.COMPLETED})
#: a repeated call whose target the order reached is absorbed as done (topi client)
DONE_STATUSES: Final[Mapping[CommandKind, frozenset[Topi]]] = {
    CommandKind.ACKNOWLEDGE: frozenset({Topi.ACKNOWLEDGED}) | ACCEPTED_STATUSES,
    CommandKind.ACCEPT: ACCEPTED_STATUSES,
    CommandKind.REJECT: frozenset({Topi.REJECTED}),
}
#: topi's moves for our calls: the statuses it takes them in, and the status they lead to
MOVES: Final[Mapping[CommandKind, tuple[tuple[Topi, ...], Topi]]] = {
    CommandKind.ACKNOWLEDGE: ((Topi.CREATED,), Topi.ACKNOWLEDGED),
    CommandKind.ACCEPT: ((Topi.CREATED, Topi.ACKNOWLEDGED), Topi.CONFIRMED),
    CommandKind.REJECT: ((Topi.CREATED, Topi.ACKNOWLEDGED), Topi.REJECTED),
}
#: statuses a customer can still cancel in (topi: not completed, not ended)
CANCELLABLE: Final = frozenset(
    {Topi.CREATED, Topi.ACKNOWLEDGED, Topi.CONFIRMED, Topi.PARTIALLY_FULFILLED}
)
STAMP_ORIGIN: Final = datetime(2026, 1, 1, tzinfo=UTC)
INTAKE_BUG: Final = "an adapter bug while mapping"


def expected_status(truth: TruthOrder) -> OrderStatus:
    """The canonical status the hub must show for what the channel holds."""
    match truth.status:
        case Topi.CREATED | Topi.ACKNOWLEDGED:
            return OrderStatus.AWAITING_ACCEPTANCE
        case Topi.CONFIRMED:
            return OrderStatus.READY_TO_SHIP
        case Topi.PARTIALLY_FULFILLED:
            return OrderStatus.PARTIALLY_SHIPPED
        case Topi.COMPLETED:
            return OrderStatus.SHIPPED
        case Topi.REJECTED:
            return OrderStatus.REJECTED
        case Topi.CANCELED:
            # what had shipped stands, the rest is cancelled (topi: partially fulfilled,
            # then canceled by the customer)
            return OrderStatus.SHIPPED if truth.shipped_total else OrderStatus.CANCELLED
    raise AssertionError(truth.status)


class Answer(StrEnum):
    """How the channel answers one call."""

    OK = "ok"  # carried out (or refused by topi's rules), answered in time
    NO_READ_BACK = "no_read_back"  # carried out; the read-back after it failed (no snapshot)
    TRANSIENT = "transient"  # 503 before reaching the channel: nothing changed
    RETRY_AFTER = "retry_after"  # 429 with Retry-After: nothing changed
    TIMEOUT = "timeout"  # carried out, but the answer was lost (a transient error)
    REFUSE = "refuse"  # the channel refuses for its own reasons (422): nothing changed
    ADAPTER_BUG = "adapter_bug"  # the adapter raises something unexpected: nothing changed


@dataclass(kw_only=True)
class CallPlan:
    answer: Answer = Answer.OK
    retry_after: float | None = None
    #: the call waits here after the channel took it (late answers, killed workers)
    gate: asyncio.Event | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Call:
    """One call the channel received."""

    command_id: str
    kind: CommandKind
    order: str
    seq: int
    answer: Answer
    #: applied | absorbed | replayed | refused (by topi's rules) | not_reached
    effect: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Webhook:
    id: str
    order: str
    body: bytes
    status: str


@dataclass(kw_only=True)
class TruthOrder:
    id: str
    quantities: dict[str, int]
    status: Topi = Topi.CREATED
    shipped: dict[str, int] = field(default_factory=dict)
    changes: int = 0
    shipments: set[str] = field(default_factory=set)  # command ids registered

    @property
    def shipped_total(self) -> int:
        return sum(self.shipped.values())

    def remaining(self, line: str) -> int:
        return self.quantities[line] - self.shipped.get(line, 0)


Watcher = Callable[[CommandView], None]


class ModelChannel:
    """The marketplace's truth, its call log and its outgoing webhooks."""

    def __init__(self, *, stamps: bool) -> None:
        self.stamps = stamps  # documents carry the channel's update stamp
        self.orders: dict[str, TruthOrder] = {}
        self.log: list[Call] = []
        self.script: list[CallPlan] = []  # how the next calls are answered
        self.intake_script: list[CallPlan] = []  # how the next messages are mapped
        self.arrived = asyncio.Event()  # a call (or a mapping) reached the channel
        self.outbox: list[Webhook] = []  # sent, not yet delivered (or delayed)
        self.sent: list[Webhook] = []  # every webhook ever sent, for late redeliveries
        self.done: set[str] = set()  # command ids the channel carried out or absorbed
        self.refresh_down = False
        self.watch: Watcher | None = None
        self._webhooks = 0

    # --- the channel by itself ----------------------------------------------------------

    def create(self, order_id: str, quantities: Mapping[str, int]) -> None:
        self.orders[order_id] = TruthOrder(id=order_id, quantities=dict(quantities))
        self._changed(self.orders[order_id], webhook=True)

    def customer_cancels(self, order_id: str) -> bool:
        truth = self.orders[order_id]
        if truth.status not in CANCELLABLE:
            return False
        truth.status = Topi.CANCELED
        self._changed(truth, webhook=True)
        return True

    def confirms_itself(self, order_id: str) -> bool:
        truth = self.orders[order_id]
        if truth.status not in (Topi.CREATED, Topi.ACKNOWLEDGED):
            return False
        truth.status = Topi.CONFIRMED
        self._changed(truth, webhook=True)
        return True

    def document(self, truth: TruthOrder) -> dict[str, Any]:
        """The order in the test channel's document format, mapped as topi's adapter maps
        a topi order (orderhub_topi.mapping)."""
        accepted = truth.status in ACCEPTED_STATUSES
        doc: dict[str, Any] = {
            "id": truth.id,
            "status": truth.status.value,
            "lines": [
                {"id": line, "title": f"Item {line}", "quantity": q, "sku": f"SKU-{line}"}
                for line, q in truth.quantities.items()
            ],
            "counters": {
                line: {
                    "accepted": q if accepted else 0,
                    "rejected": q if truth.status is Topi.REJECTED else 0,
                    "shipped": truth.shipped.get(line, 0),
                }
                for line, q in truth.quantities.items()
            },
            "released": accepted,
        }
        if truth.status is Topi.CANCELED:
            doc["cancellations"] = [
                {
                    "id": "topi:canceled",
                    "initiator": "customer",
                    "reason": "customer_request",
                    "state": "accepted",
                }
            ]
        if self.stamps:
            doc["updated_at"] = (STAMP_ORIGIN + timedelta(seconds=truth.changes)).isoformat()
        return doc

    def body(self, truth: TruthOrder) -> bytes:
        return json.dumps(self.document(truth), sort_keys=True).encode()

    def _changed(self, truth: TruthOrder, *, webhook: bool) -> None:
        truth.changes += 1
        if webhook:
            self._webhooks += 1
            sent = Webhook(
                id=f"wh-{self._webhooks}",
                order=truth.id,
                body=self.body(truth),
                status=truth.status.value,
            )
            self.outbox.append(sent)
            self.sent.append(sent)

    # --- calls --------------------------------------------------------------------------

    def calls_of(self, command_id: str, *, since: int = 0) -> int:
        return sum(1 for call in self.log[since:] if call.command_id == command_id)

    async def call(self, command: CommandView, order: Order) -> CommandOutcome:
        plan = self.script.pop(0) if self.script else CallPlan()
        if self.watch is not None:
            self.watch(command)
        truth = self.orders[order.channel_order_id]
        if plan.answer in (Answer.TRANSIENT, Answer.RETRY_AFTER, Answer.REFUSE, Answer.ADAPTER_BUG):
            self._log(command, order, plan, "not_reached")
            await self._hold(plan)
            if plan.answer is Answer.REFUSE:
                raise PermanentChannelError("422: the channel refuses this call", status=422)
            if plan.answer is Answer.ADAPTER_BUG:
                raise KeyError("an adapter bug")
            retry_after = plan.retry_after if plan.answer is Answer.RETRY_AFTER else None
            raise TransientChannelError("503: try later", status=503, retry_after=retry_after)
        answer: CommandOutcome | ChannelError
        try:
            effect, outcome = self._carry_out(command, order, truth)
            answer = outcome
        except PermanentChannelError as exc:
            effect, answer = "refused", exc
        self._log(command, order, plan, effect)
        await self._hold(plan)
        if plan.answer is Answer.TIMEOUT:
            raise TransientChannelError("timed out (the channel took the call)", status=None)
        if isinstance(answer, ChannelError):
            raise answer
        if plan.answer is Answer.NO_READ_BACK:
            return CommandOutcome(data=answer.data)
        return answer

    def _log(self, command: CommandView, order: Order, plan: CallPlan, effect: str) -> None:
        self.log.append(
            Call(
                command_id=command.id,
                kind=command.kind,
                order=order.channel_order_id,
                seq=command.seq,
                answer=plan.answer,
                effect=effect,
            )
        )
        if effect in ("applied", "absorbed", "replayed"):
            self.done.add(command.id)
        self.arrived.set()

    @staticmethod
    async def _hold(plan: CallPlan) -> None:
        if plan.gate is not None:
            await plan.gate.wait()

    def _carry_out(
        self, command: CommandView, order: Order, truth: TruthOrder
    ) -> tuple[str, CommandOutcome]:
        """topi's rules; raises PermanentChannelError for what topi refuses."""
        kind = command.kind
        if kind in DONE_STATUSES:
            allowed, target = MOVES[kind]
            if truth.status in allowed:
                truth.status = target
                # topi notifies a rejection, not our acknowledge or accept
                self._changed(truth, webhook=kind is CommandKind.REJECT)
                effect = "applied"
            elif truth.status in DONE_STATUSES[kind]:
                effect = "absorbed"  # the client's read-back after a 422
            else:
                raise PermanentChannelError(
                    f'422: order {truth.id} is in status "{truth.status}": you can only '
                    f"{kind.value} orders in status " + " or ".join(allowed),
                    status=422,
                )
            [snapshot] = [to_snapshot(doc) for doc in decode_orders(self.body(truth))]
            return effect, CommandOutcome(
                data={"topi_status": truth.status.value}, snapshot=snapshot
            )
        if kind is CommandKind.SHIP:
            if command.id in truth.shipments:
                return "replayed", CommandOutcome(data={"replayed": True})
            if truth.status not in (Topi.CONFIRMED, Topi.PARTIALLY_FULFILLED):
                raise PermanentChannelError(
                    f'400: order {truth.id} is in status "{truth.status}": shipments only '
                    "for confirmed or partially_fulfilled orders",
                    status=400,
                )
            channel_ids = {line.id: line.channel_line_id for line in order.lines}
            wanted: dict[str, int] = {}
            for item in command.payload.get("items") or ():
                line = channel_ids[item["line_id"]]
                wanted[line] = wanted.get(line, 0) + int(item["quantity"])
            if not wanted or any(q > truth.remaining(line) for line, q in wanted.items()):
                raise PermanentChannelError(
                    f"400: order {truth.id}: every asset asked for has already been shipped",
                    status=400,
                )
            for line, q in wanted.items():
                truth.shipped[line] = truth.shipped.get(line, 0) + q
            truth.shipments.add(command.id)
            done = all(truth.remaining(line) == 0 for line in truth.quantities)
            truth.status = Topi.COMPLETED if done else Topi.PARTIALLY_FULFILLED
            self._changed(truth, webhook=True)
            return "applied", CommandOutcome(data={"units": sum(wanted.values())})
        raise PermanentChannelError(f"topi cannot carry out {kind.value}")

    async def intake(self, body: bytes) -> Sequence[ChannelSnapshot]:
        """Map a stored message (the adapter may have to ask the channel: it may fail)."""
        plan = self.intake_script.pop(0) if self.intake_script else CallPlan()
        self.arrived.set()
        await self._hold(plan)
        if plan.answer in (Answer.TRANSIENT, Answer.RETRY_AFTER, Answer.TIMEOUT):
            retry_after = plan.retry_after if plan.answer is Answer.RETRY_AFTER else None
            raise TransientChannelError("503: try later", status=503, retry_after=retry_after)
        if plan.answer in (Answer.REFUSE, Answer.ADAPTER_BUG):
            raise KeyError(INTAKE_BUG)
        return [to_snapshot(doc) for doc in decode_orders(body)]

    def refresh(self, channel_order_id: str) -> IntakeMessage:
        if self.refresh_down:
            raise TransientChannelError("503: topi is down", status=503)
        body = self.body(self.orders[channel_order_id])
        digest = hashlib.sha256(body).hexdigest()[:24]
        return IntakeMessage(dedupe_key=f"refresh:{channel_order_id}:{digest}", body=body)


class ModelAccount(TestChannelAccount):
    """The test channel's topi profile (mapping, order keys, independent kinds), with the
    model answering the calls and the refreshes, and topi's acknowledge follow-up."""

    __test__ = False

    def __init__(self, config: AccountConfig, capabilities: Capabilities, model: ModelChannel):
        super().__init__(config, capabilities)
        self.model = model

    async def execute(self, command: CommandView, order: Order) -> CommandOutcome:
        return await self.model.call(command, order)

    async def snapshots(self, body: bytes, headers: Mapping[str, str]) -> Sequence[ChannelSnapshot]:
        return await self.model.intake(body)

    async def refresh(self, order: Order) -> IntakeMessage | None:
        return self.model.refresh(order.channel_order_id)

    def follow_ups(self, order: Order, *, new: bool) -> Sequence[FollowUp]:
        if new and order.channel_status == Topi.CREATED:
            return [FollowUp(kind=CommandKind.ACKNOWLEDGE)]
        return ()


@dataclass(kw_only=True, slots=True)
class ModelPlugin:
    model: ModelChannel
    name: str = CHANNEL

    def capabilities(self, config: AccountConfig) -> Capabilities:
        return topi_like()

    def open_account(self, config: AccountConfig) -> ModelAccount:
        return ModelAccount(config, topi_like(), self.model)
