"""Parcels leaving the warehouse and arriving: shipments (partial, short, with serial
numbers) and delivery confirmations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from orderhub.domain.base import OrderBase, lines_data
from orderhub.domain.capabilities import Capabilities, DeliveryConfirmation, Scope
from orderhub.domain.entities import Cancellation, Fulfilment, Line, Shipment, ShipmentItem
from orderhub.domain.errors import (
    DuplicateSerialNumber,
    InvalidInput,
    InvalidTransition,
    NotSupportedByChannel,
    SerialNumberRequired,
)
from orderhub.domain.events import EventType
from orderhub.domain.values import (
    FulfilledBy,
    Initiator,
    LineQuantity,
    OrderStatus,
    Reason,
    RequestState,
)


class Shipping(OrderBase):
    if not TYPE_CHECKING:  # slots for the dataclass Order; mypy sees the attributes
        __slots__ = ()

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
            ship_units(line, line_serials, quantity)
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
        self._emit(EventType.ORDER_SHIPMENT_RECORDED, **shipment_data(shipment))
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

    def close_fulfilment(
        self, caps: Capabilities, *, fulfilment_id: str, now: datetime
    ) -> Cancellation:
        """The warehouse ships no more of a fulfilment it shipped in part: the rest is
        cancelled as ``out_of_stock`` and the fulfilment is done (a short ship without a
        parcel). Returns the cancellation of the rest."""
        self._ensure_open()
        fulfilment = self.fulfilment(fulfilment_id)
        if fulfilment.fulfilled_by is not FulfilledBy.SELLER:
            raise NotSupportedByChannel(
                f"fulfilment {fulfilment.id} is shipped by the channel, not by our warehouse",
                rule="channel-fulfilled-line",
            )
        lines = [line for line in self.leaf_lines if line.fulfilment_id == fulfilment.id]
        if not any(line.unshipped for line in lines):
            raise InvalidTransition(
                f"fulfilment {fulfilment.id} has nothing left to ship", rule="nothing-to-close"
            )
        if not any(line.shipped for line in lines):
            raise InvalidTransition(
                f"nothing of fulfilment {fulfilment.id} has shipped: cancel it instead",
                rule="close-before-shipment",
            )
        self._check_short_ship(caps, fulfilment, [])
        self._close_short(fulfilment, now, self.status)
        return self.cancellations[-1]

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
                units=scope,
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
        data = {"fulfilment_id": fulfilment_id, "lines": lines_data(delivered)}
        if self.status is OrderStatus.DELIVERED and before is not OrderStatus.DELIVERED:
            self._emit(EventType.ORDER_DELIVERED, previous_status=before.value, **data)
        else:  # a part delivered (one fulfilment of several): still a change the feed shows
            self._emit(EventType.ORDER_UPDATED, channel_status=self.channel_status, **data)
        return delivered


def ship_units(line: Line, serials: tuple[str, ...], quantity: int) -> None:
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


def shipment_data(shipment: Shipment) -> dict[str, Any]:
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
