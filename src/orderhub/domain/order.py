"""The Order aggregate.

Every change goes through a method of :class:`Order`; each method checks the rule it
depends on, changes the line counters, re-derives the status and records events. The
status is never set by hand.

Three kinds of change arrive, each in its own module:

* seller commands from the warehouse (accept, reject, ship, deliver, cancel, decide a
  cancellation request), checked against the channel's :class:`Capabilities`
  (:mod:`orderhub.domain.commands`);
* channel observations (:class:`ChannelSnapshot`), merged so that duplicated and reordered
  updates converge, a late update never moves an order backwards, and the channel's word on
  a decision wins over the hub's (:mod:`orderhub.domain.merge`);
* corrections: a decision the channel refused is undone, and the order says so in its
  ``attention`` list until a person resolves it (:mod:`orderhub.domain.corrections`);
* the seller's invoices and the channel's verdict on them (:mod:`orderhub.domain.invoices`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orderhub.domain.base import OrderBase
from orderhub.domain.capabilities import Capabilities, Scope
from orderhub.domain.corrections import Corrections
from orderhub.domain.entities import (
    Attention,
    Cancellation,
    ChannelView,
    Fulfilment,
    Invoice,
    Line,
    Return,
    Shipment,
    Unit,
)
from orderhub.domain.errors import AmbiguousSnapshot, InvalidInput
from orderhub.domain.events import EventType, OrderEvent
from orderhub.domain.invoices import Invoices
from orderhub.domain.merge import stamp_in_utc
from orderhub.domain.shipping import Shipping
from orderhub.domain.snapshots import ChannelSnapshot
from orderhub.domain.status import derive_status
from orderhub.domain.values import Address, Customer, OrderFulfilledBy, OrderStatus


@dataclass(kw_only=True, slots=True)
class Order(Corrections, Shipping, Invoices, OrderBase):
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
    invoices: list[Invoice] = field(default_factory=list)  # the seller's, oldest first
    extras: dict[str, Any] = field(default_factory=dict)
    attention: list[Attention] = field(default_factory=list)
    channel_view: ChannelView = field(default_factory=ChannelView)
    # what the channel allows for this order (a sales channel's rules); None: the account's
    capabilities: Capabilities | None = None
    version: int = 0
    last_seq: int = 0  # the feed sequence of the order's newest event (kept by persistence)
    events: list[OrderEvent] = field(default_factory=list)

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
        seq: int | None = None,
    ) -> Order:
        """A new order from a channel. ``new_id()`` makes ids for lines and fulfilments;
        ``seq`` is the arrival number of the message that brought it, if any."""
        check_unambiguous(snapshot)
        snapshot = stamp_in_utc(snapshot)
        if not snapshot.lines:
            raise InvalidInput("an order needs at least one line", rule="order-without-lines")
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
        order = cls(
            capabilities=caps,
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
        order.take_details(snapshot)
        order._remember(snapshot, older=False)  # what the channel said, as first heard
        order._stamp(snapshot, seq, older=False)
        order.status = derive_status(
            order.leaf_lines,
            acceptance_required=order.acceptance_required,
            released=order.released,
        )
        order._emit(
            EventType.ORDER_RECEIVED,
            channel_order_id=order.channel_order_id,
            status=order.status.value,
        )
        ours = order.fulfilled_by is not OrderFulfilledBy.CHANNEL
        if order.status is OrderStatus.READY_TO_SHIP and ours:
            order._emit(EventType.ORDER_READY_TO_SHIP, previous_status=None)
        order.apply(snapshot, caps=caps, now=now, new_id=new_id, seq=seq)
        return order


def check_unambiguous(snapshot: ChannelSnapshot) -> None:
    """Refuse a snapshot that names a line or a fulfilment twice: lines are keyed by
    ``channel_line_id`` within an order (adapters make the id unique, e.g. by joining the
    fulfilment's id and the variant's)."""
    seen: set[str] = set()
    for ls in snapshot.lines:
        if ls.channel_line_id in seen:
            raise AmbiguousSnapshot(
                f"order {snapshot.channel_order_id}: line {ls.channel_line_id!r} appears twice "
                "in one snapshot; an adapter must give each line its own channel_line_id"
            )
        seen.add(ls.channel_line_id)
    fulfilments = [f.channel_fulfilment_id for f in snapshot.fulfilments]
    if len(fulfilments) != len(set(fulfilments)):
        raise AmbiguousSnapshot(
            f"order {snapshot.channel_order_id}: a fulfilment appears twice in one snapshot"
        )
