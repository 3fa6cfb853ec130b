"""A limited API key's channels and accounts as a WHERE clause: lists are filtered in the
query, so pages stay full and cursors right."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from orderhub.adapters.persistence.tables import orders
from orderhub.application.access import AccountLimit


def within(
    limit: AccountLimit,
    channel: sa.ColumnElement[Any],
    account: sa.ColumnElement[Any],
    *,
    order_id: sa.ColumnElement[Any] | None = None,
) -> sa.ColumnElement[bool]:
    """Rows whose channel is named, or whose (channel, account) is: a NULL channel or
    account never matches (what :meth:`AccountLimit.admits` says). With ``order_id``, a
    row with no account of its own (a feed event written by a process older than
    migration 0006, during a rolling upgrade) takes its order's account."""
    clauses: list[sa.ColumnElement[bool]] = []
    if limit.channels:
        clauses.append(channel.in_(sorted(limit.channels)))
    for name, account_name in sorted(limit.accounts):
        own = account == account_name
        if order_id is not None:
            of_order = sa.select(orders.c.id).where(
                orders.c.channel == name, orders.c.account == account_name
            )
            own = sa.or_(own, sa.and_(account.is_(None), order_id.in_(of_order)))
        clauses.append(sa.and_(channel == name, own))
    return sa.or_(*clauses)
