"""A limited API key's channels and accounts as a WHERE clause: lists are filtered in the
query, so pages stay full and cursors right."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from orderhub.application.access import AccountLimit


def within(
    limit: AccountLimit, channel: sa.ColumnElement[Any], account: sa.ColumnElement[Any]
) -> sa.ColumnElement[bool]:
    """Rows whose channel is named, or whose (channel, account) is: a NULL channel or
    account never matches (what :meth:`AccountLimit.admits` says)."""
    clauses: list[sa.ColumnElement[bool]] = []
    if limit.channels:
        clauses.append(channel.in_(sorted(limit.channels)))
    clauses.extend(
        sa.and_(channel == name, account == account_name)
        for name, account_name in sorted(limit.accounts)
    )
    return sa.or_(*clauses)
