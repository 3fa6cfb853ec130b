"""Account health: one row per (channel, account, item), the last outcome of each; and
the :class:`~orderhub.channels.health.AccountHealth` the hub lends its accounts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

import sqlalchemy as sa

from orderhub.adapters.persistence.repositories import Transaction
from orderhub.adapters.persistence.tables import account_health
from orderhub.application.ports import Clock, HealthItem, UnitOfWorkFactory
from orderhub.logging import get_logger

log = get_logger(__name__)

DETAIL_MAX: Final = 2000


class SqlHealthStore:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    async def note(
        self, channel: str, account: str, item: str, *, ok: bool, detail: str, at: datetime
    ) -> None:
        h = account_health.c
        detail = "" if ok else detail[:DETAIL_MAX]
        values = {
            "channel": channel,
            "account": account,
            "item": item,
            "ok": ok,
            "checked_at": at,
            "last_ok_at": at if ok else None,
            "failing_since": None if ok else at,
            "detail": detail,
        }
        insert = self._tx.insert(account_health).values(**values)
        excluded = insert.excluded
        update: dict[str, object] = {"ok": ok, "checked_at": at, "detail": detail}
        if ok:
            update |= {"last_ok_at": at, "failing_since": None}
        else:  # a failure keeps the time the failing began
            update["failing_since"] = sa.func.coalesce(h.failing_since, excluded.failing_since)
        await self._tx.conn().execute(
            insert.on_conflict_do_update(index_elements=[h.channel, h.account, h.item], set_=update)
        )

    async def all(self) -> Sequence[HealthItem]:
        h = account_health.c
        result = await self._tx.conn().execute(
            sa.select(account_health).order_by(h.channel, h.account, h.item)
        )
        return [
            HealthItem(
                channel=row["channel"],
                account=row["account"],
                item=row["item"],
                ok=bool(row["ok"]),
                checked_at=row["checked_at"],  # UTCDateTime: aware, in UTC
                last_ok_at=row["last_ok_at"],
                failing_since=row["failing_since"],
                detail=row["detail"],
            )
            for row in result.mappings()
        ]


class UnitOfWorkAccountHealth:
    """Each note its own short unit of work; a note that cannot be written (the database
    down) is logged and dropped: health is a view, never a reason to fail the call."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def note(
        self, channel: str, account: str, item: str, *, ok: bool, detail: str = ""
    ) -> None:
        try:
            async with self._uow() as uow:
                await uow.health.note(
                    channel,
                    account,
                    item,
                    ok=ok,
                    detail=detail[:DETAIL_MAX],
                    at=self._clock.now(),
                )
                await uow.commit()
        except Exception as exc:
            log.warning(
                "health.note_failed",
                channel=channel,
                account=account,
                item=item,
                ok=ok,
                error=f"{type(exc).__name__}: {exc}",
            )
