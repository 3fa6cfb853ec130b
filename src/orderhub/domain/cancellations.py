"""Cancellations and returns a channel reports, merged into the order: a request opens,
a decision stays decided, a cancellation after shipment is a return, the seller's own
cancellation echoed back by the channel is recognised, and a cancellation of lines the hub
does not know never widens to the whole order."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from orderhub.domain.base import lines_data
from orderhub.domain.commands import Decisions, return_data
from orderhub.domain.entities import (
    AttentionCode,
    Cancellation,
    ChannelCancellationView,
    Line,
    Return,
)
from orderhub.domain.events import EventType
from orderhub.domain.snapshots import CancellationSnapshot
from orderhub.domain.values import Decision, Initiator, LineQuantity, RequestState


class ChannelCancellations(Decisions):
    if not TYPE_CHECKING:  # slots for the dataclass Order; mypy sees the attributes
        __slots__ = ()

    def _merge_cancellation(
        self,
        cs: CancellationSnapshot,
        by_channel_line: dict[str, Line],
        now: datetime,
        new_id: Any,
    ) -> bool:
        key = cs.channel_cancellation_id
        known_return = next((r for r in self.returns if r.channel_return_id == key), None)
        if known_return is not None:
            if known_return.state is RequestState.REQUESTED and cs.state is not known_return.state:
                known_return.state = cs.state
                return True
            return False
        existing = next((c for c in self.cancellations if c.channel_cancellation_id == key), None)
        existing = existing or self._own_echo(cs, by_channel_line)
        if existing is not None:
            return self._merge_known_cancellation(existing, cs, now)
        unknown = [cid for cid, _ in cs.lines if cid not in by_channel_line]
        if unknown:
            self.raise_attention(
                AttentionCode.CHANNEL_EDITED_LINES,
                f"{self.channel} reports cancellation {key} of lines the hub does not know "
                f"({', '.join(unknown)}): only the known ones are cancelled",
                now=now,
                ref=key,
            )
        scope = [
            LineQuantity(line_id=by_channel_line[cid].id, quantity=q)
            for cid, q in cs.lines
            if cid in by_channel_line
        ]
        if cs.lines and not scope:
            return True  # nothing of ours: never read as "the whole order"
        touched = scope or [
            LineQuantity(line_id=line.id, quantity=line.live) for line in self.leaf_lines
        ]
        unshipped = sum(min(i.quantity, self.line(i.line_id).unshipped) for i in touched)
        if unshipped == 0 and any(self.line(i.line_id).shipped for i in touched):
            # after shipment a cancellation is a return (topi: "handled as a return")
            ret = Return(
                id=new_id(),
                initiator=cs.initiator,
                reason=cs.reason,
                state=cs.state,
                requested_at=now,
                lines=[
                    LineQuantity(line_id=i.line_id, quantity=q)
                    for i in touched
                    if (q := min(i.quantity, self.line(i.line_id).shipped)) > 0
                ],
                channel_reason=cs.channel_reason,
                channel_return_id=cs.channel_cancellation_id,
            )
            self.returns.append(ret)
            self._emit(EventType.ORDER_RETURN_REQUESTED, **return_data(ret))
            caps = self.capabilities
            if cs.state is RequestState.ACCEPTED and caps and caps.attention_on_late_cancellation:
                self.raise_attention(
                    AttentionCode.CANCELLED_AFTER_SHIPMENT,
                    f"{self.channel} cancelled {cs.channel_cancellation_id} after everything "
                    "had shipped: recorded as a return, nothing is undone",
                    now=now,
                    ref=cs.channel_cancellation_id,
                )
            return True
        self._cancelled_after_shipment(cs, touched, now)
        cancellation = Cancellation(
            id=new_id(),
            initiator=cs.initiator,
            reason=cs.reason,
            state=RequestState.REQUESTED,
            requested_at=now,
            lines=scope,
            channel_reason=cs.channel_reason,
            channel_cancellation_id=cs.channel_cancellation_id,
        )
        self.cancellations.append(cancellation)
        if cs.state is RequestState.REQUESTED:
            self._emit(
                EventType.ORDER_CANCELLATION_REQUESTED,
                cancellation_id=cancellation.id,
                initiator=cs.initiator.value,
                reason=cs.reason.value,
                lines=lines_data(scope),
            )
        else:
            self._decide(cancellation, _decision(cs.state), now)
        return True

    def _cancelled_after_shipment(
        self, cs: CancellationSnapshot, touched: list[LineQuantity], now: datetime
    ) -> None:
        """A cancellation the channel already carried out that covers units that had
        shipped besides units that had not (Spresso's ``order_cancelled`` after a first
        ``in_transit``): the unshipped ones are cancelled, the shipped ones are not undone
        and no return is recorded for them, so a person must look (intercept, refund).
        A cancellation of shipped units only is a return request, which the warehouse
        sees as such."""
        if cs.state is not RequestState.ACCEPTED:
            return
        gone = sum(
            max(0, i.quantity - self.line(i.line_id).unshipped)
            for i in touched
            if self.line(i.line_id).shipped
        )
        if gone:
            self.raise_attention(
                AttentionCode.CANCELLED_AFTER_SHIPMENT,
                f"{self.channel} cancelled {cs.channel_cancellation_id} after {gone} of its "
                "units had shipped: nothing is undone, the parcels are on their way",
                now=now,
                ref=cs.channel_cancellation_id,
            )

    def _own_echo(
        self, cs: CancellationSnapshot, by_channel_line: dict[str, Line]
    ) -> Cancellation | None:
        """The seller's own cancellation the channel now lists under its id (the same
        units, not yet linked to a channel id): one cancellation, not a second one."""
        wanted = _scope_of(cs, by_channel_line)
        for cancellation in self.cancellations:
            if cancellation.initiator is not Initiator.SELLER:
                continue
            if cancellation.channel_cancellation_id is not None:
                continue
            mine = sorted((i.line_id, i.quantity) for i in cancellation.lines)
            if mine == wanted:
                cancellation.channel_cancellation_id = cs.channel_cancellation_id
                return cancellation
        return None

    def _merge_known_cancellation(
        self, existing: Cancellation, cs: CancellationSnapshot, now: datetime
    ) -> bool:
        if existing.state is RequestState.REQUESTED and cs.state is not RequestState.REQUESTED:
            self._decide(existing, _decision(cs.state), now)
            return True
        if (
            existing.initiator is Initiator.SELLER
            and existing.state is RequestState.ACCEPTED
            and cs.state is RequestState.REFUSED
        ):  # the channel refused the seller's cancellation: its units come back
            existing.state = RequestState.REFUSED
            self._restore_units(existing)
            self.raise_attention(
                AttentionCode.CHANNEL_OVERRODE_DECISION,
                f"{self.channel} refused cancellation {existing.id}: its units are back",
                now=now,
                ref=existing.id,
            )
            return True
        return False


def _scope_of(
    cs: CancellationSnapshot | ChannelCancellationView, by_channel_line: dict[str, Line]
) -> list[tuple[str, int]]:
    return sorted((by_channel_line[cid].id, q) for cid, q in cs.lines if cid in by_channel_line)


def _decision(state: RequestState) -> Decision:
    return Decision.ACCEPT if state is RequestState.ACCEPTED else Decision.REFUSE
