"""What every part of the Order aggregate shares: its state, reading it, and bookkeeping
(events, status, attention). :class:`~orderhub.domain.order.Order` declares the fields."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orderhub.domain.capabilities import Capabilities
from orderhub.domain.entities import (
    Attention,
    AttentionCode,
    Cancellation,
    ChannelView,
    Fulfilment,
    Invoice,
    Line,
    Return,
    Shipment,
)
from orderhub.domain.errors import (
    InvalidInput,
    OrderIsTerminal,
    TooManyUnits,
    UnknownFulfilment,
    UnknownLine,
)
from orderhub.domain.events import EventType, OrderEvent
from orderhub.domain.snapshots import ChannelSnapshot
from orderhub.domain.status import (
    FULFILMENT_EVENT,
    STATUS_EVENT,
    derive_status,
    fulfilment_status,
)
from orderhub.domain.values import (
    Address,
    Customer,
    FulfilledBy,
    Initiator,
    LineQuantity,
    OrderFulfilledBy,
    OrderStatus,
    Reason,
)

Available = Callable[[Line], int]

DETAIL_FIELDS = (
    "order_number",
    "seller_reference",
    "customer",
    "shipping_address",
    "billing_address",
    "currency",
    "ship_by",
)


class OrderBase:
    if not TYPE_CHECKING:  # slots for the dataclass Order; mypy sees the attributes
        __slots__ = ()

    id: str
    channel: str
    account: str
    channel_order_id: str
    channel_status: str
    acceptance_required: bool
    released: bool
    status: OrderStatus
    lines: list[Line]
    placed_at: datetime
    created_at: datetime
    updated_at: datetime
    order_number: str | None
    seller_reference: str | None
    customer: Customer | None
    shipping_address: Address | None
    billing_address: Address | None
    currency: str | None
    ship_by: datetime | None
    fulfilments: list[Fulfilment]
    shipments: list[Shipment]
    cancellations: list[Cancellation]
    returns: list[Return]
    invoices: list[Invoice]
    extras: dict[str, Any]
    attention: list[Attention]
    channel_view: ChannelView
    capabilities: Capabilities | None
    events: list[OrderEvent]

    # --- reading ---------------------------------------------------------------------

    @property
    def leaf_lines(self) -> list[Line]:
        parents = {line.parent_line_id for line in self.lines if line.parent_line_id}
        return [line for line in self.lines if line.id not in parents]

    @property
    def cancellation_requested(self) -> bool:
        """An open request the seller or channel still has to decide (moot once terminal)."""
        from orderhub.domain.values import RequestState

        if self.status.is_terminal:
            return False
        return any(c.state is RequestState.REQUESTED for c in self.cancellations)

    @property
    def needs_attention(self) -> bool:
        return bool(self.attention)

    @property
    def fulfilled_by(self) -> OrderFulfilledBy:
        """Who ships the order's lines: our warehouse, the channel, or both."""
        kinds = {self._seller_fulfilled(line) for line in self.leaf_lines}
        if kinds == {False}:
            return OrderFulfilledBy.CHANNEL
        return OrderFulfilledBy.MIXED if len(kinds) > 1 else OrderFulfilledBy.SELLER

    def line(self, line_id: str) -> Line:
        for line in self.lines:
            if line.id == line_id:
                if any(child.parent_line_id == line_id for child in self.lines):
                    raise UnknownLine(
                        f"line {line_id} is a bundle: name its sub-lines", rule="bundle-line"
                    )
                return line
        raise UnknownLine(f"order {self.id} has no line {line_id}")

    def fulfilment(self, fulfilment_id: str) -> Fulfilment:
        for fulfilment in self.fulfilments:
            if fulfilment.id == fulfilment_id:
                return fulfilment
        raise UnknownFulfilment(f"order {self.id} has no fulfilment {fulfilment_id}")

    def _seller_fulfilled(self, line: Line) -> bool:
        if line.fulfilment_id is None:
            return True
        return self.fulfilment(line.fulfilment_id).fulfilled_by is FulfilledBy.SELLER

    # --- bookkeeping -----------------------------------------------------------------

    def _emit(self, type_: EventType, **data: Any) -> None:
        self.events.append(OrderEvent(type=type_, data=data))

    def _refresh(self, now: datetime, *, announce: bool = True) -> None:
        """Re-derive status and fulfilment states; announce a status that has an event."""
        before = self.status
        self.status = derive_status(
            self.leaf_lines, acceptance_required=self.acceptance_required, released=self.released
        )
        for fulfilment in self.fulfilments:
            lines = [line for line in self.leaf_lines if line.fulfilment_id == fulfilment.id]
            previous = fulfilment.status
            fulfilment.status = fulfilment_status(lines, previous)
            # only fulfilments the channel names (Spresso's): an order's implicit single
            # fulfilment says nothing its own status events do not
            announce_fulfilment = fulfilment.channel_fulfilment_id is not None
            if (
                announce_fulfilment
                and fulfilment.status is not previous
                and fulfilment.status in FULFILMENT_EVENT
            ):
                self._emit(
                    FULFILMENT_EVENT[fulfilment.status],
                    fulfilment_id=fulfilment.id,
                    channel_fulfilment_id=fulfilment.channel_fulfilment_id,
                    fulfilled_by=fulfilment.fulfilled_by.value,
                    previous_status=previous.value,
                    # the quantities as they stand now, frozen in the event
                    lines=[
                        {
                            "line_id": line.id,
                            "channel_line_id": line.channel_line_id,
                            "quantity": line.quantity,
                            "shipped": line.shipped,
                            "delivered": line.delivered,
                            "cancelled": line.cancelled,
                        }
                        for line in lines
                    ],
                )
        self.updated_at = now
        if announce:
            self._announce_status(before)

    def _announce_status(self, before: OrderStatus) -> None:
        """The event of a status reached since ``before``, if that status has one (never
        ready_to_ship for an order the channel ships: nothing for the warehouse to do)."""
        if self.status is before or self.status not in STATUS_EVENT:
            return
        channel_ships = self.fulfilled_by is OrderFulfilledBy.CHANNEL
        if self.status is OrderStatus.READY_TO_SHIP and channel_ships:
            return
        self._emit(STATUS_EVENT[self.status], previous_status=before.value)

    def _ensure_open(self) -> None:
        if self.status.is_terminal:
            raise OrderIsTerminal(f"order {self.id} is {self.status.value}: nothing can change")

    def _quantities(
        self, requested: Sequence[LineQuantity] | None, available: Available
    ) -> list[tuple[Line, int]]:
        """Resolve requested quantities (default: all available) and check each is possible."""
        if not requested:
            return [(line, available(line)) for line in self.leaf_lines if available(line) > 0]
        resolved: dict[str, tuple[Line, int]] = {}
        for item in requested:
            line = self.line(item.line_id)
            if item.quantity <= 0:
                raise InvalidInput(f"quantity for line {line.id} must be positive")
            prior = resolved.get(line.id, (line, 0))[1]
            quantity = prior + item.quantity
            if quantity > available(line):
                raise TooManyUnits(
                    f"line {line.id}: {quantity} requested, {available(line)} available"
                )
            resolved[line.id] = (line, quantity)
        return list(resolved.values())

    @staticmethod
    def _covers_everything(
        chosen: list[tuple[Line, int]], lines: list[Line], available: Available
    ) -> bool:
        wanted = {line.id: available(line) for line in lines if available(line) > 0}
        return wanted == {line.id: quantity for line, quantity in chosen}

    def _cancel_units(self, scope: Iterable[LineQuantity], *, now: datetime) -> list[LineQuantity]:
        """Cancel unshipped units: first those still awaiting acceptance, then accepted ones.
        Returns how many of them were accepted, per line (to give back on a refusal)."""
        from_accepted = []
        for item in scope:
            line = self.line(item.line_id)
            quantity = min(item.quantity, line.unshipped)
            from_pending = min(quantity, line.pending_acceptance)
            line.cancelled += quantity
            line.accepted -= quantity - from_pending
            if quantity - from_pending:
                from_accepted.append(
                    LineQuantity(line_id=line.id, quantity=quantity - from_pending)
                )
        self.updated_at = now
        return from_accepted

    def _announce_cancellation(
        self,
        reason: Reason,
        initiator: Initiator,
        scope: list[LineQuantity],
        now: datetime,
        before: OrderStatus,
    ) -> None:
        """Emit the cancellation, then the status it led to (``before``: the status when the
        change began)."""
        self._refresh(now, announce=False)
        data = {"reason": reason.value, "initiator": initiator.value, "lines": lines_data(scope)}
        if self.status is OrderStatus.CANCELLED:
            self._emit(EventType.ORDER_CANCELLED, **data)
        else:
            self._emit(EventType.ORDER_LINES_CANCELLED, **data)
            self._announce_status(before)

    def take_details(self, snapshot: ChannelSnapshot, *, fill_only: bool = False) -> bool:
        """Take the order's details from the snapshot (``fill_only``: only those the order
        has none of yet); True when one of them changed."""
        changed = False
        for name in DETAIL_FIELDS:
            value = getattr(snapshot, name)
            current = getattr(self, name)
            if value is not None and value != current and not (fill_only and current is not None):
                setattr(self, name, value)
                changed = True
        if fill_only:
            extras = {**snapshot.extras, **self.extras}
        else:
            extras = {**self.extras, **snapshot.extras}
        if extras != self.extras:
            self.extras = extras
            changed = True
        return changed

    # --- attention -------------------------------------------------------------------

    def raise_attention(
        self, code: AttentionCode, detail: str, *, now: datetime, ref: str | None = None
    ) -> None:
        """Say that a person must look at this order: one open reason per code and ``ref``
        (raised again, it takes the new detail), one event each time it is raised."""
        for open_reason in self.attention:
            if open_reason.code is code and open_reason.ref == ref:
                open_reason.detail = detail
                break
        else:
            self.attention.append(Attention(code=code, detail=detail, raised_at=now, ref=ref))
        self.updated_at = now
        self._emit(
            EventType.ORDER_ATTENTION_REQUIRED,
            code=code.value,
            detail=detail,
            ref=ref,
            status=self.status.value,
        )

    def clear_attention(
        self, *, now: datetime, code: AttentionCode | None = None, ref: str | None = None
    ) -> list[Attention]:
        """Resolve the open reasons matching ``code`` and ``ref`` (None: any)."""
        cleared = [
            reason
            for reason in self.attention
            if (code is None or reason.code is code) and (ref is None or reason.ref == ref)
        ]
        if not cleared:
            return []
        self.attention = [reason for reason in self.attention if reason not in cleared]
        self.updated_at = now
        for reason in cleared:
            self._emit(
                EventType.ORDER_ATTENTION_CLEARED,
                code=reason.code.value,
                ref=reason.ref,
                status=self.status.value,
            )
        return cleared


def lines_data(items: Iterable[LineQuantity]) -> list[dict[str, Any]]:
    return [{"line_id": i.line_id, "quantity": i.quantity} for i in items]
