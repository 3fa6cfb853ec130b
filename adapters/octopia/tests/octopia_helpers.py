"""Shared by the Octopia tests: the simulator's credentials and an account's settings."""

from __future__ import annotations

from typing import Any, Final

from orderhub.channels.spi import AccountConfig
from orderhub_octopia.simulator import TOKEN_PATH

CLIENT_ID: Final = "orderhub"
CLIENT_SECRET: Final = "orderhub-secret"
SELLER_ID: Final = "98979"
#: the simulator's sales channels, as an account declares them
SALES_CHANNELS: Final[dict[str, dict[str, bool]]] = {
    "CDISFR": {
        "one_parcel_per_order": True,
        "line_cancellation": False,
        "refusal_ships": True,
        "invoices": True,
    },
    "OCTOBE": {"invoices": True},
    "AUTOFR": {"manual_acceptance": False, "invoices": True},
}


def settings(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "base_url": url,
        "token_url": f"{url}{TOKEN_PATH}",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "seller_id": SELLER_ID,
        "sales_channels": SALES_CHANNELS,
        "timeout_seconds": 5,
        **extra,
    }


def account_config(url: str, name: str = "main", **extra: Any) -> AccountConfig:
    return AccountConfig(channel="octopia", name=name, settings=settings(url, **extra))
