"""Invoices: the documents table and the orders' next invoice check.

* documents: one row per stored document (an invoice's PDF): its type, size, sha256,
  file name and where its bytes are (``storage``: ``database``, in ``content``, or
  ``directory``, a file named by the document's id);
* orders: ``next_invoice_check``, when the earliest invoice the channel has not decided
  is to be checked (the scheduler's query). No order has an invoice yet: it starts NULL.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # a plain ADD COLUMN (no batch): rebuilding orders on SQLite would break the foreign
    # keys other tables hold on it
    op.add_column(
        "orders", sa.Column("next_invoice_check", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index("ix_orders_next_invoice_check", "orders", ["next_invoice_check"])
    op.create_table(
        "documents",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("filename", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("storage", sa.String(32), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_documents"),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name="fk_documents_order_id_orders"),
    )
    op.create_index("ix_documents_order_id", "documents", ["order_id"])


def downgrade() -> None:
    op.drop_index("ix_documents_order_id", table_name="documents")
    op.drop_table("documents")
    op.drop_index("ix_orders_next_invoice_check", table_name="orders")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("next_invoice_check")
