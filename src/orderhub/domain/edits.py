"""Lines a channel adds and quantities it changes: the order follows the channel (a lower
quantity cancels the difference, initiator channel) and says so in its attention list."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from orderhub.domain.cancellations import ChannelCancellations
from orderhub.domain.entities import AttentionCode, Cancellation, Line, Unit
from orderhub.domain.snapshots import ChannelSnapshot, LineSnapshot
from orderhub.domain.values import Initiator, LineQuantity, Reason, RequestState


class ChannelEdits(ChannelCancellations):
    if not TYPE_CHECKING:  # slots for the dataclass Order; mypy sees the attributes
        __slots__ = ()

    def _merge_edits(self, snapshot: ChannelSnapshot, now: datetime, new_id: Any) -> bool:
        by_channel_line = {line.channel_line_id: line for line in self.lines}
        changed = False
        for ls in snapshot.lines:
            line = by_channel_line.get(ls.channel_line_id)
            if line is None:
                line = self._add_line(ls, new_id)
                by_channel_line[ls.channel_line_id] = line
                self.raise_attention(
                    AttentionCode.CHANNEL_EDITED_LINES,
                    f"{self.channel} added line {line.id} ({ls.sku or ls.title}) x {ls.quantity}",
                    now=now,
                    ref=line.id,
                )
                changed = True
                continue
            known = self.channel_view.lines.get(ls.channel_line_id)
            previous = known.quantity if known is not None else line.quantity
            if ls.quantity != previous:
                changed |= self._resize(line, previous, ls.quantity, now)
        return changed

    def _add_line(self, ls: LineSnapshot, new_id: Any) -> Line:
        parents = {line.channel_line_id: line.id for line in self.lines}
        fulfilments = {f.channel_fulfilment_id: f.id for f in self.fulfilments}
        line = Line(
            id=new_id(),
            channel_line_id=ls.channel_line_id,
            sku=ls.sku,
            title=ls.title,
            quantity=ls.quantity,
            unit_price=ls.unit_price,
            parent_line_id=parents.get(ls.parent_channel_line_id or ""),
            fulfilment_id=fulfilments.get(
                ls.channel_fulfilment_id, self.fulfilments[0].id if self.fulfilments else None
            ),
            requires_serial_number=ls.requires_serial_number,
            units=[
                Unit(channel_unit_id=u.channel_unit_id, serial_number=u.serial_number)
                for u in ls.units
            ],
            extras=dict(ls.extras),
        )
        self.lines.append(line)
        return line

    def _resize(self, line: Line, previous: int, quantity: int, now: datetime) -> bool:
        """The channel changed a line's quantity: more units to handle, or fewer (the
        difference is cancelled by the channel, as far as it has not shipped)."""
        if quantity > previous:
            line.quantity += quantity - previous
            detail = f"{self.channel} raised line {line.id} from {previous} to {quantity} units"
        else:
            fewer = min(previous - quantity, line.unshipped)
            detail = f"{self.channel} lowered line {line.id} from {previous} to {quantity} units"
            if fewer < previous - quantity:
                detail += f" ({previous - quantity - fewer} of them already shipped)"
            if fewer:
                before = self.status
                scope = [LineQuantity(line_id=line.id, quantity=fewer)]
                self.cancellations.append(
                    Cancellation(
                        id=f"{self.id}:resize:{len(self.cancellations) + 1}",
                        initiator=Initiator.CHANNEL,
                        reason=Reason.CHANNEL_CANCELLED,
                        state=RequestState.ACCEPTED,
                        requested_at=now,
                        decided_at=now,
                        lines=scope,
                        units=scope,
                        from_accepted=self._cancel_units(scope, now=now),
                    )
                )
                self._announce_cancellation(
                    Reason.CHANNEL_CANCELLED, Initiator.CHANNEL, scope, now, before
                )
        self.raise_attention(AttentionCode.CHANNEL_EDITED_LINES, detail, now=now, ref=line.id)
        return True
