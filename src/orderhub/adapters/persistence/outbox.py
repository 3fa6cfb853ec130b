"""The outbox (``channel_commands``) and the inbox (``inbox_messages``) over SQL.

Both are claimed with a lease and fenced: a worker writes its outcome with
``save(..., fence=n)``, an ``UPDATE ... WHERE id = :id AND fence = :n AND state = <open>``
that writes nothing once another claim (or an ending) came in between. The sweeper's
queries (``due``) take what is due and was not handed to the queue within a while, least
recently queued first and in pages, so rows that keep coming back never starve new ones;
rows waiting behind an earlier one of their order are left to it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from orderhub.adapters.persistence import limits
from orderhub.adapters.persistence import statements as q
from orderhub.adapters.persistence.mapping import (
    command_from_row,
    command_to_row,
    message_from_row,
    message_to_row,
)
from orderhub.adapters.persistence.repositories import Transaction
from orderhub.adapters.persistence.tables import channel_commands, inbox_messages
from orderhub.application.access import AccountLimit
from orderhub.application.ports import (
    OUTCOME_FIELDS,
    ChannelCommand,
    CommandState,
    InboxMessage,
    InboxState,
)


class SqlCommandRepository:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    def add(self, command: ChannelCommand) -> None:
        self._tx.new_commands[command.id] = command

    async def get(self, command_id: str, *, for_update: bool = False) -> ChannelCommand | None:
        pending = self._tx.new_commands.get(command_id)
        if pending is not None:
            return pending
        query = q.COMMAND_BY_ID_LOCKED if for_update else q.COMMAND_BY_ID
        result = await self._tx.conn().execute(query, {"b_id": command_id})
        row = result.mappings().one_or_none()
        return None if row is None else command_from_row(row)

    async def for_order(self, order_id: str) -> Sequence[ChannelCommand]:
        result = await self._tx.conn().execute(q.COMMANDS_OF_ORDER, {"b_order": order_id})
        stored = [command_from_row(row) for row in result.mappings()]
        pending = [c for c in self._tx.new_commands.values() if c.order_id == order_id]
        return sorted(stored + pending, key=lambda c: c.seq)

    async def claim(
        self, command_id: str, *, now: datetime, lease_until: datetime, max_attempts: int
    ) -> ChannelCommand | None:
        result = await self._tx.conn().execute(
            q.CLAIM_COMMAND,
            {
                "b_id": command_id,
                "b_state": CommandState.PENDING.value,
                "b_now": now,
                "b_max_attempts": max_attempts,
                "b_lease_until": lease_until,
            },
        )
        row = result.mappings().one_or_none()
        return None if row is None else command_from_row(row)

    async def next_seq(self, order_id: str) -> int:
        result = await self._tx.conn().execute(q.LAST_COMMAND_SEQ, {"b_order": order_id})
        stored = int(result.scalar_one())
        pending = [c.seq for c in self._tx.new_commands.values() if c.order_id == order_id]
        return max([stored, *pending]) + 1

    async def save(self, command: ChannelCommand, *, fence: int | None = None) -> bool:
        if command.id in self._tx.new_commands:
            self._tx.new_commands[command.id] = command  # inserted at commit, as it is then
            return True
        params = {**command_to_row(command), "b_id": command.id}
        statement = q.SAVE_COMMAND
        if fence is not None:
            statement = q.SAVE_COMMAND_FENCED
            params.update(b_fence=fence, b_state=CommandState.PENDING.value)
        result = await self._tx.conn().execute(statement, params)
        if result.rowcount == 1:
            return True
        if fence is not None:
            return False
        await self._tx.conn().execute(sa.insert(channel_commands).values(command_to_row(command)))
        return True

    async def record_outcome(self, command: ChannelCommand, *, fence: int) -> bool:
        row = command_to_row(command)
        params = {name: row[name] for name in OUTCOME_FIELDS}
        params.update(b_id=command.id, b_fence=fence, b_state=CommandState.PENDING.value)
        result = await self._tx.conn().execute(q.SAVE_COMMAND_FENCED, params)
        return result.rowcount == 1

    async def due(self, *, now: datetime, queued_before: datetime, limit: int) -> Sequence[str]:
        if limit <= 0:
            return []
        c = channel_commands.c
        earlier = channel_commands.alias("earlier")

        def live(held_by: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
            """Not held, or held by one failed no more (its claim raced an operator)."""
            return sa.or_(held_by.is_(None), ~_held_by_failed(held_by))

        result = await self._tx.conn().execute(
            sa.select(c.id)
            .where(
                c.state == CommandState.PENDING.value,
                live(c.held_by),
                sa.or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now),
                sa.or_(c.lease_until.is_(None), c.lease_until <= now),
                sa.or_(c.queued_at.is_(None), c.queued_at < queued_before),
                ~sa.exists().where(  # its order's earlier live one releases it when done
                    earlier.c.order_id == c.order_id,
                    earlier.c.seq < c.seq,
                    earlier.c.state == CommandState.PENDING.value,
                    live(earlier.c.held_by),
                ),
            )
            .order_by(c.queued_at.nulls_first(), c.id)  # least recently queued first
            .limit(limit)
        )
        return list(result.scalars())

    async def mark_queued(self, command_ids: Sequence[str], at: datetime) -> None:
        if command_ids:
            await self._tx.conn().execute(
                sa.update(channel_commands)
                .where(channel_commands.c.id.in_(list(command_ids)))
                .values(queued_at=at)
            )

    async def set_held(self, command: ChannelCommand, held_by: str | None) -> bool:
        c = channel_commands.c
        result = await self._tx.conn().execute(
            sa.update(channel_commands)
            .where(
                c.id == command.id,
                c.fence == command.fence,
                c.state == CommandState.PENDING.value,
            )
            .values(held_by=held_by)
        )
        return result.rowcount == 1

    async def failed(
        self, *, limit: int, within: AccountLimit | None = None
    ) -> Sequence[ChannelCommand]:
        c = channel_commands.c
        return await self._listing(
            self._within(c.state == CommandState.FAILED.value, within), limit
        )

    async def held(
        self, *, limit: int, within: AccountLimit | None = None
    ) -> Sequence[ChannelCommand]:
        c = channel_commands.c
        condition = sa.and_(c.state == CommandState.PENDING.value, _held_by_failed(c.held_by))
        return await self._listing(self._within(condition, within), limit)

    @staticmethod
    def _within(
        condition: sa.ColumnElement[bool], limit: AccountLimit | None
    ) -> sa.ColumnElement[bool]:
        if limit is None:
            return condition
        c = channel_commands.c
        return sa.and_(condition, limits.within(limit, c.channel, c.account))

    async def _listing(self, condition: sa.ColumnElement[bool], limit: int) -> list[ChannelCommand]:
        if limit <= 0:
            return []
        c = channel_commands.c
        result = await self._tx.conn().execute(
            sa.select(channel_commands).where(condition).order_by(c.created_at, c.id).limit(limit)
        )
        return [command_from_row(row) for row in result.mappings()]

    async def prune(self, *, finished_before: datetime) -> int:
        c = channel_commands.c
        result = await self._tx.conn().execute(
            sa.delete(channel_commands).where(
                c.state.in_([CommandState.SUCCEEDED.value, CommandState.ABANDONED.value]),
                c.finished_at < finished_before,
            )
        )
        return int(result.rowcount)

    async def write_new(self) -> None:
        """Insert the commands added in this unit (after their orders: foreign key)."""
        if self._tx.new_commands:
            await self._tx.conn().execute(
                sa.insert(channel_commands),
                [command_to_row(command) for command in self._tx.new_commands.values()],
            )


class SqlInboxRepository:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    async def add(self, message: InboxMessage) -> bool:
        row = message_to_row(message)
        connection = self._tx.conn()
        if connection.dialect.name == "postgresql":  # the number: the column's identity
            found = await connection.execute(q.ADD_MESSAGE_POSTGRESQL, row)
            return self._stored(message, found.scalar_one_or_none())
        # one writer at a time on SQLite: the next number is max + 1
        row["seq"] = sa.select(
            sa.func.coalesce(sa.func.max(inbox_messages.c.seq), 0) + 1
        ).scalar_subquery()
        statement = (
            self._tx.insert(inbox_messages)
            .values(row)
            .on_conflict_do_nothing(index_elements=[inbox_messages.c.dedupe_key])
            .returning(inbox_messages.c.seq)
        )
        result = await connection.execute(statement)
        return self._stored(message, result.scalar_one_or_none())

    @staticmethod
    def _stored(message: InboxMessage, seq: int | None) -> bool:
        if seq is None:  # a duplicate (its dedupe key is stored)
            return False
        message.seq = int(seq)
        return True

    async def get(self, message_id: str, *, for_update: bool = False) -> InboxMessage | None:
        query = q.MESSAGE_BY_ID_LOCKED if for_update else q.MESSAGE_BY_ID
        result = await self._tx.conn().execute(query, {"b_id": message_id})
        row = result.mappings().one_or_none()
        return None if row is None else message_from_row(row)

    async def id_for(self, dedupe_key: str) -> str | None:
        result = await self._tx.conn().execute(q.MESSAGE_ID_BY_KEY, {"b_key": dedupe_key})
        return result.scalar_one_or_none()

    async def save(self, message: InboxMessage, *, fence: int | None = None) -> bool:
        params = message_to_row(message)
        params.pop("seq", None)  # never renumbered
        params["b_id"] = message.id
        statement = q.SAVE_MESSAGE
        if fence is not None:
            statement = q.SAVE_MESSAGE_FENCED
            params.update(b_fence=fence, b_state=InboxState.RECEIVED.value)
        result = await self._tx.conn().execute(statement, params)
        return result.rowcount == 1

    async def claim(
        self, message_id: str, *, now: datetime, lease_until: datetime, max_attempts: int
    ) -> InboxMessage | None:
        result = await self._tx.conn().execute(
            q.CLAIM_MESSAGE,
            {
                "b_id": message_id,
                "b_state": InboxState.RECEIVED.value,
                "b_now": now,
                "b_max_attempts": max_attempts,
                "b_lease_until": lease_until,
            },
        )
        row = result.mappings().one_or_none()
        return None if row is None else message_from_row(row)

    async def finish(self, message_id: str, *, fence: int, at: datetime) -> bool:
        result = await self._tx.conn().execute(
            q.FINISH_MESSAGE,
            {
                "b_id": message_id,
                "b_fence": fence,
                "b_received": InboxState.RECEIVED.value,
                "b_state": InboxState.PROCESSED.value,
                "b_at": at,
            },
        )
        return result.rowcount == 1

    async def first_waiting(
        self, channel: str, account: str, order_key: str, *, before_seq: int | None = None
    ) -> str | None:
        params: dict[str, object] = {
            "b_channel": channel,
            "b_account": account,
            "b_order_key": order_key,
            "b_state": InboxState.RECEIVED.value,
        }
        query = q.FIRST_WAITING
        if before_seq is not None:
            query = q.FIRST_WAITING_BEFORE
            params["b_before"] = before_seq
        result = await self._tx.conn().execute(query, params)
        return result.scalar_one_or_none()

    async def due(self, *, now: datetime, queued_before: datetime, limit: int) -> Sequence[str]:
        if limit <= 0:
            return []
        m = inbox_messages.c
        earlier = inbox_messages.alias("earlier")
        result = await self._tx.conn().execute(
            sa.select(m.id)
            .where(
                m.state == InboxState.RECEIVED.value,
                sa.or_(m.next_attempt_at.is_(None), m.next_attempt_at <= now),
                sa.or_(m.lease_until.is_(None), m.lease_until <= now),
                sa.or_(m.queued_at.is_(None), m.queued_at < queued_before),
                q.no_earlier_received(earlier, InboxState.RECEIVED.value),
            )
            .order_by(m.queued_at.nulls_first(), m.seq)  # least recently queued first
            .limit(limit)
        )
        return list(result.scalars())

    async def mark_queued(self, message_ids: Sequence[str], at: datetime) -> None:
        if message_ids:
            await self._tx.conn().execute(
                sa.update(inbox_messages)
                .where(inbox_messages.c.id.in_(list(message_ids)))
                .values(queued_at=at)
            )

    async def failed(
        self, *, limit: int, within: AccountLimit | None = None
    ) -> Sequence[InboxMessage]:
        if limit <= 0:
            return []
        m = inbox_messages.c
        condition = m.state == InboxState.FAILED.value
        if within is not None:
            condition = sa.and_(condition, limits.within(within, m.channel, m.account))
        result = await self._tx.conn().execute(
            sa.select(inbox_messages).where(condition).order_by(m.received_at, m.id).limit(limit)
        )
        return [message_from_row(row) for row in result.mappings()]

    async def prune(self, *, bodies_before: datetime, rows_before: datetime) -> tuple[int, int]:
        m = inbox_messages.c
        processed = m.state == InboxState.PROCESSED.value
        emptied = await self._tx.conn().execute(
            sa.update(inbox_messages)
            .where(processed, m.processed_at < bodies_before, sa.func.length(m.body) > 0)
            .values(body=b"")
        )
        newest = sa.select(sa.func.max(m.seq)).scalar_subquery()
        deleted = await self._tx.conn().execute(
            sa.delete(inbox_messages).where(processed, m.received_at < rows_before, m.seq < newest)
        )
        return int(emptied.rowcount), int(deleted.rowcount)


def _held_by_failed(held_by: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
    """``held_by`` names a command that is failed (a hold an operator can act on)."""
    root = channel_commands.alias("root")
    return sa.exists().where(root.c.id == held_by, root.c.state == CommandState.FAILED.value)
