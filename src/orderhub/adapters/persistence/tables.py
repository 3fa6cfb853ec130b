"""The schema, as SQLAlchemy Core tables. ``migrations/versions`` must match it (a test checks).

Orders keep what the warehouse filters and sorts on in real columns and the rest of the
aggregate in one JSON ``document``: the aggregate is always read and written whole, so
splitting lines, shipments and cancellations into tables would buy joins and nothing else.
Strings that come from outside (channel ids, statuses, dedupe and idempotency keys) are
``Text``: a long value from a channel must never make a write fail.
"""

from __future__ import annotations

from typing import Any, Final

import sqlalchemy as sa

from orderhub.adapters.persistence.coltypes import UTCDateTime, json_type

NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID: Final = 64  # hub ids are UUIDv7 strings (36); leave room for other schemes
NAME: Final = 64  # channel, account and other names we configure
ENUM: Final = 32  # values of our own enums

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("channel", sa.String(NAME), nullable=False),
    sa.Column("account", sa.String(NAME), nullable=False),
    sa.Column("channel_order_id", sa.Text(), nullable=False),
    sa.Column("status", sa.String(ENUM), nullable=False),
    sa.Column("channel_status", sa.Text(), nullable=False),
    sa.Column("cancellation_requested", sa.Boolean(), nullable=False),
    sa.Column("order_number", sa.Text(), nullable=True),
    sa.Column("placed_at", UTCDateTime(), nullable=False),
    sa.Column("ship_by", UTCDateTime(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("document", json_type(), nullable=False),
    sa.Column("needs_attention", sa.Boolean(), server_default=sa.false(), nullable=False),
    # who ships the lines (seller, channel, mixed): the orders list filters by it
    sa.Column("fulfilled_by", sa.String(ENUM), server_default="seller", nullable=False),
    # the feed sequence of the order's newest event, set in the commit that writes it: the
    # orders list pages by it, as gapless as the feed
    sa.Column("last_seq", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    # when the scheduler last asked the channel for the order (not part of the aggregate)
    sa.Column("refreshed_at", UTCDateTime(), nullable=True),
    # when an invoice the channel has not decided is to be checked next (the earliest)
    sa.Column("next_invoice_check", UTCDateTime(), nullable=True),
    sa.UniqueConstraint("channel", "account", "channel_order_id"),
    sa.Index("ix_orders_updated_at_id", "updated_at", "id"),
    sa.Index("ix_orders_status_updated_at_id", "status", "updated_at", "id"),
    sa.Index("ix_orders_ship_by", "ship_by"),
    sa.Index("ix_orders_last_seq", "last_seq"),
    sa.Index("ix_orders_needs_attention_last_seq", "needs_attention", "last_seq"),
    sa.Index("ix_orders_fulfilled_by_last_seq", "fulfilled_by", "last_seq"),
    sa.Index("ix_orders_next_invoice_check", "next_invoice_check"),
    sa.Index("ix_orders_created_at", "created_at"),  # orders received per hour
)

last_heard = sa.case(
    (
        sa.and_(orders.c.refreshed_at.is_not(None), orders.c.refreshed_at > orders.c.updated_at),
        orders.c.refreshed_at,
    ),
    else_=orders.c.updated_at,
)
"""When the hub last heard of an order (a change, or the scheduler asking the channel): the
refresh job takes the longest silent ones first, through ``ix_orders_last_heard_id``."""
sa.Index("ix_orders_last_heard_id", last_heard, orders.c.id)

documents = sa.Table(
    "documents",
    metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("order_id", sa.String(ID), sa.ForeignKey("orders.id"), nullable=False),
    sa.Column("content_type", sa.String(NAME), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("filename", sa.Text(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # where the bytes are: "database" (``content``) or "directory" (a file named by id)
    sa.Column("storage", sa.String(ENUM), nullable=False),
    sa.Column("content", sa.LargeBinary(), nullable=True),
    sa.Index("ix_documents_order_id", "order_id"),
)

channel_commands = sa.Table(
    "channel_commands",
    metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("order_id", sa.String(ID), sa.ForeignKey("orders.id"), nullable=False),
    sa.Column("channel", sa.String(NAME), nullable=False),
    sa.Column("account", sa.String(NAME), nullable=False),
    sa.Column("kind", sa.String(ENUM), nullable=False),
    sa.Column("payload", json_type(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("state", sa.String(ENUM), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("result", json_type(), nullable=False),
    # the command's place among its order's commands: sent in this order
    sa.Column("seq", sa.Integer(), server_default=sa.text("0"), nullable=False),
    # claims ever made; an outcome is written only under the claim it was made with
    sa.Column("fence", sa.Integer(), server_default=sa.text("0"), nullable=False),
    sa.Column("queued_at", UTCDateTime(), nullable=True),
    sa.Column("held_by", sa.String(ID), nullable=True),
    sa.UniqueConstraint("order_id", "seq"),
    sa.Index("ix_channel_commands_order_id", "order_id"),
    sa.Index("ix_channel_commands_state_created_at", "state", "created_at"),
    sa.Index("ix_channel_commands_state_queued_at", "state", "queued_at"),
)

INBOX_SEQ: Final = sa.Sequence("inbox_messages_seq", metadata=metadata)

inbox_messages = sa.Table(
    "inbox_messages",
    metadata,
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("channel", sa.String(NAME), nullable=False),
    sa.Column("account", sa.String(NAME), nullable=False),
    sa.Column("dedupe_key", sa.Text(), nullable=False),
    sa.Column("body", sa.LargeBinary(), nullable=False),
    sa.Column("headers", json_type(), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("source", sa.String(ENUM), nullable=False),
    sa.Column("state", sa.String(ENUM), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("processed_at", UTCDateTime(), nullable=True),
    # arrival number: PostgreSQL draws it from a sequence, SQLite (one writer at a time)
    # takes max + 1 in the insert (see outbox.py)
    sa.Column("seq", sa.BigInteger(), INBOX_SEQ, nullable=False),
    sa.Column("order_key", sa.Text(), nullable=True),
    sa.Column("fence", sa.Integer(), server_default=sa.text("0"), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    sa.Column("queued_at", UTCDateTime(), nullable=True),
    sa.UniqueConstraint("dedupe_key"),
    sa.UniqueConstraint("seq"),
    sa.Index("ix_inbox_messages_state_received_at", "state", "received_at"),
    sa.Index("ix_inbox_messages_state_queued_at", "state", "queued_at"),
    sa.Index("ix_inbox_messages_order_key_seq", "channel", "account", "order_key", "seq"),
)

feed_events = sa.Table(
    "feed_events",
    metadata,
    # assigned by the unit of work under the feed_counter lock, never by a sequence
    sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("type", sa.String(NAME), nullable=False),
    sa.Column("order_id", sa.String(ID), nullable=True),
    sa.Column("channel", sa.String(NAME), nullable=True),
    sa.Column("occurred_at", UTCDateTime(), nullable=False),
    sa.Column("data", json_type(), nullable=False),
    # the order's account (migration 0006): a limited API key reads only its own events
    sa.Column("account", sa.String(NAME), nullable=True),
    sa.Index("ix_feed_events_occurred_at", "occurred_at"),
    sa.Index("ix_feed_events_channel_account_seq", "channel", "account", "seq"),
    sa.Index("ix_feed_events_order_id_seq", "order_id", "seq"),  # an order's timeline
)

FEED_COUNTER_ID: Final = 1

feed_counter = sa.Table(
    "feed_counter",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("last_seq", sa.BigInteger(), nullable=False),
    sa.CheckConstraint(f"id = {FEED_COUNTER_ID}", name="single_row"),
)

cursors = sa.Table(
    "cursors",
    metadata,
    sa.Column("channel", sa.String(NAME), primary_key=True),
    sa.Column("account", sa.String(NAME), primary_key=True),
    sa.Column("name", sa.String(NAME), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
)

rate_budgets = sa.Table(
    "rate_budgets",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    # the times (epoch seconds) of the spends still inside the window, at most its limit
    sa.Column("spent", json_type(), nullable=False),
)

account_health = sa.Table(
    "account_health",
    metadata,
    sa.Column("channel", sa.String(NAME), primary_key=True),
    sa.Column("account", sa.String(NAME), primary_key=True),
    sa.Column("item", sa.String(NAME), primary_key=True),
    sa.Column("ok", sa.Boolean(), nullable=False),
    sa.Column("checked_at", UTCDateTime(), nullable=False),
    sa.Column("last_ok_at", UTCDateTime(), nullable=True),
    sa.Column("failing_since", UTCDateTime(), nullable=True),
    sa.Column("detail", sa.Text(), nullable=False),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("key", sa.Text(), primary_key=True),
    sa.Column("fingerprint", sa.Text(), nullable=False),
    sa.Column("status_code", sa.Integer(), nullable=False),
    sa.Column("body", json_type(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_idempotency_keys_created_at", "created_at"),
)


@sa.event.listens_for(feed_counter, "after_create")
def _seed_feed_counter(target: sa.Table, connection: sa.Connection, **_: Any) -> None:
    """``metadata.create_all`` gets the counter row too (the migration inserts it itself)."""
    connection.execute(target.insert().values(id=FEED_COUNTER_ID, last_seq=0))
