"""What an API key limited to some channels and accounts may see (a 3PL, an agency).

A limit names whole channels (every account of them) and single (channel, account)
pairs; an order, a channel command, an inbox message or a feed event is within it when
its channel is named, or its (channel, account) is. Something with no channel (a feed
event of no order) is never within a limit: only unlimited keys see it. No limit at all
(``None`` wherever one is taken) sees everything."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

ACCOUNT_SEPARATOR: Final = "/"


@dataclass(frozen=True, kw_only=True, slots=True)
class AccountLimit:
    channels: frozenset[str] = field(default_factory=frozenset)
    accounts: frozenset[tuple[str, str]] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not self.channels and not self.accounts:
            raise ValueError("a limit names at least one channel or account")

    @classmethod
    def of(cls, *, channels: Iterable[str] = (), accounts: Iterable[str] = ()) -> AccountLimit:
        """From configuration: channel names and ``channel/account`` references."""
        return cls(channels=frozenset(channels), accounts=frozenset(map(split_account, accounts)))

    def admits(self, channel: str | None, account: str | None) -> bool:
        if channel is None:
            return False
        if channel in self.channels:
            return True
        return account is not None and (channel, account) in self.accounts

    def describe(self) -> str:
        """``topi, octopia/shop-fr``: for logs and messages."""
        named = sorted(self.channels) + [f"{c}/{a}" for c, a in sorted(self.accounts)]
        return ", ".join(named)


def admitted(limit: AccountLimit | None, channel: str | None, account: str | None) -> bool:
    """Whether a caller with ``limit`` (None: unlimited) may see this channel's account."""
    return limit is None or limit.admits(channel, account)


def split_account(reference: str) -> tuple[str, str]:
    """``"topi/shop-de"`` -> ``("topi", "shop-de")``."""
    channel, separator, account = reference.partition(ACCOUNT_SEPARATOR)
    if not separator or not channel or not account or ACCOUNT_SEPARATOR in account:
        raise ValueError(f"{reference!r} is not channel/account")
    return channel, account
