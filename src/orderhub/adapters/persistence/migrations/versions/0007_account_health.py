"""Account health, and the indexes of the console's reads.

* account_health: per (channel, account, item) the last outcome of what the account
  depends on (its token, each scheduled job): ok or failing since when, and why;
* ix_feed_events_order_id_seq: an order's timeline (its feed events, newest first);
* ix_orders_created_at: orders received per hour over the last 48 hours.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account_health",
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("item", sa.String(64), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_ok_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("channel", "account", "item", name="pk_account_health"),
    )
    op.create_index("ix_feed_events_order_id_seq", "feed_events", ["order_id", "seq"])
    op.create_index("ix_orders_created_at", "orders", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_orders_created_at", table_name="orders")
    op.drop_index("ix_feed_events_order_id_seq", table_name="feed_events")
    op.drop_table("account_health")
