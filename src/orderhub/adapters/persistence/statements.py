"""The hot paths' statements, built once (issue 10).

Building a SQLAlchemy statement per call (``select(...).where(...)``, ``.values(row)``) and
computing its cache key again cost about a fifth of a worker's CPU in issue 10's profile:
the compiled form was cached already, but reaching the cache was not free. These are
module constants with named parameters (prefixed ``b_`` where a column of the same name is
in the SET clause or VALUES), executed with a dict: their cache key is computed once per
process, their SQL compiled once per dialect, and on PostgreSQL asyncpg's statement cache
keeps one prepared statement for each.

An ``update(table)`` without ``.values()`` takes its SET clause from the keys of the dict
it is executed with that name columns; an ``insert(table)`` its columns likewise."""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.selectable import NamedFromClause

from orderhub.adapters.persistence.tables import (
    channel_commands,
    idempotency_keys,
    inbox_messages,
    orders,
)
from orderhub.application.ports import CommandState

_c = channel_commands.c
_m = inbox_messages.c
_o = orders.c
_k = idempotency_keys.c


def _claimable(table: sa.Table) -> tuple[sa.ColumnElement[bool], ...]:
    """The checks a claim makes of the row itself: its state, due, not leased, under the
    cap (``b_state``, ``b_now``, ``b_max_attempts``)."""
    c = table.c
    return (
        c.id == sa.bindparam("b_id"),
        c.state == sa.bindparam("b_state"),
        sa.or_(c.next_attempt_at.is_(None), c.next_attempt_at <= sa.bindparam("b_now")),
        sa.or_(c.lease_until.is_(None), c.lease_until <= sa.bindparam("b_now")),
        c.attempts < sa.bindparam("b_max_attempts"),
    )


# --- commands --------------------------------------------------------------------------

COMMAND_BY_ID: Final = sa.select(channel_commands).where(_c.id == sa.bindparam("b_id"))
COMMAND_BY_ID_LOCKED: Final = COMMAND_BY_ID.with_for_update()  # nothing on SQLite
COMMANDS_OF_ORDER: Final = (
    sa.select(channel_commands).where(_c.order_id == sa.bindparam("b_order")).order_by(_c.seq)
)
LAST_COMMAND_SEQ: Final = sa.select(sa.func.coalesce(sa.func.max(_c.seq), 0)).where(
    _c.order_id == sa.bindparam("b_order")
)
_earlier_command: Final = channel_commands.alias("earlier")
CLAIM_COMMAND: Final = (
    sa.update(channel_commands)
    .where(
        *_claimable(channel_commands),
        ~sa.exists().where(
            _earlier_command.c.order_id == _c.order_id,
            _earlier_command.c.seq < _c.seq,
            *(_earlier_command.c.state != state.value for state in CommandState if state.is_final),
        ),
    )
    .values(
        attempts=_c.attempts + 1,
        fence=_c.fence + 1,
        held_by=None,
        lease_until=sa.bindparam("b_lease_until"),
    )
    .returning(*channel_commands.columns)
)
"""A pending command claimed in one statement when nothing stands in its way: due, not
leased, under the attempt cap, and every earlier command of its order ended for good.
Stricter than the step-by-step claim, which also lets a command go past earlier ones its
channel declares independent: those take that way."""
SAVE_COMMAND: Final = sa.update(channel_commands).where(_c.id == sa.bindparam("b_id"))
SAVE_COMMAND_FENCED: Final = SAVE_COMMAND.where(
    _c.fence == sa.bindparam("b_fence"), _c.state == sa.bindparam("b_state")
)

# --- inbox -----------------------------------------------------------------------------

MESSAGE_BY_ID: Final = sa.select(inbox_messages).where(_m.id == sa.bindparam("b_id"))
MESSAGE_BY_ID_LOCKED: Final = MESSAGE_BY_ID.with_for_update()
MESSAGE_ID_BY_KEY: Final = sa.select(_m.id).where(_m.dedupe_key == sa.bindparam("b_key"))
ADD_MESSAGE_POSTGRESQL: Final = (
    postgresql.insert(inbox_messages)
    .on_conflict_do_nothing(index_elements=[_m.dedupe_key])
    .returning(_m.seq)
)
SAVE_MESSAGE: Final = sa.update(inbox_messages).where(_m.id == sa.bindparam("b_id"))
SAVE_MESSAGE_FENCED: Final = SAVE_MESSAGE.where(
    _m.fence == sa.bindparam("b_fence"), _m.state == sa.bindparam("b_state")
)
_WAITING: Final = sa.select(_m.id).where(
    _m.channel == sa.bindparam("b_channel"),
    _m.account == sa.bindparam("b_account"),
    _m.order_key == sa.bindparam("b_order_key"),
    _m.state == sa.bindparam("b_state"),
)
FIRST_WAITING: Final = _WAITING.order_by(_m.seq).limit(1)
FIRST_WAITING_BEFORE: Final = (
    _WAITING.where(_m.seq < sa.bindparam("b_before")).order_by(_m.seq).limit(1)
)


def no_earlier_received(
    earlier: NamedFromClause, received: sa.BindParameter[str] | str
) -> sa.ColumnElement[bool]:
    """A message's order (channel, account, order key) has no earlier message still
    ``received``: it goes now, not behind that one (``earlier``: an alias of the inbox)."""
    return ~sa.exists().where(
        _m.order_key.is_not(None),
        earlier.c.channel == _m.channel,
        earlier.c.account == _m.account,
        earlier.c.order_key == _m.order_key,
        earlier.c.seq < _m.seq,
        earlier.c.state == received,
    )


_earlier: Final = inbox_messages.alias("earlier")
CLAIM_MESSAGE: Final = (
    sa.update(inbox_messages)
    .where(
        *_claimable(inbox_messages),
        no_earlier_received(_earlier, sa.bindparam("b_state")),
    )
    .values(
        attempts=_m.attempts + 1,
        fence=_m.fence + 1,
        lease_until=sa.bindparam("b_lease_until"),
    )
    .returning(*inbox_messages.columns)
)
"""A received message claimed in one statement when nothing stands in the way: due, not
leased, under the attempt cap, and no earlier message of its order still received."""
FINISH_MESSAGE: Final = (
    sa.update(inbox_messages)
    .where(
        _m.id == sa.bindparam("b_id"),
        _m.fence == sa.bindparam("b_fence"),
        _m.state == sa.bindparam("b_received"),
    )
    .values(
        state=sa.bindparam("b_state"),
        processed_at=sa.bindparam("b_at"),
        lease_until=None,
        last_error=None,
    )
)

# --- orders ----------------------------------------------------------------------------

ORDER_BY_ID: Final = sa.select(orders).where(_o.id == sa.bindparam("b_id"))
ORDER_BY_CHANNEL_ID: Final = sa.select(orders).where(
    _o.channel == sa.bindparam("b_channel"),
    _o.account == sa.bindparam("b_account"),
    _o.channel_order_id == sa.bindparam("b_channel_order_id"),
)
INSERT_ORDER: Final = sa.insert(orders)
UPDATE_ORDER_SEEN: Final = sa.update(orders).where(
    _o.id == sa.bindparam("b_id"), _o.version == sa.bindparam("b_seen")
)

# --- idempotency keys (a WMS command sent with one) -------------------------------------

IDEMPOTENCY_LOCKS: Final = 0x1DE7  # advisory lock namespace of idempotency keys
LOCK_IDEMPOTENCY_KEY: Final = sa.select(  # PostgreSQL only: until the transaction ends
    sa.func.pg_advisory_xact_lock(IDEMPOTENCY_LOCKS, sa.func.hashtext(sa.bindparam("b_key")))
)
IDEMPOTENCY_BY_KEY: Final = sa.select(idempotency_keys).where(_k.key == sa.bindparam("b_key"))
ADD_IDEMPOTENCY_KEY: Final = {
    "postgresql": postgresql.insert(idempotency_keys).on_conflict_do_nothing(
        index_elements=[_k.key]
    ),
    "sqlite": sqlite.insert(idempotency_keys).on_conflict_do_nothing(index_elements=[_k.key]),
}
"""By dialect: the first answer stored, or nothing when a concurrent request stored one."""
