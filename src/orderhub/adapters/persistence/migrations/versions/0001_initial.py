"""Initial schema: orders, outbox, inbox, feed, cursors, idempotency keys.

Written by hand to match ``tables.py`` as it was; later migrations must not import it.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("channel_order_id", sa.Text(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("channel_status", sa.Text(), nullable=False),
        sa.Column("cancellation_requested", sa.Boolean(), nullable=False),
        sa.Column("order_number", sa.Text(), nullable=True),
        sa.Column("placed_at", _ts(), nullable=False),
        sa.Column("ship_by", _ts(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.UniqueConstraint(
            "channel",
            "account",
            "channel_order_id",
            name="uq_orders_channel_account_channel_order_id",
        ),
    )
    op.create_index("ix_orders_updated_at_id", "orders", ["updated_at", "id"])
    op.create_index("ix_orders_status_updated_at_id", "orders", ["status", "updated_at", "id"])
    op.create_index("ix_orders_ship_by", "orders", ["ship_by"])

    op.create_table(
        "channel_commands",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _ts(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("lease_until", _ts(), nullable=True),
        sa.Column("finished_at", _ts(), nullable=True),
        sa.Column("result", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_channel_commands"),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name="fk_channel_commands_order_id_orders"
        ),
    )
    op.create_index("ix_channel_commands_order_id", "channel_commands", ["order_id"])
    op.create_index(
        "ix_channel_commands_state_created_at", "channel_commands", ["state", "created_at"]
    )

    op.create_table(
        "inbox_messages",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("dedupe_key", sa.Text(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("headers", _json(), nullable=False),
        sa.Column("received_at", _ts(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("processed_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_inbox_messages"),
        sa.UniqueConstraint("dedupe_key", name="uq_inbox_messages_dedupe_key"),
    )
    op.create_index(
        "ix_inbox_messages_state_received_at", "inbox_messages", ["state", "received_at"]
    )

    op.create_table(
        "feed_events",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=True),
        sa.Column("channel", sa.String(64), nullable=True),
        sa.Column("occurred_at", _ts(), nullable=False),
        sa.Column("data", _json(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_feed_events"),
    )

    feed_counter = op.create_table(
        "feed_counter",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feed_counter"),
        sa.CheckConstraint("id = 1", name="ck_feed_counter_single_row"),
    )
    op.bulk_insert(feed_counter, [{"id": 1, "last_seq": 0}])

    op.create_table(
        "cursors",
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("channel", "account", "name", name="pk_cursors"),
    )

    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("body", _json(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_idempotency_keys"),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("cursors")
    op.drop_table("feed_counter")
    op.drop_table("feed_events")
    op.drop_table("inbox_messages")
    op.drop_table("channel_commands")
    op.drop_table("orders")
