"""Merging what a channel observed (:class:`ChannelSnapshot`) into the order.

The rules, dimension by dimension (docs/lifecycle.md has the table):

* **Which snapshot is newer.** When both the snapshot and the order's newest channel news
  carry the channel's update stamp, the newer stamp wins; otherwise the arrival number of
  the message (``seq``, given by the inbox) decides. An older snapshot still adds its facts
  (counters only grow) but never replaces the channel status, the details or the lines.
* **Facts** (units shipped, delivered) only grow, whoever reported them.
* **Decisions** (accepted, rejected): the channel's word wins. Units the channel reports
  rejected that the hub holds as accepted (or accepted that the hub rejected) move to the
  channel's side, and the order gets an ``attention`` reason saying so.
* **Channel status** is taken from a snapshot that is not older and either shows news
  (a counter the channel had not reported before) or is not *behind*: showing less than
  the channel itself reported before, and nothing new (a ``created`` after ``completed``),
  is a late message, recorded in the inbox, not applied.
* **Details** (addresses, customer, extras) are taken from any snapshot that is not older;
  from a late one (behind, nothing new) only what the order does not have yet.
* **Lines** the channel adds, and quantities it changes, are applied (a lower quantity
  cancels the difference, initiator ``channel``) and the order gets an attention reason.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from orderhub.domain.capabilities import Capabilities
from orderhub.domain.edits import ChannelEdits
from orderhub.domain.entities import (
    AttentionCode,
    ChannelCancellationView,
    ChannelLineView,
    ChannelView,
    Line,
    Shipment,
    ShipmentItem,
)
from orderhub.domain.events import EventType
from orderhub.domain.shipping import shipment_data
from orderhub.domain.snapshots import CancellationSnapshot, ChannelSnapshot, LineSnapshot
from orderhub.domain.values import RequestState


class ChannelMerge(ChannelEdits):
    if not TYPE_CHECKING:  # slots for the dataclass Order; mypy sees the attributes
        __slots__ = ()

    def apply(
        self,
        snapshot: ChannelSnapshot,
        *,
        caps: Capabilities,
        now: datetime,
        new_id: Any,
        seq: int | None = None,
    ) -> None:
        """Merge what the channel has seen (``seq``: the arrival number of its message)."""
        from orderhub.domain.order import check_unambiguous

        check_unambiguous(snapshot)
        snapshot = stamp_in_utc(snapshot)
        events_before = len(self.events)
        updated_at = self.updated_at
        was_terminal = self.status.is_terminal
        older = self._older(snapshot, seq)
        behind = self._behind(snapshot)
        changed = False
        if not older and not was_terminal:
            changed |= self._merge_edits(snapshot, now, new_id)
        by_channel_line = {line.channel_line_id: line for line in self.lines}
        news = False  # the snapshot moved a counter: its status is news, even if behind
        for ls in snapshot.lines:
            line = by_channel_line.get(ls.channel_line_id)
            if line is not None:
                news |= self._merge_line(line, ls, now)
        if snapshot.released and not self.released:
            # the channel's word, whatever the lines; news only while something is live
            # (an ended order it releases shows nothing new to the warehouse)
            self.released = True
            news |= any(ln.live for ln in self.leaf_lines)
        changed |= news
        self._refresh(now)  # announce what the counters did before what cancellations do
        news |= self._merge_shipments(snapshot, by_channel_line, now, new_id)
        ended = was_terminal and self.status.is_terminal  # nothing left to cancel or return
        for cs in () if ended else snapshot.cancellations:
            news |= self._merge_cancellation(cs, by_channel_line, now, new_id)
        changed |= news
        if not older and (news or not behind):
            changed |= snapshot.channel_status != self.channel_status
            self.channel_status = snapshot.channel_status
        if not older:
            # a late message (behind, nothing new) only fills what the order lacks
            changed |= self.take_details(snapshot, fill_only=behind and not news)
        # the channel's word is kept even when it changes nothing the warehouse sees; a
        # duplicate leaves the order as it was, its stamps included
        if self._remember(snapshot, older=older) or changed:
            self._stamp(snapshot, seq, older=older)
        self._refresh(now)
        if len(self.events) > events_before:
            return
        if changed:
            self._emit(EventType.ORDER_UPDATED, channel_status=self.channel_status)
        else:  # a duplicate: the order is as it was, to the timestamp
            self.updated_at = updated_at

    # --- ordering --------------------------------------------------------------------

    def _merge_shipments(
        self,
        snapshot: ChannelSnapshot,
        by_channel_line: dict[str, Line],
        now: datetime,
        new_id: Any,
    ) -> bool:
        """Record the parcels the channel reports that the hub does not have yet (their
        units are counted by the lines' counters; this keeps carrier and tracking)."""
        known = {s.channel_shipment_id: s for s in self.shipments if s.channel_shipment_id}
        changed = False
        for ss in snapshot.shipments:
            shipment = known.get(ss.channel_shipment_id)
            if shipment is None and ss.tracking_number:
                # the echo of a parcel the seller sent whose command's answer has not linked
                # the channel's id yet: the same parcel (its tracking number), not a new one
                shipment = next(
                    (
                        s
                        for s in self.shipments
                        if s.channel_shipment_id is None and s.tracking_number == ss.tracking_number
                    ),
                    None,
                )
                if shipment is not None:
                    shipment.channel_shipment_id = ss.channel_shipment_id
                    known[ss.channel_shipment_id] = shipment
                    changed = True
            if shipment is not None:
                for name in ("carrier", "tracking_number", "tracking_url"):
                    if getattr(shipment, name) is None and getattr(ss, name) is not None:
                        setattr(shipment, name, getattr(ss, name))
                        changed = True
                continue
            items = [
                ShipmentItem(line_id=by_channel_line[cid].id, quantity=q)
                for cid, q in ss.lines
                if cid in by_channel_line
            ]
            if not items:
                continue
            first = self.line(items[0].line_id)
            shipment = Shipment(
                id=new_id(),
                fulfilment_id=first.fulfilment_id,
                carrier=ss.carrier,
                tracking_number=ss.tracking_number,
                tracking_url=ss.tracking_url,
                items=items,
                shipped_at=ss.shipped_at or now,
                channel_shipment_id=ss.channel_shipment_id,
            )
            self.shipments.append(shipment)
            self._emit(
                EventType.ORDER_SHIPMENT_RECORDED, **shipment_data(shipment), source="channel"
            )
            changed = True
        return changed

    def _older(self, snapshot: ChannelSnapshot, seq: int | None) -> bool:
        view = self.channel_view
        if snapshot.updated_at is not None and view.updated_at is not None:
            return snapshot.updated_at < view.updated_at
        return seq is not None and view.seq is not None and seq < view.seq

    def _behind(self, snapshot: ChannelSnapshot) -> bool:
        """The snapshot shows less than the channel itself reported before."""
        view = self.channel_view
        by_channel_line = {line.channel_line_id: line for line in self.lines}
        for ls in snapshot.lines:
            delivered, shipped, accepted = seen_counters(ls)
            known = view.lines.get(ls.channel_line_id)
            if known is None:
                line = by_channel_line.get(ls.channel_line_id)
                if line is None:
                    continue
                # an order stored before the hub kept the channel's view: its own counters
                known = ChannelLineView(
                    quantity=line.quantity,
                    accepted=line.accepted if self.acceptance_required else 0,
                    rejected=line.rejected,
                    shipped=line.shipped,
                    delivered=line.delivered,
                )
            if (
                delivered < known.delivered
                or shipped < known.shipped
                or ls.rejected < known.rejected
                or accepted < known.accepted
            ):
                return True
        if view.released and not snapshot.released:
            return True
        listed = {cs.channel_cancellation_id: cs.state for cs in snapshot.cancellations}
        known_requests = [(c.channel_cancellation_id, c.state) for c in self.cancellations]
        known_requests += [(r.channel_return_id, r.state) for r in self.returns]
        for key, state in known_requests:
            if key is None:
                continue  # the seller's own: the channel need not list it
            seen = listed.get(key)
            if seen is None or (
                seen is RequestState.REQUESTED and state is not RequestState.REQUESTED
            ):
                return True
        return False

    def _remember(self, snapshot: ChannelSnapshot, *, older: bool) -> bool:
        """Keep what the channel said: counters only grow, the newest quantity. True when
        the channel's view changed."""
        view = self.channel_view
        before = (dict_of(view.lines), view.released, _cancellations_of(view))
        for ls in snapshot.lines:
            delivered, shipped, accepted = seen_counters(ls)
            known = view.lines.get(ls.channel_line_id)
            if known is None:
                view.lines[ls.channel_line_id] = ChannelLineView(
                    quantity=ls.quantity,
                    accepted=accepted,
                    rejected=ls.rejected,
                    shipped=shipped,
                    delivered=delivered,
                )
                continue
            if not older:
                known.quantity = ls.quantity
            known.accepted = max(known.accepted, accepted)
            known.rejected = max(known.rejected, ls.rejected)
            known.shipped = max(known.shipped, shipped)
            known.delivered = max(known.delivered, delivered)
        view.released = view.released or snapshot.released
        seen = {c.channel_cancellation_id: c for c in view.cancellations}
        for cs in snapshot.cancellations:
            reported = seen.get(cs.channel_cancellation_id)
            if reported is None or reported.state is RequestState.REQUESTED:  # decided stays
                seen[cs.channel_cancellation_id] = ChannelCancellationView(
                    channel_cancellation_id=cs.channel_cancellation_id,
                    initiator=cs.initiator,
                    reason=cs.reason,
                    state=cs.state,
                    channel_reason=cs.channel_reason,
                    lines=list(cs.lines),
                )
        view.cancellations = list(seen.values())
        return (dict_of(view.lines), view.released, _cancellations_of(view)) != before

    def _stamp(self, snapshot: ChannelSnapshot, seq: int | None, *, older: bool) -> None:
        """Remember how new the newest news is (its stamp, its arrival number)."""
        view = self.channel_view
        if not older and snapshot.updated_at is not None:
            view.updated_at = snapshot.updated_at
        if seq is not None:
            view.seq = max(seq, view.seq or 0)

    # --- counters ----------------------------------------------------------------------

    def _merge_line(self, line: Line, ls: LineSnapshot, now: datetime) -> bool:
        """Grow each counter to what the channel saw; on a decision, the channel wins."""
        old = (line.accepted, line.rejected, line.shipped, line.delivered)
        delivered, shipped, accepted = seen_counters(ls)
        overridden: list[str] = []
        if ls.rejected > line.rejected:
            want = ls.rejected - line.rejected
            committed = max(line.accepted, line.shipped)  # shipped units cannot be rejected
            take = min(want, max(line.quantity - committed - line.rejected - line.cancelled, 0))
            taken_back = 0
            if self.acceptance_required:
                taken_back = min(want - take, max(line.accepted - line.shipped, 0))
            line.rejected += take + taken_back
            line.accepted -= taken_back
            if taken_back:
                overridden.append(f"{taken_back} accepted unit(s) rejected")
        if self.acceptance_required and accepted > line.accepted:
            want = accepted - line.accepted
            take = min(want, line.pending_acceptance)
            # units the hub rejected, beyond those the channel itself reported rejected
            known = self.channel_view.lines.get(line.channel_line_id)
            channel_rejected = max(ls.rejected, known.rejected if known else 0)
            given_back = min(want - take, max(line.rejected - channel_rejected, 0))
            line.accepted += take + given_back
            line.rejected -= given_back
            if given_back:
                overridden.append(f"{given_back} rejected unit(s) accepted")
        ceiling = line.accepted if self.acceptance_required else line.live
        line.shipped = max(line.shipped, min(shipped, ceiling))
        line.delivered = max(line.delivered, min(delivered, line.shipped))
        by_id = {unit.channel_unit_id: unit for unit in line.units}
        for seen in ls.units:
            unit = by_id.get(seen.channel_unit_id)
            if unit is not None:
                unit.shipped = unit.shipped or seen.shipped
                unit.serial_number = unit.serial_number or seen.serial_number
        if overridden:
            self.raise_attention(
                AttentionCode.CHANNEL_OVERRODE_DECISION,
                f"{self.channel} reports line {line.id} ({line.sku or line.title}) otherwise "
                f"than the hub decided: {', '.join(overridden)}; the channel's word stands",
                now=now,
                ref=line.id,
            )
        return old != (line.accepted, line.rejected, line.shipped, line.delivered)

    def rebase_on_channel(self, now: datetime) -> None:
        """Merge the channel's last word again (after a decision of the hub was undone)."""
        for line in self.lines:
            known = self.channel_view.lines.get(line.channel_line_id)
            if known is not None:
                self._merge_line(
                    line,
                    LineSnapshot(
                        channel_line_id=line.channel_line_id,
                        sku=line.sku,
                        title=line.title,
                        quantity=known.quantity,
                        accepted=known.accepted,
                        rejected=known.rejected,
                        shipped=known.shipped,
                        delivered=known.delivered,
                    ),
                    now,
                )
        self._refresh(now)
        if self.status.is_terminal:
            return
        by_channel_line = {line.channel_line_id: line for line in self.lines}
        for seen in list(self.channel_view.cancellations):
            self._merge_cancellation(
                CancellationSnapshot(
                    channel_cancellation_id=seen.channel_cancellation_id,
                    initiator=seen.initiator,
                    reason=seen.reason,
                    state=seen.state,
                    channel_reason=seen.channel_reason,
                    lines=tuple(seen.lines),
                ),
                by_channel_line,
                now,
                lambda: f"{self.id}:c{len(self.cancellations) + len(self.returns) + 1}",
            )


def seen_counters(ls: LineSnapshot) -> tuple[int, int, int]:
    """(delivered, shipped, accepted) as the channel saw them: a delivered unit was shipped,
    a shipped unit was accepted, even when a channel reports only the latest step."""
    shipped = max(ls.shipped, ls.delivered)
    return ls.delivered, shipped, max(ls.accepted, shipped)


def dict_of(lines: dict[str, ChannelLineView]) -> dict[str, tuple[int, ...]]:
    return {
        key: (v.quantity, v.accepted, v.rejected, v.shipped, v.delivered)
        for key, v in lines.items()
    }


def _cancellations_of(view: ChannelView) -> list[tuple[str, str]]:
    return [(c.channel_cancellation_id, c.state.value) for c in view.cancellations]


def stamp_in_utc(snapshot: ChannelSnapshot) -> ChannelSnapshot:
    """The snapshot with a stamp the merge can compare: one without a zone is UTC.

    A stamp later than the hub's now is kept as it is: adapters that stamp a snapshot with the
    time they read the channel (topi sends no stamp) use their own clock, and a test's
    hand-moved clock may lag the wall clock by months; clamping would make every read
    equal. Clocks must be synchronised (NTP); a worker running ahead delays the channel
    status and details of the next reads until its stamp has passed (counters never
    wait: they merge monotonically)."""
    stamp = snapshot.updated_at
    if stamp is None or stamp.tzinfo is not None:
        return snapshot
    return dataclasses.replace(snapshot, updated_at=stamp.replace(tzinfo=UTC))
