"""Properties of the lifecycle, for each test channel profile.

1. A state machine drives random seller commands and random (even inconsistent) channel
   snapshots and checks the invariants after every step.
2. Snapshots of one monotonic channel history, applied as any multiset in any order,
   converge on what the latest of them alone gives, and never lower a counter.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from orderhub.domain.capabilities import Capabilities, Scope
from orderhub.domain.errors import DomainError
from orderhub.domain.model import Order, derive_status
from orderhub.domain.values import (
    Decision,
    FulfilledBy,
    Initiator,
    LineQuantity,
    OrderStatus,
    Reason,
    RequestState,
)

from .support import (
    CONTRACT_EVENTS,
    LATER,
    NOW,
    PROFILES,
    C,
    Doc,
    Ids,
    L,
    fingerprint,
)

#: the lifecycle order; rejected and cancelled are terminal and end every path
RANK: Final = {
    OrderStatus.AWAITING_ACCEPTANCE: 0,
    OrderStatus.ACCEPTED: 1,
    OrderStatus.READY_TO_SHIP: 2,
    OrderStatus.PARTIALLY_SHIPPED: 3,
    OrderStatus.SHIPPED: 4,
    OrderStatus.DELIVERED: 5,
    OrderStatus.REJECTED: 6,
    OrderStatus.CANCELLED: 6,
}
#: what a terminal order may still emit: the channel's word recorded, returns
AFTER_TERMINAL: Final = frozenset(
    {"order.updated", "order.return_requested", "order.attention_required"}
)
#: status events: each status is reached at most once
ONCE: Final = (
    "order.ready_to_ship",
    "order.shipped",
    "order.delivered",
    "order.rejected",
    "order.cancelled",
)

SERIALS: Final = ("SN-1", "SN-2", "SN-3", "SN-4")
CHANNEL_STATUSES: Final = ("created", "accepted", "in_preparation", "shipped", "cancelled")
REASONS: Final = (
    Reason.SELLER_REFUSAL,
    Reason.CUSTOMER_CLAIM,
    Reason.DAMAGED,
    Reason.OUT_OF_STOCK,
    Reason.CUSTOMER_REQUEST,
)


def check_invariants(order: Order) -> None:
    for line in order.lines:
        assert min(line.accepted, line.rejected, line.shipped, line.delivered) >= 0
        assert line.cancelled >= 0
        assert line.accepted + line.rejected + line.cancelled <= line.quantity, line
        if order.acceptance_required:
            assert line.shipped <= line.accepted, line
        else:
            assert line.shipped <= line.quantity - line.rejected - line.cancelled, line
        assert line.delivered <= line.shipped, line
    assert order.status is derive_status(
        order.leaf_lines, acceptance_required=order.acceptance_required, released=order.released
    )
    shipped_serials = [
        s for shipment in order.shipments for item in shipment.items for s in item.serial_numbers
    ]
    assert len(shipped_serials) == len(set(shipped_serials)), shipped_serials
    unit_serials = [
        u.serial_number for line in order.lines for u in line.units if u.shipped and u.serial_number
    ]
    assert len(unit_serials) == len(set(unit_serials))
    if order.status.is_terminal:
        assert not order.cancellation_requested
    assert {e.type.value for e in order.events} <= CONTRACT_EVENTS


def lifecycle_state(order: Order) -> tuple[Any, ...]:
    """What must stay put once an order is terminal (returns aside)."""
    return (
        order.status,
        tuple(
            (ln.accepted, ln.rejected, ln.shipped, ln.delivered, ln.cancelled) for ln in order.lines
        ),
        len(order.shipments),
        tuple((c.id, c.state) for c in order.cancellations),
    )


# --- 1. the state machine ----------------------------------------------------------------


class Lifecycle(RuleBasedStateMachine):
    """Seller commands and channel snapshots in any order; ``profile`` set by subclasses."""

    profile: str = "topi"

    def __init__(self) -> None:
        super().__init__()
        self.caps: Capabilities = PROFILES[self.profile]()
        self.order: Order
        self.lines: list[L] = []
        self.rank = 0
        self.terminal: tuple[Any, ...] | None = None
        self.events_seen = 0
        self.announced = 0
        self.ids = Ids("x")

    @initialize(
        quantities=st.lists(st.integers(1, 3), min_size=1, max_size=3),
        data=st.data(),
    )
    def receive(self, quantities: list[int], data: st.DataObject) -> None:
        fulfilments: tuple[tuple[str, FulfilledBy], ...] = ()
        if self.caps.multiple_fulfilments:
            fulfilments = (("F1", FulfilledBy.SELLER), ("F2", FulfilledBy.SELLER))
        elif self.caps.seller_cancellation is not Scope.NONE:  # octopia: channel-fulfilled too
            fulfilments = (("F1", FulfilledBy.SELLER), ("F2", FulfilledBy.CHANNEL))
        for n, quantity in enumerate(quantities, start=1):
            fulfilment = None
            if fulfilments:
                fulfilment = data.draw(st.sampled_from(["F1", "F1", "F2"]), label=f"f{n}")
            self.lines.append(
                L(
                    id=f"L{n}",
                    quantity=quantity,
                    fulfilment=fulfilment,
                    requires_serial=data.draw(st.booleans(), label=f"serial{n}"),
                )
            )
        self.order = Order.receive(
            Doc(lines=tuple(self.lines), fulfilments=fulfilments, status="created").snapshot(),
            order_id="O-1",
            channel="testchannel",
            account="main",
            caps=self.caps,
            now=NOW,
            new_id=Ids(),
        )
        self.rank = RANK[self.order.status]

    # helpers

    def hub_line(self, channel_line_id: str) -> str:
        return next(ln.id for ln in self.order.lines if ln.channel_line_id == channel_line_id)

    def some_lines(self, data: st.DataObject, *, serials: bool = False) -> list[LineQuantity]:
        chosen = data.draw(
            st.lists(st.sampled_from([ln.id for ln in self.lines]), max_size=3), label="lines"
        )
        items = []
        for channel_line_id in chosen:
            quantity = data.draw(st.integers(0, 3), label="quantity")
            given: tuple[str, ...] = ()
            if serials and data.draw(st.booleans(), label="with serials"):
                given = tuple(
                    data.draw(st.lists(st.sampled_from(SERIALS), max_size=3), label="serials")
                )
            items.append(
                LineQuantity(
                    line_id=self.hub_line(channel_line_id), quantity=quantity, serial_numbers=given
                )
            )
        return items

    def attempt(self, command: Any) -> None:
        """Run a seller command: a refused one must change nothing at all."""
        before = fingerprint(self.order)
        try:
            command()
        except DomainError:
            assert fingerprint(self.order) == before

    # seller commands

    @rule(data=st.data(), everything=st.booleans())
    def accept(self, data: st.DataObject, everything: bool) -> None:
        lines = None if everything else self.some_lines(data)
        self.attempt(lambda: self.order.accept(self.caps, now=LATER, lines=lines))

    @rule(data=st.data(), everything=st.booleans(), reason=st.sampled_from(REASONS))
    def reject(self, data: st.DataObject, everything: bool, reason: Reason) -> None:
        lines = None if everything else self.some_lines(data)
        self.attempt(lambda: self.order.reject(self.caps, reason=reason, now=LATER, lines=lines))

    @rule(
        data=st.data(),
        final=st.booleans(),
        name_fulfilment=st.booleans(),
        shipment_no=st.integers(1, 10**6),
    )
    def ship(
        self, data: st.DataObject, final: bool, name_fulfilment: bool, shipment_no: int
    ) -> None:
        items = self.some_lines(data, serials=True)
        fulfilment = None
        if name_fulfilment:
            fulfilment = data.draw(st.sampled_from([f.id for f in self.order.fulfilments]))
        self.attempt(
            lambda: self.order.record_shipment(
                self.caps,
                shipment_id=f"S{shipment_no}",
                items=items,
                now=LATER,
                fulfilment_id=fulfilment,
                final=final,
            )
        )

    @rule(data=st.data(), name_fulfilment=st.booleans())
    def deliver(self, data: st.DataObject, name_fulfilment: bool) -> None:
        fulfilment = None
        if name_fulfilment:
            fulfilment = data.draw(st.sampled_from([f.id for f in self.order.fulfilments]))
        self.attempt(
            lambda: self.order.confirm_delivery(self.caps, now=LATER, fulfilment_id=fulfilment)
        )

    @rule(data=st.data(), everything=st.booleans(), reason=st.sampled_from(REASONS))
    def cancel(self, data: st.DataObject, everything: bool, reason: Reason) -> None:
        lines = None if everything else self.some_lines(data)
        cancellation_id = self.ids()
        self.attempt(
            lambda: self.order.cancel(
                self.caps, reason=reason, cancellation_id=cancellation_id, now=LATER, lines=lines
            )
        )

    @rule(decision=st.sampled_from(Decision), data=st.data(), name_it=st.booleans())
    def decide(self, decision: Decision, data: st.DataObject, name_it: bool) -> None:
        cancellation_id = None
        if name_it and self.order.cancellations:
            cancellation_id = data.draw(st.sampled_from([c.id for c in self.order.cancellations]))
        self.attempt(
            lambda: self.order.decide_cancellation(
                self.caps, decision=decision, now=LATER, cancellation_id=cancellation_id
            )
        )

    # the channel, telling anything, consistent or not

    @rule(data=st.data())
    def channel_snapshot(self, data: st.DataObject) -> None:
        lines = []
        for line in self.lines:
            counters = data.draw(
                st.fixed_dictionaries(
                    {
                        name: st.integers(0, line.quantity + 1)
                        for name in ("accepted", "rejected", "shipped", "delivered")
                    }
                ),
                label=f"counters {line.id}",
            )
            lines.append(
                L(
                    id=line.id,
                    quantity=line.quantity,
                    fulfilment=line.fulfilment,
                    requires_serial=line.requires_serial,
                    **counters,
                )
            )
        cancellations = data.draw(
            st.lists(
                st.builds(
                    C,
                    id=st.sampled_from(["X1", "X2", "X3"]),
                    state=st.sampled_from(RequestState),
                    initiator=st.sampled_from(Initiator),
                    reason=st.sampled_from(REASONS),
                    lines=st.lists(
                        st.tuples(st.sampled_from([ln.id for ln in self.lines]), st.integers(1, 3)),
                        max_size=2,
                    ).map(tuple),
                ),
                max_size=2,
                unique_by=lambda c: c.id,
            ),
            label="cancellations",
        )
        doc = Doc(
            status=data.draw(st.sampled_from(CHANNEL_STATUSES), label="status"),
            released=data.draw(st.booleans(), label="released"),
            lines=tuple(lines),
            cancellations=tuple(cancellations),
        )
        self.order.apply(doc.snapshot(), caps=self.caps, now=LATER, new_id=self.ids)

    # after every step

    @invariant()
    def invariants_hold(self) -> None:
        check_invariants(self.order)

    def overridden_now(self) -> bool:
        """This step, the channel contradicted a decision of the hub, which yielded and said
        so (``order.attention_required``, code ``channel_overrode_decision``)."""
        return any(
            e.type.value == "order.attention_required"
            and e.data["code"] == "channel_overrode_decision"
            for e in self.order.events[self.events_seen :]
        )

    @invariant()
    def the_lifecycle_moves_forward_unless_the_channel_overrode_the_hub(self) -> None:
        """The status never moves backwards, a terminal order stays put (returns and the
        channel's word aside) and each status is announced once, except where the channel
        contradicted a decision of the hub: then the hub yields, visibly."""
        step = [e.type.value for e in self.order.events[self.events_seen :]]
        overridden = self.overridden_now()
        if overridden:
            self.announced = self.events_seen  # a status may be reached again from here
        self.events_seen = len(self.order.events)
        rank = RANK[self.order.status]
        assert rank >= self.rank or overridden, (self.order.status, self.rank)
        self.rank = rank
        if self.terminal is not None and not overridden:
            assert lifecycle_state(self.order) == self.terminal
            assert set(step) <= AFTER_TERMINAL, step
        self.terminal = lifecycle_state(self.order) if self.order.status.is_terminal else None
        counts = Counter(e.type.value for e in self.order.events[self.announced :])
        assert all(counts[name] <= 1 for name in ONCE), counts


#: ``LIFECYCLE_EXAMPLES=1000 pytest ...`` for a longer, random hunt; the default keeps the
#: file fast and derandomized (CI runs the same examples every time)
SCALE: Final = int(os.environ.get("LIFECYCLE_EXAMPLES", "0"))

MACHINE_SETTINGS: Final = settings(
    max_examples=SCALE or 25,
    stateful_step_count=20,
    deadline=None,
    derandomize=not SCALE,
    database=None if not SCALE else settings.default.database,
    suppress_health_check=[HealthCheck.too_slow],
)


class TopiLifecycle(Lifecycle):
    profile = "topi"


class OctopiaLifecycle(Lifecycle):
    profile = "octopia"


class SpressoLifecycle(Lifecycle):
    profile = "spresso"


TestTopiLifecycle = TopiLifecycle.TestCase
TestTopiLifecycle.settings = MACHINE_SETTINGS
TestOctopiaLifecycle = OctopiaLifecycle.TestCase
TestOctopiaLifecycle.settings = MACHINE_SETTINGS
TestSpressoLifecycle = SpressoLifecycle.TestCase
TestSpressoLifecycle.settings = MACHINE_SETTINGS


# --- 2. monotonic channel histories ------------------------------------------------------


@dataclass
class ChannelLine:
    quantity: int
    accepted: int = 0
    rejected: int = 0
    shipped: int = 0
    delivered: int = 0
    cancelled: int = 0

    @property
    def live(self) -> int:
        return self.quantity - self.rejected - self.cancelled

    @property
    def pending(self) -> int:
        return self.live - self.accepted

    @property
    def unshipped(self) -> int:
        return self.live - self.shipped


@dataclass
class ChannelCancellation:
    id: str
    state: RequestState
    lines: tuple[tuple[str, int], ...]


@dataclass
class Channel:
    """A consistent marketplace: what it shows only ever moves forward."""

    profile: str
    lines: dict[str, ChannelLine]
    released: bool = False
    cancellations: list[ChannelCancellation] = field(default_factory=list)

    @property
    def acceptance(self) -> bool:
        return self.profile != "spresso"

    @property
    def open_request(self) -> ChannelCancellation | None:
        return next((c for c in self.cancellations if c.state is RequestState.REQUESTED), None)

    def doc(self, status: str) -> Doc:
        return Doc(
            status=status,
            released=self.released,
            lines=tuple(
                L(
                    id=line_id,
                    quantity=ln.quantity,
                    accepted=ln.accepted,
                    rejected=ln.rejected,
                    shipped=ln.shipped,
                    delivered=ln.delivered,
                )
                for line_id, ln in self.lines.items()
            ),
            cancellations=tuple(
                C(id=c.id, state=c.state, lines=c.lines) for c in self.cancellations
            ),
        )

    def cancel(self, scope: tuple[tuple[str, int], ...]) -> None:
        wanted = scope or tuple((line_id, ln.unshipped) for line_id, ln in self.lines.items())
        for line_id, quantity in wanted:
            ln = self.lines[line_id]
            n = min(quantity, ln.unshipped)
            from_pending = min(n, ln.pending)
            ln.cancelled += n
            ln.accepted -= n - from_pending

    def step(self, data: st.DataObject) -> bool:
        """One thing happens at the channel; False when the drawn thing cannot happen now."""
        names = list(self.lines)
        kind = data.draw(
            st.sampled_from(
                ["accept", "reject", "release", "ship", "deliver", "request", "decide", "cancel"]
            )
        )
        if all(ln.live == 0 for ln in self.lines.values()):
            return False  # terminal: the channel says nothing new
        ln_id = data.draw(st.sampled_from(names))
        ln = self.lines[ln_id]
        blocked = self.open_request is not None
        if kind == "accept" and self.acceptance and not blocked:
            if self.profile == "topi":  # the whole order, which releases it
                if any(x.accepted for x in self.lines.values()):
                    return False
                for x in self.lines.values():
                    x.accepted += x.pending
                self.released = True
                return any(x.accepted for x in self.lines.values())
            if ln.pending == 0:
                return False
            ln.accepted += data.draw(st.integers(1, ln.pending))
            return True
        if kind == "reject" and self.acceptance and not blocked:
            if self.profile == "topi":
                if any(x.accepted for x in self.lines.values()):
                    return False
                for x in self.lines.values():
                    x.rejected += x.pending
                return True
            if ln.pending == 0:
                return False
            ln.rejected += data.draw(st.integers(1, ln.pending))
            return True
        if kind == "release" and self.profile == "octopia" and not self.released:
            self.released = True
            return True
        if kind == "ship" and self.released and not blocked:
            room = (ln.accepted if self.acceptance else ln.live) - ln.shipped
            if room <= 0:
                return False
            ln.shipped += data.draw(st.integers(1, room))
            return True
        if kind == "deliver" and ln.shipped > ln.delivered:
            ln.delivered += data.draw(st.integers(1, ln.shipped - ln.delivered))
            return True
        if kind in ("request", "cancel") and not blocked:
            scope: tuple[tuple[str, int], ...] = ()
            if data.draw(st.booleans()) and ln.live > 0:
                scope = ((ln_id, data.draw(st.integers(1, ln.live))),)
            state = RequestState.REQUESTED if kind == "request" else RequestState.ACCEPTED
            self.cancellations.append(
                ChannelCancellation(id=f"X{len(self.cancellations) + 1}", state=state, lines=scope)
            )
            if state is RequestState.ACCEPTED:
                self.cancel(scope)
            return True
        if kind == "decide" and (request := self.open_request) is not None:
            if data.draw(st.booleans()):
                request.state = RequestState.ACCEPTED
                self.cancel(request.lines)
            else:
                request.state = RequestState.REFUSED
            return True
        return False


@st.composite
def histories(draw: st.DrawFn, profile: str) -> list[Doc]:
    quantities = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    channel = Channel(
        profile=profile,
        lines={f"L{n}": ChannelLine(quantity=q) for n, q in enumerate(quantities, start=1)},
        released=profile == "spresso",
    )
    history = [channel.doc("v0")]
    data = draw(st.data())
    for _ in range(draw(st.integers(0, 14))):
        if channel.step(data):
            history.append(channel.doc(f"v{len(history)}"))  # each status its own moment
    return history


def converged_state(order: Order) -> tuple[Any, ...]:
    """What the channel's story decides. Whether a decided request is kept as a cancellation
    or as a return depends on when the hub first heard of it, so that is compared by the
    channel's id and state only."""
    return (
        order.status,
        order.released,
        order.channel_status,
        order.cancellation_requested,
        tuple(
            (ln.channel_line_id, ln.accepted, ln.rejected, ln.shipped, ln.delivered, ln.cancelled)
            for ln in order.lines
        ),
        sorted(
            [(c.channel_cancellation_id, c.state.value) for c in order.cancellations]
            + [(r.channel_return_id, r.state.value) for r in order.returns]
        ),
        tuple(f.status for f in order.fulfilments),
    )


def receive_doc(caps: Capabilities, doc: Doc) -> Order:
    return Order.receive(
        doc.snapshot(),
        order_id="O-1",
        channel="testchannel",
        account="main",
        caps=caps,
        now=NOW,
        new_id=Ids(),
    )


def monotone(order: Order) -> list[tuple[int, ...]]:
    return [
        (ln.rejected, ln.shipped, ln.delivered, ln.cancelled, ln.accepted + ln.cancelled)
        for ln in order.lines
    ]


@st.composite
def deliveries(draw: st.DrawFn, profile: str) -> tuple[list[Doc], list[int]]:
    history = draw(histories(profile))
    picks = draw(st.lists(st.integers(0, len(history) - 1), min_size=1, max_size=12))
    return history, picks


def check_convergence(profile: str, history: Sequence[Doc], picks: Sequence[int]) -> None:
    caps = PROFILES[profile]()
    latest = max(picks)
    alone = receive_doc(caps, history[latest])

    order = receive_doc(caps, history[picks[0]])
    check_invariants(order)
    for index in picks[1:]:
        before = monotone(order)
        rank = RANK[order.status]
        order.apply(history[index].snapshot(), caps=caps, now=LATER, new_id=Ids("x"))
        check_invariants(order)
        after = monotone(order)
        assert all(
            a >= b
            for old, new in zip(before, after, strict=True)
            for a, b in zip(new, old, strict=True)
        ), (before, after)
        assert RANK[order.status] >= rank

    assert converged_state(order) == converged_state(alone)
    counts = Counter(e.type.value for e in order.events)
    assert all(counts[name] <= 1 for name in ONCE), counts


HISTORY_SETTINGS: Final = settings(
    max_examples=(SCALE or 25) * 3,
    deadline=None,
    derandomize=not SCALE,
    database=None if not SCALE else settings.default.database,
)


@HISTORY_SETTINGS
@given(deliveries("topi"))
def test_topi_history_converges(case: tuple[list[Doc], list[int]]) -> None:
    check_convergence("topi", *case)


@HISTORY_SETTINGS
@given(deliveries("octopia"))
def test_octopia_history_converges(case: tuple[list[Doc], list[int]]) -> None:
    check_convergence("octopia", *case)


@HISTORY_SETTINGS
@given(deliveries("spresso"))
def test_spresso_history_converges(case: tuple[list[Doc], list[int]]) -> None:
    check_convergence("spresso", *case)
