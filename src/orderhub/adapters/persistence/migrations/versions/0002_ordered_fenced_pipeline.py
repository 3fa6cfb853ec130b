"""Ordered, fenced, paced pipelines; attention; gapless orders list.

* channel_commands: ``seq`` (the command's place among its order's commands, unique per
  order), ``fence`` (claims ever made), ``queued_at``, ``held_by``;
* inbox_messages: ``seq`` (arrival number, from a sequence on PostgreSQL), ``order_key``,
  ``fence``, ``next_attempt_at``, ``lease_until``, ``queued_at``;
* orders: ``needs_attention``, ``last_seq`` (the feed sequence of the order's newest
  event), ``refreshed_at``;
* feed_events: an index on ``occurred_at`` (retention).

Existing rows are numbered in the order they were created.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _zero() -> sa.TextClause:
    return sa.text("0")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"

    # plain ADD COLUMNs (no batch): SQLite adds them in place; rebuilding orders would break
    # the foreign key channel_commands holds on it
    op.add_column(
        "orders",
        sa.Column("needs_attention", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "orders", sa.Column("last_seq", sa.BigInteger(), server_default=_zero(), nullable=False)
    )
    op.add_column("orders", sa.Column("refreshed_at", _ts(), nullable=True))
    op.execute(  # one pass over the feed, grouped (no per-order subquery)
        "UPDATE orders SET last_seq = newest.seq FROM ("
        "SELECT order_id, MAX(seq) AS seq FROM feed_events "
        "WHERE order_id IS NOT NULL GROUP BY order_id) AS newest "
        "WHERE orders.id = newest.order_id"
    )
    op.create_index("ix_orders_last_seq", "orders", ["last_seq"])
    op.create_index("ix_orders_needs_attention_last_seq", "orders", ["needs_attention", "last_seq"])

    with op.batch_alter_table("channel_commands") as batch:
        batch.add_column(sa.Column("seq", sa.Integer(), server_default=_zero(), nullable=False))
        batch.add_column(sa.Column("fence", sa.Integer(), server_default=_zero(), nullable=False))
        batch.add_column(sa.Column("queued_at", _ts(), nullable=True))
        batch.add_column(sa.Column("held_by", sa.String(64), nullable=True))
    op.execute(  # numbered per order in creation order, by a window (linear, not quadratic)
        "UPDATE channel_commands SET fence = attempts, seq = numbered.n FROM ("
        "SELECT id, ROW_NUMBER() OVER (PARTITION BY order_id ORDER BY created_at, id) AS n "
        "FROM channel_commands) AS numbered WHERE channel_commands.id = numbered.id"
    )
    with op.batch_alter_table("channel_commands") as batch:
        batch.create_unique_constraint("uq_channel_commands_order_id_seq", ["order_id", "seq"])
    op.execute(  # every pending command is due and counts as queued when it was created
        "UPDATE channel_commands SET next_attempt_at = COALESCE(next_attempt_at, created_at), "
        "queued_at = COALESCE(next_attempt_at, created_at) WHERE state = 'pending'"
    )
    op.create_index(
        "ix_channel_commands_state_queued_at", "channel_commands", ["state", "queued_at"]
    )

    with op.batch_alter_table("inbox_messages") as batch:
        batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("order_key", sa.Text(), nullable=True))
        batch.add_column(sa.Column("fence", sa.Integer(), server_default=_zero(), nullable=False))
        batch.add_column(sa.Column("next_attempt_at", _ts(), nullable=True))
        batch.add_column(sa.Column("lease_until", _ts(), nullable=True))
        batch.add_column(sa.Column("queued_at", _ts(), nullable=True))
    op.execute(
        "UPDATE inbox_messages SET fence = attempts, seq = numbered.n FROM ("
        "SELECT id, ROW_NUMBER() OVER (ORDER BY received_at, id) AS n "
        "FROM inbox_messages) AS numbered WHERE inbox_messages.id = numbered.id"
    )
    with op.batch_alter_table("inbox_messages") as batch:
        batch.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch.create_unique_constraint("uq_inbox_messages_seq", ["seq"])
    if postgres:  # new numbers come from a sequence (SQLite: max + 1, one writer at a time)
        op.execute("CREATE SEQUENCE inbox_messages_seq")
        op.execute(
            "SELECT setval('inbox_messages_seq', "
            "COALESCE((SELECT MAX(seq) FROM inbox_messages), 0) + 1, false)"
        )
    op.execute(
        "UPDATE inbox_messages SET next_attempt_at = received_at, queued_at = received_at "
        "WHERE state = 'received'"
    )
    op.create_index("ix_inbox_messages_state_queued_at", "inbox_messages", ["state", "queued_at"])
    op.create_index(
        "ix_inbox_messages_order_key_seq",
        "inbox_messages",
        ["channel", "account", "order_key", "seq"],
    )

    op.create_index("ix_feed_events_occurred_at", "feed_events", ["occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_feed_events_occurred_at", table_name="feed_events")
    op.drop_index("ix_inbox_messages_order_key_seq", table_name="inbox_messages")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE inbox_messages_seq")
    op.drop_index("ix_inbox_messages_state_queued_at", table_name="inbox_messages")
    with op.batch_alter_table("inbox_messages") as batch:
        batch.drop_constraint("uq_inbox_messages_seq", type_="unique")
        for name in ("queued_at", "lease_until", "next_attempt_at", "fence", "order_key", "seq"):
            batch.drop_column(name)
    op.drop_index("ix_channel_commands_state_queued_at", table_name="channel_commands")
    with op.batch_alter_table("channel_commands") as batch:
        batch.drop_constraint("uq_channel_commands_order_id_seq", type_="unique")
        for name in ("held_by", "queued_at", "fence", "seq"):
            batch.drop_column(name)
    op.drop_index("ix_orders_needs_attention_last_seq", table_name="orders")
    op.drop_index("ix_orders_last_seq", table_name="orders")
    for name in ("refreshed_at", "last_seq", "needs_attention"):
        op.drop_column("orders", name)
