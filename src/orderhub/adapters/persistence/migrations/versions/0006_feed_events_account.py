"""feed_events.account: the account of the event's order, next to its channel.

An API key limited to some channels and accounts reads only their events; the feed is
filtered in the query, by (channel, account, seq). Existing events are given their
order's account; an event of no order keeps none (only unlimited keys read those).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # a plain ADD COLUMN, nullable: no table rebuild on SQLite, no rewrite on PostgreSQL
    op.add_column("feed_events", sa.Column("account", sa.String(64), nullable=True))
    feed_events = sa.table(
        "feed_events",
        sa.column("order_id", sa.String()),
        sa.column("account", sa.String()),
    )
    orders = sa.table("orders", sa.column("id", sa.String()), sa.column("account", sa.String()))
    op.get_bind().execute(
        feed_events.update()
        .where(feed_events.c.order_id.is_not(None))
        .values(
            account=sa.select(orders.c.account)
            .where(orders.c.id == feed_events.c.order_id)
            .scalar_subquery()
        )
    )
    op.create_index(
        "ix_feed_events_channel_account_seq", "feed_events", ["channel", "account", "seq"]
    )


def downgrade() -> None:
    op.drop_index("ix_feed_events_channel_account_seq", table_name="feed_events")
    with op.batch_alter_table("feed_events") as batch:
        batch.drop_column("account")
