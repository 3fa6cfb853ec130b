"""The test channel's profiles: each mimics one real channel's capabilities and rules."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from orderhub.channels.spi import (
    AccountConfig,
)
from orderhub.domain.capabilities import Capabilities, DeliveryConfirmation, Scope
from orderhub.domain.values import (
    FulfilledBy,
    OrderStatus,
    Reason,
)

NAME: Final = "testchannel"
DEFAULT_TIMEOUT_SECONDS: Final = 5.0
TRANSIENT_STATUSES: Final = frozenset({408, 409, 429})


# --- profiles ---------------------------------------------------------------------------


class Profile(StrEnum):
    TOPI = "topi"
    OCTOPIA = "octopia"
    SPRESSO = "spresso"


_ACCEPTED: Final = frozenset({OrderStatus.ACCEPTED})
_IN_PREPARATION: Final = frozenset({OrderStatus.READY_TO_SHIP, OrderStatus.PARTIALLY_SHIPPED})
_SHIPPED_OR_DELIVERED: Final = frozenset({OrderStatus.SHIPPED, OrderStatus.DELIVERED})

#: Octopia's seller cancellation codes: canonical reason and the canonical statuses that
#: stand for the Octopia states the code is allowed in (Accepted; InPreparation, which
#: covers a partly shipped order; Shipped; Delivered).
OCTOPIA_REASON_CODES: Final[Mapping[str, tuple[Reason, frozenset[OrderStatus]]]] = MappingProxyType(
    {
        "seller-refusal": (Reason.SELLER_REFUSAL, _ACCEPTED | _IN_PREPARATION),
        "customer-cancellation": (Reason.CUSTOMER_REQUEST, _SHIPPED_OR_DELIVERED),
        "customer-claim": (
            Reason.CUSTOMER_CLAIM,
            _ACCEPTED | _IN_PREPARATION | _SHIPPED_OR_DELIVERED,
        ),
        "refund-from-seller": (Reason.SELLER_REFUND, _SHIPPED_OR_DELIVERED),
        "customer-withdrawal": (Reason.CUSTOMER_WITHDRAWAL, _SHIPPED_OR_DELIVERED),
        "no-customer-withdrawal-in-store": (
            Reason.NOT_COLLECTED_IN_STORE,
            _SHIPPED_OR_DELIVERED,
        ),
        "reference-mistake": (Reason.WRONG_REFERENCE, _SHIPPED_OR_DELIVERED),
        "damaged": (Reason.DAMAGED, _SHIPPED_OR_DELIVERED),
        "multiple-shipping": (Reason.DUPLICATE_SHIPMENT, _SHIPPED_OR_DELIVERED),
        "missing-product": (Reason.MISSING_ITEM, _SHIPPED_OR_DELIVERED),
        "breakdown-during-unpacking": (Reason.DEFECTIVE_ON_ARRIVAL, _SHIPPED_OR_DELIVERED),
        "delivery-impossible": (Reason.DELIVERY_IMPOSSIBLE, _SHIPPED_OR_DELIVERED),
        "customer-refusal": (Reason.REFUSED_BY_CUSTOMER, _SHIPPED_OR_DELIVERED),
        "transport-damage": (Reason.TRANSPORT_DAMAGE, _SHIPPED_OR_DELIVERED),
        "not-collected-at-the-collection-point": (
            Reason.NOT_COLLECTED_AT_PICKUP_POINT,
            _SHIPPED_OR_DELIVERED,
        ),
    }
)
#: Octopia's supply modes (``lines[].offer.supplyMode``) and who ships such a line:
#: ``Fulfillment`` (Octopia's logistics partner) and ``Xdock`` (the sales channel's
#: warehouse) are shipped by the channel and never reach our warehouse.
OCTOPIA_SUPPLY_MODES: Final[Mapping[str, FulfilledBy]] = MappingProxyType(
    {
        "Seller": FulfilledBy.SELLER,
        "Fulfillment": FulfilledBy.CHANNEL,
        "Xdock": FulfilledBy.CHANNEL,
    }
)
#: canonical reason -> Octopia code (the table is one to one)
OCTOPIA_CODE_FOR_REASON: Final[Mapping[Reason, str]] = MappingProxyType(
    {reason: code for code, (reason, _) in OCTOPIA_REASON_CODES.items()}
)


def topi_like() -> Capabilities:
    return Capabilities(
        acceptance=Scope.ORDER,
        rejection=Scope.ORDER,
        shipment=Scope.LINE,
        partial_shipment=True,
        serial_numbers=True,
        delivery_confirmation=DeliveryConfirmation.NONE,
        seller_cancellation=Scope.NONE,
        cancellation_requests=False,
        release_on_accept=True,
        multiple_fulfilments=False,
        short_ship=False,
        intake=frozenset({"webhook"}),
        refusals=MappingProxyType(
            {
                "reject": "a topi order can be rejected only before it is accepted (confirmed)",
                "cancel": "topi has no seller cancellation: reject the order before "
                "confirmation; after shipment it is a return",
                "deliver": "topi has no delivery step: an order is complete once all shipped",
            }
        ),
    )


def octopia_like() -> Capabilities:
    return Capabilities(
        acceptance=Scope.LINE,
        rejection=Scope.LINE,
        shipment=Scope.LINE,
        partial_shipment=True,
        serial_numbers=False,
        delivery_confirmation=DeliveryConfirmation.CHANNEL,
        seller_cancellation=Scope.LINE,
        cancellation_reasons=MappingProxyType(dict(OCTOPIA_REASON_CODES.values())),
        cancellation_requests=True,
        release_on_accept=False,
        multiple_fulfilments=False,
        short_ship=False,
        invoices=True,  # taken asynchronously (testing/channel/invoices.py)
        intake=frozenset({"polling"}),
        refusals=MappingProxyType(
            {"deliver": "Octopia reports delivery itself: the seller does not confirm it"}
        ),
    )


def spresso_like() -> Capabilities:
    return Capabilities(
        acceptance=Scope.NONE,
        rejection=Scope.NONE,
        shipment=Scope.LINE,
        partial_shipment=True,
        serial_numbers=False,
        delivery_confirmation=DeliveryConfirmation.SELLER,
        seller_cancellation=Scope.NONE,
        cancellation_requests=False,
        release_on_accept=True,
        multiple_fulfilments=True,
        short_ship=True,
        intake=frozenset({"webhook"}),
        refusals=MappingProxyType(
            {
                "accept": "Spresso orders arrive ready to ship: there is nothing to accept",
                "reject": "Spresso has no rejection: ship short (final) to cancel what "
                "cannot be sent",
                "cancel": "Spresso takes no cancellation by API: ship short (final), or "
                "cancel in Spresso's admin console",
            }
        ),
    )


PROFILES: Final[Mapping[Profile, Any]] = MappingProxyType(
    {Profile.TOPI: topi_like, Profile.OCTOPIA: octopia_like, Profile.SPRESSO: spresso_like}
)


def profile_of(config: AccountConfig) -> Profile:
    value = config.settings.get("profile", Profile.TOPI.value)
    try:
        return Profile(value)
    except ValueError:
        known = ", ".join(p.value for p in Profile)
        raise ValueError(
            f"{NAME} account {config.name!r}: unknown profile {value!r} (one of {known})"
        ) from None


def capabilities_for(config: AccountConfig) -> Capabilities:
    """The profile's capabilities with the account's ``capabilities`` overrides."""
    caps: Capabilities = PROFILES[profile_of(config)]()
    overrides = config.settings.get("capabilities") or {}
    if not overrides:
        return caps
    fields = {f.name: f for f in dataclasses.fields(Capabilities)}
    changes: dict[str, Any] = {}
    for name, value in overrides.items():
        if name not in fields or name in ("cancellation_reasons", "refusals"):
            raise ValueError(f"{NAME} account {config.name!r}: cannot override {name!r}")
        current = getattr(caps, name)
        if isinstance(current, StrEnum):
            changes[name] = type(current)(value)
        elif isinstance(current, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{NAME} account {config.name!r}: {name} must be true or false")
            changes[name] = value
        else:  # intake
            changes[name] = frozenset(value)
    return dataclasses.replace(caps, **changes)
