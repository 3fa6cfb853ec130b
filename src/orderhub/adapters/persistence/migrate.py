"""Schema migrations, shipped inside the package: no ``alembic.ini`` is needed at run time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Final

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from orderhub.adapters.persistence.engine import create_engine

MIGRATIONS: Final = Path(__file__).resolve().parent / "migrations"
# any fixed number: concurrent starters of the hub migrate one after the other
_PG_MIGRATION_LOCK: Final = 0x0DE7_4B0B


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def migrate(url: str, *, revision: str = "head") -> None:
    """``alembic upgrade head`` (or ``revision``) on the database at ``url``, in one
    transaction. On PostgreSQL an advisory lock makes concurrent callers take turns."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_upgrade, revision)
            await connection.commit()
    finally:
        await engine.dispose()


def upgrade(url: str, *, revision: str = "head") -> None:
    """:func:`migrate` for synchronous callers (not from inside a running event loop)."""
    asyncio.run(migrate(url, revision=revision))


async def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at (None: never migrated)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()


def _upgrade(connection: sa.Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
        )
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
