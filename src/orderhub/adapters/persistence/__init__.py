"""Persistence adapter: the ports of the core over SQLAlchemy 2 (async Core).

PostgreSQL (asyncpg) in production, SQLite (aiosqlite) embedded and in development.

* :func:`create_engine` / :func:`ping`: engines with the right settings, readiness probe;
* :class:`SqlUnitOfWork` / :class:`SqlUnitOfWorkFactory`: the ``UnitOfWork`` port;
* :func:`migrate` / :func:`upgrade`: the shipped alembic migrations, to ``head``;
* :func:`leadership`: a database-wide lock, so that one scheduler runs at a time;
* :data:`metadata`: the tables.
"""

from __future__ import annotations

from orderhub.adapters.persistence.engine import PoolOptions, create_engine, ping
from orderhub.adapters.persistence.intake import sql_inbox_intake
from orderhub.adapters.persistence.leadership import leadership
from orderhub.adapters.persistence.migrate import current_revision, head_revision, migrate, upgrade
from orderhub.adapters.persistence.tables import metadata
from orderhub.adapters.persistence.uow import SqlUnitOfWork, SqlUnitOfWorkFactory, SystemClock

__all__ = [
    "PoolOptions",
    "SqlUnitOfWork",
    "SqlUnitOfWorkFactory",
    "SystemClock",
    "create_engine",
    "current_revision",
    "head_revision",
    "leadership",
    "metadata",
    "migrate",
    "ping",
    "sql_inbox_intake",
    "upgrade",
]
