"""Cursors for scheduled jobs, outside any unit of work: each call is its own transaction."""

from __future__ import annotations

from orderhub.application.ports import UnitOfWorkFactory


class UnitOfWorkCursorStore:
    """A :class:`~orderhub.channels.spi.CursorStore` for :class:`JobContext`: a job reads and
    moves its cursor between channel calls, so every call opens (and commits) its own unit
    of work rather than holding one open across network calls."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    async def get(self, channel: str, account: str, name: str) -> str | None:
        async with self._uow() as uow:
            return await uow.cursors.get(channel, account, name)

    async def set(self, channel: str, account: str, name: str, value: str) -> None:
        async with self._uow() as uow:
            await uow.cursors.set(channel, account, name, value)
            await uow.commit()
