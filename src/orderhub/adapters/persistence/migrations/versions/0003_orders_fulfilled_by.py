"""orders.fulfilled_by: who ships the order's lines (seller, channel, mixed).

The orders list filters by it (a warehouse leaves out what the marketplace ships itself).
Existing rows are read from their stored document, page by page: an order whose leaf
lines all belong to channel-fulfilled fulfilments is ``channel``, one with both kinds
``mixed``, every other one ``seller`` (the default).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAGE: Final = 500


def fulfilled_by(document: Mapping[str, Any]) -> str:
    """What ``Order.fulfilled_by`` says, read off a stored order document."""
    channel_fulfilments = {
        f.get("id") for f in document.get("fulfilments") or () if f.get("fulfilled_by") == "channel"
    }
    lines = document.get("lines") or ()
    parents = {line.get("parent_line_id") for line in lines if line.get("parent_line_id")}
    kinds = {
        line.get("fulfilment_id") in channel_fulfilments
        for line in lines
        if line.get("id") not in parents
    }
    if kinds == {True}:
        return "channel"
    return "mixed" if len(kinds) > 1 else "seller"


def upgrade() -> None:
    op.add_column(
        "orders",
        sa.Column("fulfilled_by", sa.String(32), server_default="seller", nullable=False),
    )
    op.create_index("ix_orders_fulfilled_by_last_seq", "orders", ["fulfilled_by", "last_seq"])
    orders = sa.table(
        "orders", sa.column("id", sa.String()), sa.column("document"), sa.column("fulfilled_by")
    )
    bind = op.get_bind()
    after = ""
    while True:
        rows = bind.execute(
            sa.select(orders.c.id, orders.c.document)
            .where(orders.c.id > after)
            .order_by(orders.c.id)
            .limit(PAGE)
        ).all()
        for order_id, document in rows:
            stored = json.loads(document) if isinstance(document, str | bytes) else document
            kind = fulfilled_by(stored)
            if kind != "seller":
                bind.execute(
                    orders.update().where(orders.c.id == order_id).values(fulfilled_by=kind)
                )
        if len(rows) < PAGE:
            break
        after = rows[-1][0]


def downgrade() -> None:
    op.drop_index("ix_orders_fulfilled_by_last_seq", table_name="orders")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("fulfilled_by")
