"""Account health: one row per (channel, account, item), the last outcome of each; and
the :class:`~orderhub.channels.health.AccountHealth` the hub lends its accounts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Final

import sqlalchemy as sa

from orderhub.adapters.persistence.repositories import Transaction
from orderhub.adapters.persistence.tables import account_health
from orderhub.application.ports import Clock, HealthItem, UnitOfWorkFactory
from orderhub.logging import get_logger
from orderhub.sanitize import redact_text

log = get_logger(__name__)

DETAIL_MAX: Final = 2000
WRITE_SECONDS: Final = 2.0  # the longest one note may take to be written
KEPT_PER_ITEM: Final = 8  # outcomes of one item waiting to be written, at most


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
    """The caller never waits: :meth:`note` keeps the outcome (its time, its words with
    any credential masked) and returns; one background task writes what is kept, the
    latest outcome of each item, each in a short unit of work of its own bounded by
    :data:`WRITE_SECONDS`. A token fetch or a job is never held up by the database (a
    busy pool, a host that does not answer); a note that cannot be written is logged and
    dropped: health is a view, never a reason to fail or delay the call."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock
        # per item, the outcomes not written yet, in order; a run of equal outcomes keeps
        # its first (when the failing began) and its latest (its words)
        self._kept: dict[tuple[str, str, str], list[tuple[bool, str, datetime]]] = {}
        self._writer: asyncio.Task[None] | None = None

    async def note(
        self, channel: str, account: str, item: str, *, ok: bool, detail: str = ""
    ) -> None:
        said = "" if ok else redact_text(detail[: DETAIL_MAX * 2])[:DETAIL_MAX]
        kept = self._kept.setdefault((channel, account, item), [])
        outcome = (ok, said, self._clock.now())
        if len(kept) >= 2 and kept[-1][0] == kept[-2][0] == ok:
            kept[-1] = outcome
        else:
            kept.append(outcome)
            del kept[:-KEPT_PER_ITEM]  # a flapping item: its oldest outcomes go
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(
                self._write_kept(), name="health.write"
            )

    async def flush(self) -> None:
        """Until what was noted is written (or dropped): tests, and a process stopping
        (each write is bounded, so this is too)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def _write_kept(self) -> None:
        while self._kept:
            key = next(iter(self._kept))
            kept = self._kept[key]
            ok, detail, at = kept.pop(0)
            if not kept:
                del self._kept[key]
            channel, account, item = key
            try:
                async with asyncio.timeout(WRITE_SECONDS), self._uow() as uow:
                    await uow.health.note(channel, account, item, ok=ok, detail=detail, at=at)
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
