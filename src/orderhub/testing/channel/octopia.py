"""The ``octopia`` profile's own rules: capabilities per sales channel and the checks
Octopia makes that :class:`Capabilities` cannot say (see the Octopia reference, §5).

Account settings read here:

``sales_channels``
    ``{"CDISFR": {"line_level": true, "manual_acceptance": true,
    "one_parcel_per_order": true}, "OCTOBE": {...}}``. Per sales channel, every key
    optional: ``line_level`` (default true: lines are accepted, refused, shipped and
    cancelled one by one; false: whole orders only), ``manual_acceptance`` (default true;
    false: the seller's auto-acceptance is on, orders arrive accepted), ``one_parcel_per_order``
    (default false; Cdiscount: one parcel per complete order), ``line_cancellation``
    (default ``line_level``; Cdiscount cancels whole orders only), ``refusal_ships``
    (default false; Cdiscount: refusing a customer's request means shipping the line).
    An order names its sales channel (``sales_channel`` in the document, ``extras`` of
    the snapshot); one the account does not list is refused at intake.
``carriers``
    the carrier labels the channel knows (Octopia ``GET /carriers``); a shipment naming
    another is refused (422 ``unknown-carrier``). Any profile; absent: any carrier.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from orderhub.channels.spi import AccountConfig, CommandKind, CommandRefused
from orderhub.domain.capabilities import Capabilities, Scope
from orderhub.domain.model import Line, Order
from orderhub.domain.values import FulfilledBy, Reason, RequestState
from orderhub.testing.channel.profiles import NAME, OCTOPIA_CODE_FOR_REASON, OCTOPIA_REASON_CODES

SALES_CHANNEL_EXTRA: Final = "sales_channel"
CANCEL_REQUEST: Final = "CancelRequest"
#: the Octopia states each code is allowed in (the reference's table; the canonical
#: statuses in OCTOPIA_REASON_CODES stand for these)
OCTOPIA_CODE_STATES: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "seller-refusal": ("Accepted", "InPreparation"),
        "customer-claim": ("Accepted", "InPreparation", "Shipped", "Delivered"),
        **{
            code: ("Shipped", "Delivered")
            for code in OCTOPIA_REASON_CODES
            if code not in ("seller-refusal", "customer-claim")
        },
    }
)


@dataclass(frozen=True, kw_only=True, slots=True)
class SalesChannel:
    """One sales channel's settings (see the module docstring)."""

    id: str
    line_level: bool = True
    manual_acceptance: bool = True
    one_parcel_per_order: bool = False
    line_cancellation: bool | None = None
    refusal_ships: bool = False


_FLAGS: Final = frozenset(f.name for f in dataclasses.fields(SalesChannel) if f.name != "id")


def sales_channels(config: AccountConfig) -> Mapping[str, SalesChannel]:
    """The account's ``sales_channels`` setting, checked; ValueError names what is wrong."""
    raw = config.settings.get("sales_channels") or {}
    where = f"{NAME} account {config.name!r}"
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: sales_channels must map sales channel ids to settings")
    channels = {}
    for sc_id, flags in raw.items():
        if not isinstance(flags, Mapping):
            raise ValueError(f"{where}: sales channel {sc_id!r} needs a table of settings")
        unknown = sorted(set(flags) - _FLAGS)
        if unknown:
            raise ValueError(f"{where}: sales channel {sc_id!r}: unknown setting {unknown[0]!r}")
        if not all(isinstance(value, bool) for value in flags.values()):
            raise ValueError(f"{where}: sales channel {sc_id!r}: settings are true or false")
        channels[str(sc_id)] = SalesChannel(id=str(sc_id), **flags)
    return MappingProxyType(channels)


def carriers(config: AccountConfig) -> frozenset[str] | None:
    raw = config.settings.get("carriers")
    if raw is None:
        return None
    if isinstance(raw, str) or not all(isinstance(c, str) for c in raw):
        raise ValueError(f"{NAME} account {config.name!r}: carriers is a list of labels")
    return frozenset(_carrier_key(c) for c in raw)


def _carrier_key(label: str) -> str:
    # Octopia's list has a label with a trailing space (measured): compare trimmed, any case
    return label.strip().casefold()


def sales_channel_caps(base: Capabilities, sc: SalesChannel) -> Capabilities:
    """The account's Octopia capabilities narrowed to one sales channel's rules."""
    line = Scope.LINE if sc.line_level else Scope.ORDER
    cancel_lines = sc.line_level if sc.line_cancellation is None else sc.line_cancellation
    decide = Scope.NONE if not sc.manual_acceptance else line
    refusals = dict(base.refusals)
    if not sc.manual_acceptance:
        refusals["accept"] = f"sales channel {sc.id} accepts orders itself (auto-acceptance)"
        refusals["reject"] = f"sales channel {sc.id} accepts orders itself: nothing to refuse"
    if sc.one_parcel_per_order:
        refusals["ship"] = f"sales channel {sc.id} takes one parcel per complete order"
    return dataclasses.replace(
        base,
        acceptance=decide,
        rejection=decide,
        shipment=Scope.ORDER if sc.one_parcel_per_order else line,
        seller_cancellation=Scope.LINE if cancel_lines else Scope.ORDER,
        cancellation_decision=line,
        refusal_ships=sc.refusal_ships,
        refusals=MappingProxyType(refusals),
    )


def sales_channel_of(order: Order, table: Mapping[str, SalesChannel]) -> SalesChannel | None:
    sc_id = order.extras.get(SALES_CHANNEL_EXTRA)
    return table.get(sc_id) if isinstance(sc_id, str) else None


# --- pre-flight -------------------------------------------------------------------------


def check_carrier(payload: Mapping[str, Any], known: frozenset[str] | None) -> None:
    carrier = payload.get("carrier")
    if known is None or carrier is None:
        return
    if _carrier_key(str(carrier)) not in known:
        raise CommandRefused(
            f"the channel knows no carrier {carrier!r}: use one of its carrier labels",
            rule="unknown-carrier",
            status=422,
        )


def preflight(
    kind: CommandKind,
    payload: Mapping[str, Any],
    order: Order,
    caps: Capabilities,
    sc: SalesChannel | None,
) -> None:
    """Octopia's own refusals, with the order as the command leaves it."""
    if kind is CommandKind.SHIP:
        _check_channel_fulfilled(payload, order)
        if sc is not None and sc.one_parcel_per_order:
            _check_one_parcel(payload, order, sc)
    elif kind is CommandKind.CANCEL:
        _check_reason_in_state(payload, order)
    # a decision per line where the sales channel decides whole requests, or for a line
    # the request does not name: the core refuses both (cancellation_decision)


def _lines_of(payload: Mapping[str, Any], order: Order, key: str) -> list[Line]:
    ids = {item["line_id"] for item in payload.get(key) or () if isinstance(item, Mapping)}
    return [line for line in order.lines if line.id in ids]


def _fulfilled_by_channel(order: Order, line: Line) -> bool:
    if line.fulfilment_id is None:
        return False
    return order.fulfilment(line.fulfilment_id).fulfilled_by is not FulfilledBy.SELLER


def _check_channel_fulfilled(payload: Mapping[str, Any], order: Order) -> None:
    for line in _lines_of(payload, order, "items"):
        if _fulfilled_by_channel(order, line):
            raise CommandRefused(
                f"line {line.id} is shipped by the channel (supply mode "
                f"{line.extras.get('supply_mode', 'Fulfillment')}): Octopia takes no "
                "seller shipment of it",
                rule="channel-fulfilled-line",
            )


def _check_one_parcel(payload: Mapping[str, Any], order: Order, sc: SalesChannel) -> None:
    earlier = [
        shipment
        for shipment in order.shipments
        if shipment.id != payload.get("shipment_id")
        and not any(_fulfilled_by_channel(order, order.line(i.line_id)) for i in shipment.items)
    ]
    if earlier:
        raise CommandRefused(
            f"sales channel {sc.id} takes one parcel per complete order and order "
            f"{order.id} has one already ({earlier[0].tracking_number or earlier[0].id})",
            rule="one-parcel-per-order",
        )


def _check_reason_in_state(payload: Mapping[str, Any], order: Order) -> None:
    """A line in ``CancelRequest`` (an open request covering it) is in none of the states
    a seller code is allowed in, and the canonical status does not show it."""
    if payload.get("closes_fulfilment"):
        return
    try:
        code = OCTOPIA_CODE_FOR_REASON[Reason(str(payload.get("reason")))]
    except (KeyError, ValueError):
        raise CommandRefused(
            f"Octopia has no reason code for {payload.get('reason')!r}",
            rule="cancellation-reason-not-accepted",
            status=422,
        ) from None
    open_requests = [c for c in order.cancellations if c.state is RequestState.REQUESTED]
    if not open_requests:
        return
    requested = {item.line_id for c in open_requests for item in c.lines}
    whole = any(not c.lines for c in open_requests)
    for line in _lines_of(payload, order, "lines"):
        if whole or line.id in requested:
            allowed = ", ".join(OCTOPIA_CODE_STATES[code])
            raise CommandRefused(
                f"line {line.id} is in {CANCEL_REQUEST} (the customer asked to cancel): "
                f"reason code {code} is allowed only in {allowed}; decide the request instead",
                rule="cancellation-reason-not-allowed-in-channel-state",
            )
