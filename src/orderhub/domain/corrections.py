"""When the channel refuses a decision: a decision is not a fact until the channel confirms
it. A command that failed for good undoes the decision it carried (accept, reject, cancel,
a decision on a cancellation request), the order takes the channel's last word again, and
an ``attention`` reason names the command until an operator retries or abandons it.
Physical facts (units shipped or delivered) are never undone: they happened.

An operator's retry of such a command first makes the decision again, through the same
checks as the warehouse API (:meth:`Corrections.redo_decision`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orderhub.domain.capabilities import Capabilities
from orderhub.domain.entities import AttentionCode
from orderhub.domain.errors import InvalidTransition
from orderhub.domain.merge import ChannelMerge
from orderhub.domain.values import Decision, LineQuantity, Reason, RequestState

DECISION_KINDS = frozenset({"accept", "reject", "cancel", "decide_cancellation"})
"""Command kinds that carry a decision of the seller (others carry facts, or nothing)."""


class Corrections(ChannelMerge):
    if not TYPE_CHECKING:  # slots for the dataclass Order; mypy sees the attributes
        __slots__ = ()

    def decision_refused(
        self,
        *,
        kind: str,
        payload: Mapping[str, Any],
        ref: str,
        error: str,
        now: datetime,
        undo: bool = True,
    ) -> bool:
        """The command ``ref`` of ``kind`` failed for good. If the channel refused it
        (``undo``), undo the decision it carried, if any; raise attention either way. True
        when a decision was undone."""
        before = self.status
        undone = self.undo_decision(kind=kind, payload=payload, now=now) if undo else False
        self._refresh(now, announce=False)
        detail = f"{kind} failed at {self.channel}: {error}"
        if undone:
            detail += "; the hub undid the decision and shows the channel's state"
        self.raise_attention(AttentionCode.COMMAND_FAILED, detail, now=now, ref=ref)
        self._announce_status(before)
        return undone

    def undo_decision(self, *, kind: str, payload: Mapping[str, Any], now: datetime) -> bool:
        """Take back the decision a command of ``kind`` carried (it will never reach the
        channel, or the channel refused it) and take the channel's last word again. True
        when something was undone; facts (shipments, deliveries) are never undone."""
        undone = False
        if kind == "accept":
            undone = self._take_back(payload, "accepted")
        elif kind == "reject":
            undone = self._take_back(payload, "rejected")
        elif kind in ("cancel", "decide_cancellation"):
            undone = self._reopen_cancellation(str(payload.get("cancellation_id", "")), kind)
        if undone:
            self.rebase_on_channel(now)
            self._refresh(now)
        return undone

    def _take_back(self, payload: Mapping[str, Any], counter: str) -> bool:
        undone = False
        for item in _lines(payload):
            line = self.line(item.line_id)
            if counter == "accepted":
                back = max(0, min(item.quantity, line.accepted - line.shipped))
                line.accepted -= back
            else:  # the units the channel itself reported rejected stay rejected
                known = self.channel_view.lines.get(line.channel_line_id)
                channel_rejected = known.rejected if known else 0
                back = max(0, min(item.quantity, line.rejected - channel_rejected))
                line.rejected -= back
            undone |= back > 0
        return undone

    def _reopen_cancellation(self, cancellation_id: str, kind: str) -> bool:
        for ret in self.returns:
            if ret.id == cancellation_id and ret.state is not RequestState.REFUSED:
                ret.state = RequestState.REFUSED
                return True
        cancellation = next((c for c in self.cancellations if c.id == cancellation_id), None)
        if cancellation is None:
            return False
        was_accepted = cancellation.state is RequestState.ACCEPTED
        if kind == "cancel":  # the seller's own cancellation: it did not happen
            cancellation.state = RequestState.REFUSED
        else:  # a decision on a request: the request is open again
            cancellation.state = RequestState.REQUESTED
            cancellation.decided_at = None
        if was_accepted:
            self._restore_units(cancellation)
        return True

    def link_channel_ids(
        self, *, kind: str, payload: Mapping[str, Any], ids: Mapping[str, str]
    ) -> bool:
        """Keep the ids the channel gave what a command created (its answer said), so
        that the channel's later echo of it is recognised. True when one was stored."""
        linked = False
        shipment_id = ids.get("shipment")
        if kind == "ship" and shipment_id:
            for shipment in self.shipments:
                if shipment.id == payload.get("shipment_id") and not shipment.channel_shipment_id:
                    shipment.channel_shipment_id = shipment_id
                    linked = True
        cancellation_id = ids.get("cancellation")
        if kind in ("cancel", "decide_cancellation") and cancellation_id:
            for cancellation in self.cancellations:
                if cancellation.id == payload.get("cancellation_id") and (
                    not cancellation.channel_cancellation_id
                ):
                    cancellation.channel_cancellation_id = cancellation_id
                    linked = True
        return linked

    def redo_decision(
        self, *, kind: str, payload: Mapping[str, Any], caps: Capabilities, now: datetime
    ) -> None:
        """Make an undone decision again (an operator retries its command); the domain's
        usual checks apply, so a decision the order no longer allows is refused here."""
        lines = _lines(payload) or None
        if kind == "accept":
            self.accept(caps, now=now, lines=lines)
        elif kind == "reject":
            self.reject(caps, reason=Reason(payload["reason"]), now=now, lines=lines)
        elif kind == "cancel":
            cancellation_id = str(payload["cancellation_id"])
            self.cancellations = [c for c in self.cancellations if c.id != cancellation_id]
            self.returns = [r for r in self.returns if r.id != cancellation_id]
            self.cancel(
                caps,
                reason=Reason(payload["reason"]),
                cancellation_id=cancellation_id,
                now=now,
                lines=None if payload.get("whole_order") else lines,
            )
        elif kind == "decide_cancellation":
            self.decide_cancellation(
                caps,
                decision=Decision(payload["decision"]),
                now=now,
                cancellation_id=str(payload["cancellation_id"]),
            )
        else:
            raise InvalidTransition(f"a {kind} command carries no decision to make again")


def _lines(payload: Mapping[str, Any]) -> Sequence[LineQuantity]:
    return [
        LineQuantity(line_id=str(item["line_id"]), quantity=int(item["quantity"]))
        for item in payload.get("lines") or ()
    ]
