"""Migrations, the engine factory and the readiness probe."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Final

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from orderhub.adapters.persistence import (
    SqlUnitOfWork,
    create_engine,
    current_revision,
    head_revision,
    metadata,
    migrate,
    ping,
)
from orderhub.adapters.persistence.engine import SQLITE_BUSY_TIMEOUT_MS
from orderhub.adapters.persistence.tables import feed_counter

EXPRESSION_INDEXES: Final = frozenset({"ix_orders_last_heard_id"})
"""Indexes on an expression: alembic cannot compare them (it reports them removed and
added); :func:`test_expression_indexes_are_built_as_the_code_declares` checks them."""


POSTGRESQL_MACHINERY: Final = frozenset({"feed_pending"})
"""Tables only the PostgreSQL migrations make, not declared in the metadata (the feed's
numbering at commit, migration 0009; ``test_sql_feed.py`` checks it)."""


def _comparable(obj: Any, name: str | None, kind: str, reflected: bool, other: Any) -> bool:
    if kind == "table" and name in POSTGRESQL_MACHINERY:
        return False
    return not (kind == "index" and name in EXPRESSION_INDEXES)


async def schema_differences(url: str, target: sa.MetaData) -> list[Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync,
                        opts={
                            "compare_type": True,
                            "compare_server_default": True,
                            "include_object": _comparable,
                        },
                    ),
                    target,
                )
            )
    finally:
        await engine.dispose()


async def test_expression_indexes_are_built_as_the_code_declares(
    empty_database_url: str,
) -> None:
    await migrate(empty_database_url)
    engine = create_engine(empty_database_url)
    try:
        async with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                found = sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE indexname = :n")
            else:
                found = sa.text("SELECT name, sql FROM sqlite_master WHERE name = :n")
            for name in EXPRESSION_INDEXES:
                [(_, definition)] = (await connection.execute(found, {"n": name})).all()
                declared = next(
                    i for t in metadata.tables.values() for i in t.indexes if i.name == name
                )
                compiled = str(sa.schema.CreateIndex(declared).compile(dialect=connection.dialect))
                squashed = "".join(c for c in definition.lower() if c.isalnum())
                for word in ("casewhen", "refreshedat", "updatedat", "id"):
                    assert word in squashed, definition
                assert "refreshed_at" in compiled
    finally:
        await engine.dispose()


async def test_migrations_build_exactly_the_tables_of_the_code(empty_database_url: str) -> None:
    assert await current_revision(empty_database_url) is None
    await migrate(empty_database_url)
    assert await current_revision(empty_database_url) == head_revision() == "0009"
    assert await schema_differences(empty_database_url, metadata) == []


async def test_the_schema_comparison_sees_a_difference(database_url: str) -> None:
    """The check above would catch a drift: a column the migrations lack, a changed type."""
    drifted = sa.MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["cursors"].append_column(sa.Column("updated_at", sa.DateTime(timezone=True)))
    drifted.tables["cursors"].c.value.type = sa.Integer()
    differences = await schema_differences(database_url, drifted)
    kinds = {(d[0] if isinstance(d, tuple) else d[0][0]) for d in differences}
    assert kinds == {"add_column", "modify_type"}


async def test_migrating_twice_changes_nothing_and_seeds_the_feed_counter_once(
    database_url: str,
) -> None:
    await migrate(database_url)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(sa.select(feed_counter))).all()
    finally:
        await engine.dispose()
    assert [(row.id, row.last_seq) for row in rows] == [(1, 0)]


@pytest.mark.postgres
async def test_concurrent_migrations_take_turns(empty_postgres_url: str) -> None:
    """Several instances of the hub starting at once must not race on CREATE TABLE."""
    await asyncio.gather(*(migrate(empty_postgres_url) for _ in range(3)))
    assert await schema_differences(empty_postgres_url, metadata) == []


async def test_create_all_seeds_the_feed_counter_too(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'create_all.db'}")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        async with SqlUnitOfWork(engine) as uow:
            uow.record("command.succeeded", order=None, data={})
            await uow.commit()
            assert [e.seq for e in await uow.feed.read(after=0, limit=5)] == [1]
    finally:
        await engine.dispose()


async def test_without_the_counter_row_the_commit_says_what_to_do(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(sa.delete(feed_counter))
    async with SqlUnitOfWork(engine) as uow:
        uow.record("command.succeeded", order=None, data={})
        # SQLite: the statement numbering the events; PostgreSQL: COMMIT's trigger
        with pytest.raises((RuntimeError, sa.exc.DBAPIError), match="run the migrations"):
            await uow.commit()


async def test_sqlite_connections_are_set_up_for_concurrent_writers(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        async with engine.connect() as connection:
            pragma = {
                name: (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar_one()
                for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
            }
    finally:
        await engine.dispose()
    assert pragma == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
        "synchronous": 2,  # FULL: an acknowledged webhook survives a power loss too
    }


async def test_sqlite_writers_queue_instead_of_failing(sqlite_url: str) -> None:
    """A unit that reads first and writes later is the case that fails with "database is
    locked" under deferred transactions; with BEGIN IMMEDIATE they all get through."""
    engine = create_engine(sqlite_url)
    try:

        async def read_then_write(i: int) -> None:
            async with SqlUnitOfWork(engine) as uow:
                await uow.cursors.get("c", "a", "n")
                await asyncio.sleep(0.005)
                await uow.cursors.set("c", "a", f"n{i}", str(i))
                uow.record("command.succeeded", order=None, data={"i": i})
                await uow.commit()

        await asyncio.gather(*(read_then_write(i) for i in range(25)))
        async with SqlUnitOfWork(engine) as uow:
            feed = await uow.feed.read(after=0, limit=100)
    finally:
        await engine.dispose()
    assert [e.seq for e in feed] == list(range(1, 26))


def test_create_engine_accepts_plain_urls_and_refuses_others() -> None:
    assert create_engine("sqlite:///x.db").url.drivername == "sqlite+aiosqlite"
    assert create_engine("postgresql://u:p@localhost/db").url.drivername == "postgresql+asyncpg"
    with pytest.raises(ValueError, match="unsupported database URL 'mysql"):
        create_engine("mysql+aiomysql://u:secret@localhost/db")
    with pytest.raises(ValueError, match="in-memory SQLite"):
        create_engine("sqlite+aiosqlite://")
    with pytest.raises(ValueError, match="in-memory SQLite"):
        create_engine("sqlite+aiosqlite:///:memory:")


async def test_ping(engine: AsyncEngine) -> None:
    assert await ping(engine) is True


async def test_ping_is_false_when_nothing_listens() -> None:
    engine = create_engine("postgresql+asyncpg://postgres@127.0.0.1:9/none")
    try:
        assert await ping(engine, seconds=2) is False
    finally:
        await engine.dispose()


async def test_ping_does_not_queue_behind_a_sqlite_writer(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        async with SqlUnitOfWork(engine) as uow:
            await uow.cursors.set("c", "a", "n", "v")  # holds the write lock
            assert await ping(engine, seconds=1) is True
    finally:
        await engine.dispose()
