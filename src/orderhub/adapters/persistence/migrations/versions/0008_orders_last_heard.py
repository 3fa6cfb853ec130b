"""orders: an index on when the hub last heard of each order.

The scheduler's refresh job takes the orders the hub has heard nothing of for longest
(``CASE WHEN refreshed_at > updated_at THEN refreshed_at ELSE updated_at END``, then id):
without an index on that expression it read and sorted every stored order every run
(a parallel sequential scan at 200k orders, found by the scale benchmark).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LAST_HEARD = (
    "(CASE WHEN (refreshed_at IS NOT NULL AND refreshed_at > updated_at) "
    "THEN refreshed_at ELSE updated_at END)"
)


def upgrade() -> None:
    op.create_index("ix_orders_last_heard_id", "orders", [sa.text(LAST_HEARD), "id"])


def downgrade() -> None:
    op.drop_index("ix_orders_last_heard_id", table_name="orders")
