"""The warehouse's decisions on an order: accept, reject, cancel, decide a cancellation
request. Each is checked against the channel's :class:`Capabilities` before anything
changes; a refusal names its rule."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orderhub.domain.base import OrderBase, lines_data
from orderhub.domain.capabilities import Capabilities, Scope
from orderhub.domain.entities import Cancellation, Return
from orderhub.domain.errors import (
    InvalidInput,
    InvalidTransition,
    NotSupportedByChannel,
    UnknownCancellation,
)
from orderhub.domain.events import EventType
from orderhub.domain.values import (
    Decision,
    Initiator,
    LineQuantity,
    OrderStatus,
    Reason,
    RequestState,
)


class Decisions(OrderBase):
    if not TYPE_CHECKING:  # slots for the dataclass Order; mypy sees the attributes
        __slots__ = ()

    def accept(
        self, caps: Capabilities, *, now: datetime, lines: Sequence[LineQuantity] | None = None
    ) -> list[LineQuantity]:
        self._ensure_open()
        if caps.acceptance is Scope.NONE or not self.acceptance_required:
            raise NotSupportedByChannel(
                caps.explain("accept", f"{self.channel} orders arrive accepted: nothing to accept"),
                rule="acceptance-not-supported",
            )
        chosen = self._quantities(lines, lambda line: line.pending_acceptance)
        if not chosen:
            raise InvalidTransition(
                f"order {self.id} has nothing awaiting acceptance", rule="nothing-to-accept"
            )
        if caps.acceptance is Scope.ORDER and not self._covers_everything(
            chosen, self.leaf_lines, lambda line: line.pending_acceptance
        ):
            raise NotSupportedByChannel(
                f"{self.channel} accepts whole orders only", rule="acceptance-whole-order-only"
            )
        for line, quantity in chosen:
            line.accepted += quantity
        if caps.release_on_accept:
            self.released = True
        accepted = [LineQuantity(line_id=line.id, quantity=q) for line, q in chosen]
        self._emit(EventType.ORDER_ACCEPTED, lines=lines_data(accepted))
        self._refresh(now)
        return accepted

    def reject(
        self,
        caps: Capabilities,
        *,
        reason: Reason,
        now: datetime,
        lines: Sequence[LineQuantity] | None = None,
    ) -> list[LineQuantity]:
        self._ensure_open()
        if caps.rejection is Scope.NONE or not self.acceptance_required:
            raise NotSupportedByChannel(
                caps.explain("reject", f"{self.channel} has no rejection"),
                rule="rejection-not-supported",
            )
        if caps.rejection is Scope.ORDER and any(line.accepted for line in self.leaf_lines):
            raise InvalidTransition(
                caps.explain(
                    "reject", f"order {self.id} is accepted: it can no longer be rejected"
                ),
                rule="rejection-after-acceptance",
            )
        chosen = self._quantities(lines, lambda line: line.pending_acceptance)
        if not chosen:
            raise InvalidTransition(
                f"order {self.id} has nothing awaiting acceptance to reject",
                rule="nothing-to-reject",
            )
        if caps.rejection is Scope.ORDER and not self._covers_everything(
            chosen, self.leaf_lines, lambda line: line.pending_acceptance
        ):
            raise NotSupportedByChannel(
                f"{self.channel} rejects whole orders only", rule="rejection-whole-order-only"
            )
        before = self.status
        for line, quantity in chosen:
            line.rejected += quantity
        rejected = [LineQuantity(line_id=line.id, quantity=q) for line, q in chosen]
        self._refresh(now, announce=False)
        if self.status is OrderStatus.REJECTED:
            self._emit(EventType.ORDER_REJECTED, reason=reason.value, lines=lines_data(rejected))
        else:
            self._emit(
                EventType.ORDER_LINES_REJECTED, reason=reason.value, lines=lines_data(rejected)
            )
            # what is left may now be ready, or (after a partial shipment) all shipped
            self._announce_status(before)
        return rejected

    def cancel(
        self,
        caps: Capabilities,
        *,
        reason: Reason,
        cancellation_id: str,
        now: datetime,
        lines: Sequence[LineQuantity] | None = None,
    ) -> Cancellation | Return:
        """The seller cancels. After shipment the channel treats it as a refund: a return."""
        self._ensure_open()
        if caps.seller_cancellation is Scope.NONE:
            raise NotSupportedByChannel(
                caps.explain("cancel", f"{self.channel} has no seller cancellation"),
                rule="seller-cancellation-not-supported",
            )
        if caps.cancellation_reasons:
            allowed = caps.cancellation_reasons.get(reason)
            if allowed is None:
                raise InvalidInput(
                    f"{self.channel} takes no cancellation with reason {reason.value}",
                    rule="cancellation-reason-not-accepted",
                )
            if self.status not in allowed:
                raise InvalidTransition(
                    f"{self.channel} allows reason {reason.value} only when the order is "
                    + ", ".join(sorted(s.value for s in allowed)),
                    rule="cancellation-reason-not-allowed-in-status",
                )
        if any(not self._seller_fulfilled(line) for line in self.leaf_lines):
            raise NotSupportedByChannel(
                f"order {self.id} has lines fulfilled by the channel: "
                f"{self.channel} refuses seller cancellation",
                rule="cancellation-of-channel-fulfilled-order",
            )
        if lines and caps.seller_cancellation is Scope.ORDER:
            raise NotSupportedByChannel(
                f"{self.channel} cancels whole orders only", rule="cancellation-whole-order-only"
            )
        if self.status in (OrderStatus.SHIPPED, OrderStatus.DELIVERED):
            chosen = self._quantities(lines, lambda line: line.shipped)
            refund = Return(
                id=cancellation_id,
                initiator=Initiator.SELLER,
                reason=reason,
                state=RequestState.ACCEPTED,
                requested_at=now,
                lines=[LineQuantity(line_id=line.id, quantity=q) for line, q in chosen],
            )
            self.returns.append(refund)
            self._emit(EventType.ORDER_RETURN_REQUESTED, **return_data(refund))
            self.updated_at = now
            return refund
        chosen = self._quantities(lines, lambda line: line.unshipped)
        if not chosen:
            raise InvalidTransition(f"order {self.id} has nothing left to cancel")
        before = self.status
        scope = [LineQuantity(line_id=line.id, quantity=q) for line, q in chosen]
        from_accepted = self._cancel_units(scope, now=now)
        cancellation = Cancellation(
            id=cancellation_id,
            initiator=Initiator.SELLER,
            reason=reason,
            state=RequestState.ACCEPTED,
            requested_at=now,
            decided_at=now,
            lines=scope if lines else [],
            units=scope,
            from_accepted=from_accepted,
        )
        self.cancellations.append(cancellation)
        self._announce_cancellation(reason, Initiator.SELLER, scope, now, before)
        return cancellation

    def decide_cancellation(
        self,
        caps: Capabilities,
        *,
        decision: Decision,
        now: datetime,
        cancellation_id: str | None = None,
        lines: Sequence[LineQuantity] | None = None,
        part_id: str | None = None,
    ) -> Cancellation:
        """Decide an open request, whole or (``lines``, where the channel decides line by
        line) for some of its lines: those are split off as a request of their own
        (``part_id``, the channel's request id kept) and decided; the rest stays open."""
        self._ensure_open()
        if not caps.cancellation_requests:
            raise NotSupportedByChannel(
                f"{self.channel} does not let the seller decide cancellation requests",
                rule="cancellation-decision-not-supported",
            )
        if lines and caps.cancellation_decision is not Scope.LINE:
            raise NotSupportedByChannel(
                caps.explain(
                    "decide_cancellation",
                    f"{self.channel} decides a cancellation request whole for this order",
                ),
                rule="cancellation-decision-whole-only",
            )
        request = self._open_request(cancellation_id)
        if lines:
            request = self._split_request(request, lines, part_id or f"{request.id}:part")
        self._decide(request, decision, now)
        return request

    def refuse_by_shipment(
        self,
        caps: Capabilities,
        items: Sequence[LineQuantity],
        *,
        now: datetime,
        new_id: Callable[[], str],
    ) -> list[Cancellation]:
        """Where the channel takes a refusal as a shipment (``refusal_ships``: Cdiscount
        lets the seller ship a line a customer asked to cancel), shipping units of an open
        customer request refuses that part of it; the rest of the request stays open."""
        if not caps.refusal_ships:
            return []
        shipped: dict[str, int] = {}
        for item in items:
            shipped[item.line_id] = shipped.get(item.line_id, 0) + item.quantity
        requests = [
            request
            for request in self.cancellations
            if request.state is RequestState.REQUESTED and request.initiator is Initiator.CUSTOMER
        ]
        asked = {request.id: self._asked(request) for request in requests}
        # the units of each line the parcel had to take from those a customer asked to
        # cancel: what it carries beyond the line's unshipped units nobody asked about
        taken: dict[str, int] = {}
        for line_id, quantity in shipped.items():
            line = self.line(line_id)
            asked_units = sum(a.get(line_id, 0) for a in asked.values())
            free = max(0, line.unshipped + quantity - asked_units)  # before this parcel
            taken[line_id] = min(asked_units, max(0, quantity - free))
        refused = []
        for request in requests:  # oldest first; each unit refuses one request, once
            touched = []
            for line_id, units in taken.items():
                part = min(units, asked[request.id].get(line_id, 0))
                if part > 0:
                    touched.append(LineQuantity(line_id=line_id, quantity=part))
                    taken[line_id] -= part
            if touched:
                split = self._split_request(request, touched, new_id())
                self._decide(split, Decision.REFUSE, now)
                refused.append(split)
        return refused

    def _asked(self, request: Cancellation) -> dict[str, int]:
        """The units of each line ``request`` asks to cancel (all live ones: the order)."""
        return {i.line_id: i.quantity for i in request.lines} or {
            line.id: line.live for line in self.leaf_lines
        }

    def _split_request(
        self, request: Cancellation, lines: Sequence[LineQuantity], part_id: str
    ) -> Cancellation:
        """The part of ``request`` that ``lines`` names (the request itself when they name
        all of it); checked before anything changes."""
        asked = {
            i.line_id: i.quantity
            for i in request.lines
            or [LineQuantity(line_id=line.id, quantity=line.live) for line in self.leaf_lines]
        }
        wanted: dict[str, int] = {}
        for item in lines:
            self.line(item.line_id)  # an unknown line is a 404, as everywhere
            wanted[item.line_id] = wanted.get(item.line_id, 0) + item.quantity
        for line_id, quantity in wanted.items():
            if quantity < 1 or quantity > asked.get(line_id, 0):
                raise InvalidInput(
                    f"cancellation {request.id} asks for {asked.get(line_id, 0)} units of line "
                    f"{line_id}, not {quantity}",
                    rule="line-not-in-cancellation-request",
                )
        rest = {k: q - wanted.get(k, 0) for k, q in asked.items() if q - wanted.get(k, 0) > 0}
        if not rest:
            return request
        request.lines = [LineQuantity(line_id=k, quantity=q) for k, q in rest.items()]
        part = Cancellation(
            id=part_id,
            initiator=request.initiator,
            reason=request.reason,
            state=RequestState.REQUESTED,
            requested_at=request.requested_at,
            lines=[LineQuantity(line_id=k, quantity=q) for k, q in wanted.items()],
            channel_reason=request.channel_reason,
            channel_cancellation_id=request.channel_cancellation_id,
        )
        self.cancellations.append(part)
        return part

    def _open_request(self, cancellation_id: str | None) -> Cancellation:
        open_requests = [c for c in self.cancellations if c.state is RequestState.REQUESTED]
        if cancellation_id is not None:
            for cancellation in self.cancellations:
                if cancellation.id == cancellation_id:
                    if cancellation.state is not RequestState.REQUESTED:
                        raise InvalidTransition(
                            f"cancellation {cancellation_id} is already {cancellation.state.value}",
                            rule="cancellation-already-decided",
                        )
                    return cancellation
            raise UnknownCancellation(f"order {self.id} has no cancellation {cancellation_id}")
        if not open_requests:
            raise InvalidTransition(
                f"order {self.id} has no open cancellation request", rule="no-cancellation-request"
            )
        if len(open_requests) > 1:
            raise InvalidInput(
                "several cancellation requests are open: name one", rule="ambiguous-cancellation"
            )
        return open_requests[0]

    def _decide(self, request: Cancellation, decision: Decision, now: datetime) -> None:
        request.decided_at = now
        if decision is Decision.REFUSE:
            request.state = RequestState.REFUSED
            self._emit(EventType.ORDER_CANCELLATION_REFUSED, cancellation_id=request.id)
            self.updated_at = now
            return
        request.state = RequestState.ACCEPTED
        before = self.status
        wanted = request.lines or [
            LineQuantity(line_id=line.id, quantity=line.unshipped)
            for line in self.leaf_lines
            if line.unshipped > 0
        ]
        scope = [
            LineQuantity(line_id=i.line_id, quantity=q)
            for i in wanted
            if (q := min(i.quantity, self.line(i.line_id).unshipped)) > 0
        ]
        if not scope:  # everything it covered shipped (or went) meanwhile: nothing to cancel
            self._emit(
                EventType.ORDER_UPDATED,
                channel_status=self.channel_status,
                cancellation_id=request.id,
                cancellation_state=request.state.value,
            )
            self.updated_at = now
            return
        request.units = scope
        request.from_accepted = self._cancel_units(scope, now=now)
        self._announce_cancellation(request.reason, request.initiator, scope, now, before)

    def _restore_units(self, cancellation: Cancellation) -> None:
        for item in cancellation.units:
            line = self.line(item.line_id)
            line.cancelled -= min(item.quantity, line.cancelled)
        for item in cancellation.from_accepted:
            line = self.line(item.line_id)
            line.accepted += min(item.quantity, line.pending_acceptance)
        cancellation.units = []
        cancellation.from_accepted = []


def return_data(ret: Return) -> dict[str, Any]:
    return {
        "return_id": ret.id,
        "initiator": ret.initiator.value,
        "reason": ret.reason.value,
        "state": ret.state.value,
        "lines": lines_data(ret.lines),
    }
