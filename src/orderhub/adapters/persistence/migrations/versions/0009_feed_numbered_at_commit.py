"""PostgreSQL: feed events are numbered by COMMIT itself, not by a statement before it.

Until now a writing transaction numbered its events with ``UPDATE feed_counter`` as its
last statement and held the counter's row lock until its client sent ``COMMIT``: one
client round trip inside the lock, and a busy worker's event loop made every other
writer wait for it (issue 10: with two workers, ~5.6 sessions waiting on the counter).

From this revision the unit of work inserts its events, as arrays, into one row of
``feed_pending`` (its orders locked first, as before), and a deferred constraint trigger
on that table numbers them when the transaction commits: counter, events, the orders'
``last_seq``, and the pending row deleted, all inside PostgreSQL's pre-commit step. The
counter lock is the same lock, drawn in commit order and released after the commit is
visible, so the feed stays gapless for the same reasons (docs/feed.md); it is just never
held while a client is thinking.

``feed_pending`` is UNLOGGED: a row never outlives its transaction (the trigger deletes
it before the commit), so there is nothing in it to recover after a crash, and its
writes need no WAL. Seen from another session it is always empty (a row is visible only
to its own transaction); a row seen there means a trigger did not fire (docs/feed.md
gives the query to monitor). SQLite keeps numbering in the statement (whole writing
transactions are serialised there anyway).

A process older than this revision still numbers in its own statement under the same
counter lock, so old and new writers mix safely during a rolling upgrade; a process of
this revision against an older schema sees no ``feed_pending`` and numbers in its
statement too, until the migration has run.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLE = """
CREATE UNLOGGED TABLE feed_pending (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    types varchar[] NOT NULL,
    order_ids varchar[] NOT NULL,
    channels varchar[] NOT NULL,
    accounts varchar[] NOT NULL,
    occurred timestamptz[] NOT NULL,
    data jsonb[] NOT NULL
)
"""

_FUNCTION = """
CREATE FUNCTION feed_number_pending() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n integer := cardinality(NEW.types);
    top bigint;
BEGIN
    UPDATE feed_counter SET last_seq = last_seq + n WHERE id = 1 RETURNING last_seq INTO top;
    IF top IS NULL THEN
        RAISE EXCEPTION 'feed_counter has no row: run the migrations (orderhub migrate)';
    END IF;
    WITH inserted AS (
        INSERT INTO feed_events (seq, type, order_id, channel, account, occurred_at, data)
        SELECT top - n + e.ord, e.type, e.order_id, e.channel, e.account, e.occurred_at,
               e.data
        FROM unnest(NEW.types, NEW.order_ids, NEW.channels, NEW.accounts, NEW.occurred,
                    NEW.data)
             WITH ORDINALITY AS e(type, order_id, channel, account, occurred_at, data, ord)
        RETURNING seq, order_id
    )
    UPDATE orders SET last_seq = newest.seq
    FROM (SELECT order_id, max(seq) AS seq FROM inserted
          WHERE order_id IS NOT NULL GROUP BY order_id) AS newest
    WHERE orders.id = newest.order_id;
    DELETE FROM feed_pending WHERE id = NEW.id;
    RETURN NULL;
END
$$
"""

_TRIGGER = """
CREATE CONSTRAINT TRIGGER feed_pending_number AFTER INSERT ON feed_pending
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION feed_number_pending()
"""

# A trigger that did not fire would leave the events in feed_pending, committed and never
# numbered: it fires even under session_replication_role = replica (a logical-replication
# apply or a restore script), and disabling it takes ENABLE ALWAYS undone on purpose.
_ALWAYS = "ALTER TABLE feed_pending ENABLE ALWAYS TRIGGER feed_pending_number"

# One insert and one delete per writing transaction: vacuum it after every thousand dead
# rows, whatever its size, and never truncate it (truncation's brief exclusive lock would
# make writers wait for it)
_VACUUM = """
ALTER TABLE feed_pending SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000,
    vacuum_truncate = false
)
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_TABLE)
    op.execute(_VACUUM)
    op.execute(_FUNCTION)
    op.execute(_TRIGGER)
    op.execute(_ALWAYS)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER feed_pending_number ON feed_pending")
    op.execute("DROP FUNCTION feed_number_pending()")
    op.execute("DROP TABLE feed_pending")
