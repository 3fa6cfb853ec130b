"""What a channel allows. Adapters declare it; the domain refuses what a channel cannot do."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from orderhub.domain.values import OrderStatus, Reason


class Scope(StrEnum):
    """How finely a channel lets the seller act."""

    NONE = "none"
    ORDER = "order"
    LINE = "line"


class DeliveryConfirmation(StrEnum):
    NONE = "none"  # the channel has no delivery step (topi: completed is the end)
    CHANNEL = "channel"  # the channel reports delivery (Octopia)
    SELLER = "seller"  # the seller reports delivery (Spresso)


def _no_reasons() -> Mapping[Reason, frozenset[OrderStatus]]:
    return MappingProxyType({})


def _no_refusals() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, kw_only=True, slots=True)
class Capabilities:
    """A channel's declared abilities. Every refusal message names the capability it checks."""

    acceptance: Scope
    rejection: Scope
    shipment: Scope
    partial_shipment: bool = True
    serial_numbers: bool = False
    delivery_confirmation: DeliveryConfirmation = DeliveryConfirmation.NONE
    seller_cancellation: Scope = Scope.NONE
    # reason -> statuses in which the seller may cancel with it; empty means any reason, any state
    cancellation_reasons: Mapping[Reason, frozenset[OrderStatus]] = field(
        default_factory=_no_reasons
    )
    cancellation_requests: bool = False  # the seller decides customer cancellation requests
    cancellation_decision: Scope = Scope.ORDER  # LINE: a request is decided line by line
    refusal_ships: bool = False  # refusing a request means shipping anyway (Cdiscount)
    # a cancellation the channel carries out after everything shipped is recorded as a
    # return; True: a person must look too (Spresso: order_cancelled after in_transit)
    attention_on_late_cancellation: bool = False
    release_on_accept: bool = True  # False: after acceptance the channel still has to release
    multiple_fulfilments: bool = False
    short_ship: bool = False  # shipping fewer units closes the rest (cancelled, out_of_stock)
    invoices: bool = False  # the channel takes the seller's invoices
    intake: frozenset[str] = frozenset({"webhook"})  # webhook, polling, reconciliation
    # command ("accept", "reject", "ship", "deliver", "cancel") -> what to do instead
    refusals: Mapping[str, str] = field(default_factory=_no_refusals)

    def __post_init__(self) -> None:
        # read-only, however they were given (a stored order's come back as dicts)
        for name in ("cancellation_reasons", "refusals"):
            value = getattr(self, name)
            if not isinstance(value, MappingProxyType):
                object.__setattr__(self, name, MappingProxyType(dict(value)))
        if not isinstance(self.intake, frozenset):
            object.__setattr__(self, "intake", frozenset(self.intake))

    def __copy__(self) -> Capabilities:
        return self  # immutable all the way down

    def __deepcopy__(self, memo: dict[int, object]) -> Capabilities:
        return self

    def explain(self, command: str, default: str) -> str:
        return self.refusals.get(command, default)

    def as_dict(self) -> dict[str, object]:
        return {
            "acceptance": self.acceptance.value,
            "rejection": self.rejection.value,
            "shipment": self.shipment.value,
            "partial_shipment": self.partial_shipment,
            "serial_numbers": self.serial_numbers,
            "delivery_confirmation": self.delivery_confirmation.value,
            "seller_cancellation": self.seller_cancellation.value,
            "cancellation_reasons": {
                reason.value: sorted(s.value for s in states)
                for reason, states in self.cancellation_reasons.items()
            },
            "cancellation_requests": self.cancellation_requests,
            "cancellation_decision": self.cancellation_decision.value,
            "refusal_ships": self.refusal_ships,
            "attention_on_late_cancellation": self.attention_on_late_cancellation,
            "invoices": self.invoices,
            "release_on_accept": self.release_on_accept,
            "multiple_fulfilments": self.multiple_fulfilments,
            "short_ship": self.short_ship,
            "intake": sorted(self.intake),
        }
