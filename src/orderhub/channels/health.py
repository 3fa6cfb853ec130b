"""Account health: how what an account depends on fared last (its token, a polling job).

An adapter notes outcomes through :class:`AccountHealth` (``self.services.health``); the
hub keeps the last outcome of each item in its database, and the operator console shows
each account's items: ok, or failing since when and why. Noting never fails the call it
describes. :class:`LocalAccountHealth` keeps them in memory (tests, no database).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

Report = Callable[[bool, str], Awaitable[None]]
"""How a token cache (or any client part) tells one outcome: ok, or failed and why."""


class AccountHealth(Protocol):
    async def note(
        self, channel: str, account: str, item: str, *, ok: bool, detail: str = ""
    ) -> None:
        """``item`` (e.g. ``token``) of the account just succeeded, or failed with ``detail``."""
        ...


class LocalAccountHealth:
    """An :class:`AccountHealth` of this process alone: the last outcome per item."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, str, str], tuple[bool, str]] = {}

    async def note(
        self, channel: str, account: str, item: str, *, ok: bool, detail: str = ""
    ) -> None:
        self.last[(channel, account, item)] = (ok, "" if ok else detail)


def reporter(health: AccountHealth, channel: str, account: str, item: str) -> Report:
    """A :data:`Report` noting ``item`` of the account in ``health`` (for ``bind``)."""

    async def report(ok: bool, detail: str) -> None:
        await health.note(channel, account, item, ok=ok, detail=detail)

    return report
