"""The Order aggregate.

Every change goes through a method of :class:`Order`; each method checks the rule it
depends on, changes the line counters, re-derives the status and records events. The
status is never set by hand.

Two kinds of change arrive:

* seller commands from the warehouse (accept, reject, ship, deliver, cancel, decide a
  cancellation request), checked against the channel's :class:`Capabilities`;
* channel observations (:class:`ChannelSnapshot`), merged monotonically: each counter
  only grows to what the channel has seen, so duplicated and reordered updates converge
  and a late update never moves an order backwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orderhub.domain.capabilities import Capabilities, DeliveryConfirmation, Scope
from orderhub.domain.errors import (
    DuplicateSerialNumber,
    InvalidInput,
    InvalidTransition,
    NotSupportedByChannel,
    OrderIsTerminal,
    SerialNumberRequired,
    TooManyUnits,
    UnknownCancellation,
    UnknownFulfilment,
    UnknownLine,
)
from orderhub.domain.events import EventType, OrderEvent
from orderhub.domain.values import (
    Address,
    Customer,
    Decision,
    FulfilledBy,
    FulfilmentStatus,
    Initiator,
    LineQuantity,
    OrderStatus,
    Price,
    Reason,
    RequestState,
)


@dataclass(kw_only=True, slots=True)
class Unit:
    """One physical item of a line (topi asset), with its own channel id."""

    channel_unit_id: str
    serial_number: str | None = None
    shipped: bool = False


@dataclass(kw_only=True, slots=True)
class Line:
    id: str
    channel_line_id: str
    sku: str | None
    title: str
    quantity: int
    unit_price: Price | None = None
    parent_line_id: str | None = None
    fulfilment_id: str | None = None
    requires_serial_number: bool = False
    units: list[Unit] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    accepted: int = 0
    rejected: int = 0
    shipped: int = 0
    delivered: int = 0
    cancelled: int = 0

    @property
    def live(self) -> int:
        """Units neither rejected nor cancelled."""
        return self.quantity - self.rejected - self.cancelled

    @property
    def pending_acceptance(self) -> int:
        return self.quantity - self.accepted - self.rejected - self.cancelled

    @property
    def unshipped(self) -> int:
        return self.live - self.shipped


@dataclass(kw_only=True, slots=True)
class Fulfilment:
    id: str
    channel_fulfilment_id: str | None = None
    fulfilled_by: FulfilledBy = FulfilledBy.SELLER
    status: FulfilmentStatus = FulfilmentStatus.OPEN
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class ShipmentItem:
    line_id: str
    quantity: int
    serial_numbers: tuple[str, ...] = ()


@dataclass(kw_only=True, slots=True)
class Shipment:
    id: str
    fulfilment_id: str | None
    carrier: str | None
    tracking_number: str | None
    tracking_url: str | None
    items: list[ShipmentItem]
    shipped_at: datetime
    channel_shipment_id: str | None = None


@dataclass(kw_only=True, slots=True)
class Cancellation:
    id: str
    initiator: Initiator
    reason: Reason
    state: RequestState
    requested_at: datetime
    lines: list[LineQuantity] = field(default_factory=list)  # empty: the whole order
    channel_reason: str | None = None
    channel_cancellation_id: str | None = None
    decided_at: datetime | None = None


@dataclass(kw_only=True, slots=True)
class Return:
    id: str
    initiator: Initiator
    reason: Reason
    state: RequestState
    requested_at: datetime
    lines: list[LineQuantity] = field(default_factory=list)
    channel_reason: str | None = None
    channel_return_id: str | None = None


# --- what a channel observes -------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class LineSnapshot:
    """A line as the channel sends it, with the counters the channel has seen so far."""

    channel_line_id: str
    sku: str | None
    title: str
    quantity: int
    unit_price: Price | None = None
    parent_channel_line_id: str | None = None
    channel_fulfilment_id: str | None = None
    requires_serial_number: bool = False
    units: tuple[Unit, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)
    accepted: int = 0
    rejected: int = 0
    shipped: int = 0
    delivered: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class FulfilmentSnapshot:
    channel_fulfilment_id: str
    fulfilled_by: FulfilledBy = FulfilledBy.SELLER
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class CancellationSnapshot:
    """A cancellation the channel reports. ``state`` requested: the seller (or channel) decides."""

    channel_cancellation_id: str
    initiator: Initiator
    reason: Reason
    state: RequestState
    channel_reason: str | None = None
    lines: tuple[tuple[str, int], ...] = ()  # (channel_line_id, quantity); empty: whole order


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelSnapshot:
    """Everything an adapter knows about one order at one moment, in canonical terms."""

    channel_order_id: str
    channel_status: str
    lines: tuple[LineSnapshot, ...]
    order_number: str | None = None
    seller_reference: str | None = None
    customer: Customer | None = None
    shipping_address: Address | None = None
    billing_address: Address | None = None
    currency: str | None = None
    placed_at: datetime | None = None
    ship_by: datetime | None = None
    fulfilments: tuple[FulfilmentSnapshot, ...] = ()
    released: bool = False  # the channel allows dispatch
    cancellations: tuple[CancellationSnapshot, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)


# --- the aggregate -------------------------------------------------------------------------

_STATUS_EVENT = {
    OrderStatus.READY_TO_SHIP: EventType.ORDER_READY_TO_SHIP,
    OrderStatus.SHIPPED: EventType.ORDER_SHIPPED,
    OrderStatus.DELIVERED: EventType.ORDER_DELIVERED,
    OrderStatus.REJECTED: EventType.ORDER_REJECTED,
    OrderStatus.CANCELLED: EventType.ORDER_CANCELLED,
}


def derive_status(
    lines: Iterable[Line], *, acceptance_required: bool, released: bool
) -> OrderStatus:
    """The canonical status, computed from the leaf lines' counters only."""
    total = live = accepted = shipped = delivered = cancelled = 0
    for line in lines:
        total += line.quantity
        live += line.live
        accepted += line.accepted
        shipped += line.shipped
        delivered += line.delivered
        cancelled += line.cancelled
    if live == 0 and total > 0:
        return OrderStatus.CANCELLED if cancelled > 0 else OrderStatus.REJECTED
    if shipped == 0:
        if acceptance_required and accepted < live:
            return OrderStatus.AWAITING_ACCEPTANCE
        if not released:
            return OrderStatus.ACCEPTED
        return OrderStatus.READY_TO_SHIP
    if shipped < live:
        return OrderStatus.PARTIALLY_SHIPPED
    if delivered < shipped:
        return OrderStatus.SHIPPED
    return OrderStatus.DELIVERED


@dataclass(kw_only=True, slots=True)
class Order:
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
    order_number: str | None = None
    seller_reference: str | None = None
    customer: Customer | None = None
    shipping_address: Address | None = None
    billing_address: Address | None = None
    currency: str | None = None
    ship_by: datetime | None = None
    fulfilments: list[Fulfilment] = field(default_factory=list)
    shipments: list[Shipment] = field(default_factory=list)
    cancellations: list[Cancellation] = field(default_factory=list)
    returns: list[Return] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    events: list[OrderEvent] = field(default_factory=list)

    # --- reading ---------------------------------------------------------------------

    @property
    def leaf_lines(self) -> list[Line]:
        parents = {line.parent_line_id for line in self.lines if line.parent_line_id}
        return [line for line in self.lines if line.id not in parents]

    @property
    def cancellation_requested(self) -> bool:
        """An open request the seller or channel still has to decide (moot once terminal)."""
        if self.status.is_terminal:
            return False
        return any(c.state is RequestState.REQUESTED for c in self.cancellations)

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
            fulfilment.status = self._fulfilment_status(fulfilment)
        self.updated_at = now
        if announce:
            self._announce_status(before)

    def _announce_status(self, before: OrderStatus) -> None:
        """The event of a status reached since ``before``, if that status has one."""
        if self.status is not before and self.status in _STATUS_EVENT:
            self._emit(_STATUS_EVENT[self.status], previous_status=before.value)

    def _fulfilment_status(self, fulfilment: Fulfilment) -> FulfilmentStatus:
        lines = [line for line in self.leaf_lines if line.fulfilment_id == fulfilment.id]
        live = sum(line.live for line in lines)
        if live == 0:
            return FulfilmentStatus.CANCELLED if lines else fulfilment.status
        shipped = sum(line.shipped for line in lines)
        if shipped < live:
            return FulfilmentStatus.OPEN
        delivered = sum(line.delivered for line in lines)
        return FulfilmentStatus.DELIVERED if delivered >= shipped else FulfilmentStatus.SHIPPED

    def _ensure_open(self) -> None:
        if self.status.is_terminal:
            raise OrderIsTerminal(f"order {self.id} is {self.status.value}: nothing can change")

    def _quantities(
        self, requested: Sequence[LineQuantity] | None, available: Any
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
        chosen: list[tuple[Line, int]], lines: list[Line], available: Any
    ) -> bool:
        wanted = {line.id: available(line) for line in lines if available(line) > 0}
        return wanted == {line.id: quantity for line, quantity in chosen}

    # --- seller commands ---------------------------------------------------------------

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
        self._emit(EventType.ORDER_ACCEPTED, lines=_lines_data(accepted))
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
            self._emit(EventType.ORDER_REJECTED, reason=reason.value, lines=_lines_data(rejected))
        else:
            self._emit(
                EventType.ORDER_LINES_REJECTED, reason=reason.value, lines=_lines_data(rejected)
            )
            # what is left may now be ready, or (after a partial shipment) all shipped
            self._announce_status(before)
        return rejected

    def _shippable(self, line: Line) -> int:
        if not self._seller_fulfilled(line):
            return 0
        if self.acceptance_required:
            return line.accepted - line.shipped
        return line.unshipped

    def record_shipment(
        self,
        caps: Capabilities,
        *,
        shipment_id: str,
        items: Sequence[LineQuantity],
        now: datetime,
        fulfilment_id: str | None = None,
        carrier: str | None = None,
        tracking_number: str | None = None,
        tracking_url: str | None = None,
        final: bool = False,
    ) -> Shipment:
        """The warehouse shipped a parcel. ``final`` closes the fulfilment (short ship)."""
        self._ensure_open()
        if caps.shipment is Scope.NONE:
            raise NotSupportedByChannel(
                caps.explain("ship", f"{self.channel} does not take shipments from the seller"),
                rule="shipment-not-supported",
            )
        if not items:
            raise InvalidInput("a shipment needs at least one item", rule="empty-shipment")
        for item in items:
            line = self.line(item.line_id)
            if not self._seller_fulfilled(line):
                raise NotSupportedByChannel(
                    f"line {line.id} is fulfilled by the channel, not by our warehouse",
                    rule="channel-fulfilled-line",
                )
        if self.status is OrderStatus.AWAITING_ACCEPTANCE and not any(
            line.accepted for line in self.leaf_lines
        ):
            raise InvalidTransition(
                f"order {self.id} must be accepted before it ships", rule="ship-before-acceptance"
            )
        if not self.released:
            raise InvalidTransition(
                f"{self.channel} has not yet released order {self.id} for dispatch",
                rule="ship-before-release",
            )
        self._check_accepted(items)
        chosen = self._quantities(items, self._shippable)
        fulfilment = self._shipment_fulfilment(fulfilment_id, [line for line, _ in chosen])
        if caps.shipment is Scope.ORDER and not self._covers_everything(
            chosen, self.leaf_lines, self._shippable
        ):
            raise NotSupportedByChannel(
                f"{self.channel} ships whole orders only for this order",
                rule="shipment-whole-order-only",
            )
        if not caps.partial_shipment:
            for line, quantity in chosen:
                if quantity < self._shippable(line):
                    raise NotSupportedByChannel(
                        f"{self.channel} ships each line whole: line {line.id} has "
                        f"{self._shippable(line)} units to ship, not {quantity}",
                        rule="partial-shipment-not-supported",
                    )
        serials = self._check_serials(caps, items)
        if final:
            self._check_short_ship(caps, fulfilment, chosen)
        shipment_items = []
        for line, quantity in chosen:
            line_serials = serials.get(line.id, ())
            line.shipped += quantity
            _ship_units(line, line_serials, quantity)
            shipment_items.append(
                ShipmentItem(line_id=line.id, quantity=quantity, serial_numbers=line_serials)
            )
        shipment = Shipment(
            id=shipment_id,
            fulfilment_id=fulfilment.id if fulfilment else None,
            carrier=carrier,
            tracking_number=tracking_number,
            tracking_url=tracking_url,
            items=shipment_items,
            shipped_at=now,
        )
        before = self.status
        self.shipments.append(shipment)
        self._emit(EventType.ORDER_SHIPMENT_RECORDED, **_shipment_data(shipment))
        if not (final and self._close_short(fulfilment, now, before)):
            self._refresh(now, announce=False)
            self._announce_status(before)
        return shipment

    def _check_accepted(self, items: Sequence[LineQuantity]) -> None:
        """A line still awaiting acceptance cannot ship, even when others are accepted."""
        if not self.acceptance_required:
            return
        wanted: dict[str, int] = {}
        for item in items:
            wanted[item.line_id] = wanted.get(item.line_id, 0) + item.quantity
        for line_id, quantity in wanted.items():
            line = self.line(line_id)
            if line.pending_acceptance > 0 and quantity > line.accepted - line.shipped:
                raise InvalidTransition(
                    f"line {line.id} has {line.pending_acceptance} units awaiting acceptance: "
                    "accept them before they ship",
                    rule="ship-before-acceptance",
                )

    def _check_short_ship(
        self, caps: Capabilities, fulfilment: Fulfilment | None, chosen: list[tuple[Line, int]]
    ) -> None:
        """Refuse ``final`` before anything changes when it would close units the channel
        cannot close."""
        if caps.short_ship:
            return
        shipping = {line.id: quantity for line, quantity in chosen}
        for line in self.leaf_lines:
            if fulfilment is not None and line.fulfilment_id != fulfilment.id:
                continue
            if line.unshipped - shipping.get(line.id, 0) > 0:
                raise NotSupportedByChannel(
                    f"{self.channel} cannot close a fulfilment with units left to ship",
                    rule="short-ship-not-supported",
                )

    def _shipment_fulfilment(
        self, fulfilment_id: str | None, lines: list[Line]
    ) -> Fulfilment | None:
        if fulfilment_id is not None:
            fulfilment = self.fulfilment(fulfilment_id)
            for line in lines:
                if line.fulfilment_id != fulfilment.id:
                    raise InvalidInput(
                        f"line {line.id} does not belong to fulfilment {fulfilment.id}",
                        rule="line-not-in-fulfilment",
                    )
            return fulfilment
        ids = {line.fulfilment_id for line in lines}
        if len(ids) > 1:
            raise InvalidInput(
                "one shipment leaves from one fulfilment: split the items",
                rule="shipment-spans-fulfilments",
            )
        only = ids.pop() if ids else None
        return self.fulfilment(only) if only else None

    def _check_serials(
        self, caps: Capabilities, items: Sequence[LineQuantity]
    ) -> dict[str, tuple[str, ...]]:
        # serial numbers already out of the warehouse (a channel may pre-assign one to a unit
        # not yet shipped: shipping that unit with it is no duplicate)
        seen = {
            unit.serial_number
            for line in self.lines
            for unit in line.units
            if unit.serial_number and unit.shipped
        }
        seen |= {s for shipment in self.shipments for i in shipment.items for s in i.serial_numbers}
        serials: dict[str, tuple[str, ...]] = {}
        for item in items:
            line = self.line(item.line_id)
            given = tuple(s for s in item.serial_numbers if s)
            if given and len(given) != item.quantity:
                raise InvalidInput(
                    f"line {line.id}: {item.quantity} units but {len(given)} serial numbers",
                    rule="serial-number-count",
                )
            if caps.serial_numbers and line.requires_serial_number and not given:
                raise SerialNumberRequired(
                    f"line {line.id} ({line.sku}) needs a serial number for each unit shipped"
                )
            for serial in given:
                if serial in seen:
                    raise DuplicateSerialNumber(
                        f"serial number {serial} appears more than once on order {self.id}"
                    )
                seen.add(serial)
            serials[line.id] = serials.get(line.id, ()) + given
        return serials

    def _close_short(
        self, fulfilment: Fulfilment | None, now: datetime, before: OrderStatus
    ) -> bool:
        """Cancel what a final shipment left unshipped (checked by ``_check_short_ship``);
        True when something was cancelled (and the new status announced)."""
        open_lines = [
            line
            for line in self.leaf_lines
            if (fulfilment is None or line.fulfilment_id == fulfilment.id) and line.unshipped > 0
        ]
        if not open_lines:
            return False
        scope = [LineQuantity(line_id=line.id, quantity=line.unshipped) for line in open_lines]
        self._cancel_units(scope, now=now)
        self.cancellations.append(
            Cancellation(
                id=f"{self.id}:short:{len(self.cancellations) + 1}",
                initiator=Initiator.SELLER,
                reason=Reason.OUT_OF_STOCK,
                state=RequestState.ACCEPTED,
                requested_at=now,
                decided_at=now,
                lines=scope,
            )
        )
        self._announce_cancellation(Reason.OUT_OF_STOCK, Initiator.SELLER, scope, now, before)
        return True

    def confirm_delivery(
        self, caps: Capabilities, *, now: datetime, fulfilment_id: str | None = None
    ) -> list[LineQuantity]:
        self._ensure_open()
        if caps.delivery_confirmation is not DeliveryConfirmation.SELLER:
            raise NotSupportedByChannel(
                caps.explain("deliver", f"{self.channel} does not take delivery confirmations"),
                rule="delivery-confirmation-not-supported",
            )
        if fulfilment_id is not None:
            self.fulfilment(fulfilment_id)
        delivered = []
        for line in self.leaf_lines:
            if fulfilment_id is not None and line.fulfilment_id != fulfilment_id:
                continue
            if line.shipped > line.delivered:
                delivered.append(
                    LineQuantity(line_id=line.id, quantity=line.shipped - line.delivered)
                )
                line.delivered = line.shipped
        if not delivered:
            raise InvalidTransition(
                "nothing shipped is waiting for delivery", rule="nothing-to-deliver"
            )
        before = self.status
        self._refresh(now, announce=False)
        data = {"fulfilment_id": fulfilment_id, "lines": _lines_data(delivered)}
        if self.status is OrderStatus.DELIVERED and before is not OrderStatus.DELIVERED:
            self._emit(EventType.ORDER_DELIVERED, previous_status=before.value, **data)
        else:  # a part delivered (one fulfilment of several): still a change the feed shows
            self._emit(EventType.ORDER_UPDATED, channel_status=self.channel_status, **data)
        return delivered

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
            self._emit(EventType.ORDER_RETURN_REQUESTED, **_return_data(refund))
            self.updated_at = now
            return refund
        chosen = self._quantities(lines, lambda line: line.unshipped)
        if not chosen:
            raise InvalidTransition(f"order {self.id} has nothing left to cancel")
        before = self.status
        scope = [LineQuantity(line_id=line.id, quantity=q) for line, q in chosen]
        self._cancel_units(scope, now=now)
        cancellation = Cancellation(
            id=cancellation_id,
            initiator=Initiator.SELLER,
            reason=reason,
            state=RequestState.ACCEPTED,
            requested_at=now,
            decided_at=now,
            lines=scope if lines else [],
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
    ) -> Cancellation:
        self._ensure_open()
        if not caps.cancellation_requests:
            raise NotSupportedByChannel(
                f"{self.channel} does not let the seller decide cancellation requests",
                rule="cancellation-decision-not-supported",
            )
        request = self._open_request(cancellation_id)
        self._decide(request, decision, now)
        return request

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
        self._cancel_units(scope, now=now)
        self._announce_cancellation(request.reason, request.initiator, scope, now, before)

    def _cancel_units(self, scope: Iterable[LineQuantity], *, now: datetime) -> None:
        """Cancel unshipped units: first those still awaiting acceptance, then accepted ones."""
        for item in scope:
            line = self.line(item.line_id)
            quantity = min(item.quantity, line.unshipped)
            from_pending = min(quantity, line.pending_acceptance)
            line.cancelled += quantity
            line.accepted -= quantity - from_pending
        self.updated_at = now

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
        data = {"reason": reason.value, "initiator": initiator.value, "lines": _lines_data(scope)}
        if self.status is OrderStatus.CANCELLED:
            self._emit(EventType.ORDER_CANCELLED, **data)
        else:
            self._emit(EventType.ORDER_LINES_CANCELLED, **data)
            self._announce_status(before)

    # --- channel observations ----------------------------------------------------------

    @classmethod
    def receive(
        cls,
        snapshot: ChannelSnapshot,
        *,
        order_id: str,
        channel: str,
        account: str,
        caps: Capabilities,
        now: datetime,
        new_id: Any,
    ) -> Order:
        """A new order from a channel. ``new_id()`` makes ids for lines and fulfilments."""
        fulfilments = [
            Fulfilment(
                id=new_id(),
                channel_fulfilment_id=f.channel_fulfilment_id,
                fulfilled_by=f.fulfilled_by,
                extras=dict(f.extras),
            )
            for f in snapshot.fulfilments
        ] or [Fulfilment(id=new_id())]
        by_channel_id = {f.channel_fulfilment_id: f.id for f in fulfilments}
        default_fulfilment = fulfilments[0].id
        line_ids = {ls.channel_line_id: new_id() for ls in snapshot.lines}
        lines = [
            Line(
                id=line_ids[ls.channel_line_id],
                channel_line_id=ls.channel_line_id,
                sku=ls.sku,
                title=ls.title,
                quantity=ls.quantity,
                unit_price=ls.unit_price,
                parent_line_id=line_ids.get(ls.parent_channel_line_id or ""),
                fulfilment_id=by_channel_id.get(ls.channel_fulfilment_id, default_fulfilment),
                requires_serial_number=ls.requires_serial_number,
                units=[
                    Unit(channel_unit_id=u.channel_unit_id, serial_number=u.serial_number)
                    for u in ls.units
                ],
                extras=dict(ls.extras),
            )
            for ls in snapshot.lines
        ]
        if not lines:
            raise InvalidInput("an order needs at least one line", rule="order-without-lines")
        order = cls(
            id=order_id,
            channel=channel,
            account=account,
            channel_order_id=snapshot.channel_order_id,
            channel_status=snapshot.channel_status,
            acceptance_required=caps.acceptance is not Scope.NONE,
            released=snapshot.released or caps.acceptance is Scope.NONE,
            status=OrderStatus.AWAITING_ACCEPTANCE,
            lines=lines,
            placed_at=snapshot.placed_at or now,
            created_at=now,
            updated_at=now,
            fulfilments=fulfilments,
        )
        order._take_details(snapshot)
        order.status = derive_status(
            order.leaf_lines, acceptance_required=order.acceptance_required, released=order.released
        )
        order._emit(
            EventType.ORDER_RECEIVED,
            channel_order_id=order.channel_order_id,
            status=order.status.value,
        )
        if order.status is OrderStatus.READY_TO_SHIP:
            order._emit(EventType.ORDER_READY_TO_SHIP, previous_status=None)
        order.apply(snapshot, caps=caps, now=now, new_id=new_id)
        return order

    def _take_details(self, snapshot: ChannelSnapshot) -> bool:
        """Take the order's details from the snapshot; True when one of them changed."""
        changed = False
        for name in (
            "order_number",
            "seller_reference",
            "customer",
            "shipping_address",
            "billing_address",
            "currency",
            "ship_by",
        ):
            value = getattr(snapshot, name)
            if value is not None and value != getattr(self, name):
                setattr(self, name, value)
                changed = True
        extras = {**self.extras, **snapshot.extras}
        if extras != self.extras:
            self.extras = extras
            changed = True
        return changed

    def apply(
        self, snapshot: ChannelSnapshot, *, caps: Capabilities, now: datetime, new_id: Any
    ) -> None:
        """Merge what the channel has seen. Counters only grow; decided requests stay decided.

        A snapshot that shows less than the order already knows and adds nothing arrived late
        (a ``created`` after a ``completed``): it is recorded in the inbox, not applied, so
        neither its channel status nor its details replace newer ones. An order that is
        terminal when a snapshot arrives takes nothing from it but the channel's status."""
        events_before = len(self.events)
        updated_at = self.updated_at
        by_channel_line = {line.channel_line_id: line for line in self.lines}
        behind = self._behind(snapshot, caps, by_channel_line)
        merged = False
        if not self.status.is_terminal:  # the whole snapshot, even if its lines end the order
            if snapshot.released and not self.released:
                self.released = merged = True
            for ls in snapshot.lines:
                line = by_channel_line.get(ls.channel_line_id)
                if line is None:
                    continue  # a line the channel adds later is not ours to invent
                merged |= _merge_line(line, ls, acceptance_required=self.acceptance_required)
            self._refresh(now)  # announce what the counters did before what cancellations do
            for cs in snapshot.cancellations:
                merged |= self._merge_cancellation(cs, by_channel_line, now, new_id)
        changed = merged
        if merged or not behind:
            changed |= snapshot.channel_status != self.channel_status
            self.channel_status = snapshot.channel_status
            changed |= self._take_details(snapshot)
        self._refresh(now)
        if len(self.events) > events_before:
            return
        if changed:
            self._emit(EventType.ORDER_UPDATED, channel_status=self.channel_status)
        else:  # a duplicate: the order is as it was, to the timestamp (nothing to save)
            self.updated_at = updated_at

    def _behind(
        self, snapshot: ChannelSnapshot, caps: Capabilities, by_channel_line: dict[str, Line]
    ) -> bool:
        """The snapshot shows less than what the order already knows from its channel."""
        for ls in snapshot.lines:
            line = by_channel_line.get(ls.channel_line_id)
            if line is None:
                continue
            delivered, shipped, accepted = _seen(ls)
            if delivered < line.delivered or shipped < line.shipped or ls.rejected < line.rejected:
                return True
            if self.acceptance_required and accepted < line.accepted:
                return True
        if (
            self.released
            and not snapshot.released
            and self.acceptance_required
            and not caps.release_on_accept  # the channel itself releases (Octopia)
        ):
            return True
        listed = {cs.channel_cancellation_id: cs.state for cs in snapshot.cancellations}
        known = [(c.channel_cancellation_id, c.state) for c in self.cancellations]
        known += [(r.channel_return_id, r.state) for r in self.returns]
        for key, state in known:
            if key is None:
                continue  # the seller's own: the channel need not list it
            seen = listed.get(key)
            if seen is None or (
                seen is RequestState.REQUESTED and state is not RequestState.REQUESTED
            ):
                return True
        return False

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
        if existing is not None:
            if existing.state is RequestState.REQUESTED and cs.state is not RequestState.REQUESTED:
                self._decide(
                    existing,
                    Decision.ACCEPT if cs.state is RequestState.ACCEPTED else Decision.REFUSE,
                    now,
                )
                return True
            return False
        scope = [
            LineQuantity(line_id=by_channel_line[cid].id, quantity=q)
            for cid, q in cs.lines
            if cid in by_channel_line
        ]
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
            self._emit(EventType.ORDER_RETURN_REQUESTED, **_return_data(ret))
            return True
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
                lines=_lines_data(scope),
            )
        else:
            self._decide(
                cancellation,
                Decision.ACCEPT if cs.state is RequestState.ACCEPTED else Decision.REFUSE,
                now,
            )
        return True


def _seen(ls: LineSnapshot) -> tuple[int, int, int]:
    """(delivered, shipped, accepted) as the channel saw them: a delivered unit was shipped,
    a shipped unit was accepted, even when a channel reports only the latest step."""
    shipped = max(ls.shipped, ls.delivered)
    return ls.delivered, shipped, max(ls.accepted, shipped)


def _merge_line(line: Line, ls: LineSnapshot, *, acceptance_required: bool) -> bool:
    """Grow each counter to what the channel saw, never past what the invariants allow."""
    old = (line.accepted, line.rejected, line.shipped, line.delivered)
    delivered, shipped, accepted = _seen(ls)
    # a unit accepted or already shipped (a channel without acceptance) can no longer be rejected
    committed = max(line.accepted, line.shipped)
    line.rejected = max(line.rejected, min(ls.rejected, line.quantity - committed - line.cancelled))
    if acceptance_required:
        line.accepted = max(
            line.accepted, min(accepted, line.quantity - line.rejected - line.cancelled)
        )
        ceiling = line.accepted
    else:
        ceiling = line.live
    line.shipped = max(line.shipped, min(shipped, ceiling))
    line.delivered = max(line.delivered, min(delivered, line.shipped))
    by_id = {unit.channel_unit_id: unit for unit in line.units}
    for seen in ls.units:
        unit = by_id.get(seen.channel_unit_id)
        if unit is not None:
            unit.shipped = unit.shipped or seen.shipped
            unit.serial_number = unit.serial_number or seen.serial_number
    return old != (line.accepted, line.rejected, line.shipped, line.delivered)


def _ship_units(line: Line, serials: tuple[str, ...], quantity: int) -> None:
    """Mark ``quantity`` units shipped: a serial goes to the unit the channel gave it to, if
    any, else to a unit without one."""
    pending = [unit for unit in line.units if not unit.shipped]
    for serial in serials:
        unit = next((u for u in pending if u.serial_number == serial), None)
        unit = unit or next((u for u in pending if u.serial_number is None), None)
        unit = unit or (pending[0] if pending else None)
        if unit is None:
            return
        unit.shipped = True
        unit.serial_number = serial
        pending.remove(unit)
    for unit in pending[: quantity - len(serials)]:
        unit.shipped = True


def _lines_data(items: Iterable[LineQuantity]) -> list[dict[str, Any]]:
    return [{"line_id": i.line_id, "quantity": i.quantity} for i in items]


def _shipment_data(shipment: Shipment) -> dict[str, Any]:
    return {
        "shipment_id": shipment.id,
        "fulfilment_id": shipment.fulfilment_id,
        "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number,
        "tracking_url": shipment.tracking_url,
        "items": [
            {"line_id": i.line_id, "quantity": i.quantity, "serial_numbers": list(i.serial_numbers)}
            for i in shipment.items
        ],
    }


def _return_data(ret: Return) -> dict[str, Any]:
    return {
        "return_id": ret.id,
        "initiator": ret.initiator.value,
        "reason": ret.reason.value,
        "state": ret.state.value,
        "lines": _lines_data(ret.lines),
    }
