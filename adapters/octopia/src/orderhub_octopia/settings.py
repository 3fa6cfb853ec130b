"""An Octopia account's settings (``[[channels.accounts]] settings``), checked once.

Every key is described in ``docs/channels/octopia.md``; a wrong one is a ``ValueError``
naming it, raised when the account is opened (the hub refuses to start), never later.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

from orderhub_octopia import wire

NAME: Final = "octopia"


@dataclass(frozen=True, kw_only=True, slots=True)
class SalesChannel:
    """One sales channel's rules (Octopia sets them per channel; Cdiscount is ``CDISFR``)."""

    id: str
    line_level: bool = True  # lines accepted, refused, shipped, cancelled one by one
    manual_acceptance: bool = True  # false: auto-acceptance, orders arrive accepted
    one_parcel_per_order: bool = False  # Cdiscount: one parcel per complete order
    line_cancellation: bool | None = None  # default: line_level (Cdiscount: whole only)
    refusal_ships: bool = False  # Cdiscount: refusing a customer's request = shipping
    invoices: bool = False  # the channel takes the seller's invoices

    @property
    def cancels_lines(self) -> bool:
        return self.line_level if self.line_cancellation is None else self.line_cancellation


_FLAGS: Final = frozenset(f.name for f in dataclasses.fields(SalesChannel) if f.name != "id")


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    seller_id: str
    client_id: str
    client_secret: str = field(repr=False)
    base_url: str = wire.PRODUCTION_BASE_URL
    token_url: str = wire.TOKEN_URL
    timeout_seconds: float = 20.0
    token_requests_per_hour: int = wire.TOKENS_PER_HOUR
    poll_interval_seconds: float = 300.0
    poll_overlap_minutes: float = 60.0
    poll_lookback_hours: float = 14 * 24.0
    poll_page_size: int = wire.MAX_PAGE_SIZE
    poll_per_sales_channel: bool = False
    poll_verify_count: bool = True
    poll_page_attempts: int = 3
    carriers: tuple[str, ...] | None = None
    carriers_refresh_seconds: float = 86400.0
    sales_channels: Mapping[str, SalesChannel] = field(default_factory=lambda: MappingProxyType({}))
    shipping_cost_refund: Literal["whole_order", "always", "never"] = "whole_order"
    accept_request_reason: str = "customer-claim"
    invoice_upload: Literal["document", "import"] = "document"
    wire: wire.WireOptions = field(default_factory=wire.WireOptions)

    def sales_channel(self, sc_id: str | None) -> SalesChannel | None:
        return self.sales_channels.get(sc_id or "")


def _str(raw: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: {key} is required (a non-empty string)")
    return value


def _number(raw: Mapping[str, Any], key: str, where: str, default: float, *, low: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise ValueError(f"{where}: {key} must be a number >= {low:g}, not {value!r}")
    return float(value)


def _sales_channels(raw: Any, where: str) -> Mapping[str, SalesChannel]:
    if raw is None:
        return MappingProxyType({})
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: sales_channels maps sales channel ids to their settings")
    found = {}
    for sc_id, flags in raw.items():
        if not isinstance(flags, Mapping):
            raise ValueError(f"{where}: sales channel {sc_id!r} needs a table of settings")
        unknown = sorted(set(flags) - _FLAGS)
        if unknown:
            known = ", ".join(sorted(_FLAGS))
            raise ValueError(
                f"{where}: sales channel {sc_id!r}: unknown setting {unknown[0]!r} ({known})"
            )
        if not all(isinstance(v, bool) for v in flags.values()):
            raise ValueError(f"{where}: sales channel {sc_id!r}: settings are true or false")
        found[str(sc_id)] = SalesChannel(id=str(sc_id), **flags)
    return MappingProxyType(found)


def _seller_id(value: Any, where: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: seller_id is required (the numeric SellerId)")
    return value.strip()


def parse(account: str, raw: Mapping[str, Any]) -> Settings:
    where = f"{NAME} account {account!r}"
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{where}: unknown setting {unknown[0]!r}")
    carriers = raw.get("carriers")
    if carriers is not None and (
        isinstance(carriers, str) or not all(isinstance(c, str) for c in carriers)
    ):
        raise ValueError(f"{where}: carriers is a list of carrier labels")
    choices = {
        "shipping_cost_refund": ("whole_order", "always", "never"),
        "invoice_upload": ("document", "import"),
    }
    for key, allowed in choices.items():
        if key in raw and raw[key] not in allowed:
            raise ValueError(f"{where}: {key} is one of {', '.join(allowed)}")
    reason = raw.get("accept_request_reason", "customer-claim")
    if reason not in wire.REASON_CODE_STATES:
        raise ValueError(f"{where}: accept_request_reason {reason!r} is no Octopia reason code")
    for flag in ("poll_per_sales_channel", "poll_verify_count"):
        if not isinstance(raw.get(flag, False), bool):
            raise ValueError(f"{where}: {flag} is true or false")
    page_size = int(_number(raw, "poll_page_size", where, wire.MAX_PAGE_SIZE, low=1))
    if page_size > wire.MAX_PAGE_SIZE:
        raise ValueError(f"{where}: poll_page_size is at most {wire.MAX_PAGE_SIZE}")
    try:
        options = wire.WireOptions.of(raw.get("wire"))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return Settings(
        seller_id=_seller_id(raw.get("seller_id"), where),
        client_id=_str(raw, "client_id", where),
        client_secret=_str(raw, "client_secret", where),
        base_url=_str(raw, "base_url", where, wire.PRODUCTION_BASE_URL),
        token_url=_str(raw, "token_url", where, wire.TOKEN_URL),
        timeout_seconds=_number(raw, "timeout_seconds", where, 20.0, low=0.1),
        token_requests_per_hour=int(
            _number(raw, "token_requests_per_hour", where, wire.TOKENS_PER_HOUR, low=1)
        ),
        poll_interval_seconds=_number(raw, "poll_interval_seconds", where, 300.0, low=0.1),
        poll_overlap_minutes=_number(raw, "poll_overlap_minutes", where, 60.0, low=0),
        poll_lookback_hours=_number(raw, "poll_lookback_hours", where, 14 * 24.0, low=0),
        poll_page_size=page_size,
        poll_per_sales_channel=bool(raw.get("poll_per_sales_channel", False)),
        poll_verify_count=bool(raw.get("poll_verify_count", True)),
        poll_page_attempts=int(_number(raw, "poll_page_attempts", where, 3, low=1)),
        carriers=tuple(carriers) if carriers is not None else None,
        carriers_refresh_seconds=_number(raw, "carriers_refresh_seconds", where, 86400, low=1),
        sales_channels=_sales_channels(raw.get("sales_channels"), where),
        shipping_cost_refund=raw.get("shipping_cost_refund", "whole_order"),
        accept_request_reason=reason,
        invoice_upload=raw.get("invoice_upload", "document"),
        wire=options,
    )
