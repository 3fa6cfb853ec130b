"""Shared database fixtures.

PostgreSQL, in this order of preference:

1. ``ORDERHUB_TEST_POSTGRES_URL`` (any ``postgresql://`` URL of a server where the user
   may create databases; the database named in it is only used to connect);
2. a throwaway container (testcontainers) when a Docker engine answers;
3. the local server ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``.

A server that cannot be reached fails the PostgreSQL tests, in CI and locally: a skipped
test is a missing test. Run ``pytest -m "not postgres"`` to leave them out on purpose.

The session creates one database ``orderhub_test_<random>``, migrates it once and drops
it at the end; every test gets it with all tables emptied and the feed counter back at 0.
SQLite tests get a copy of a migrated template file in their own temporary directory.

Fixtures: ``postgres_url``, ``sqlite_url``, ``database_url`` (both, parametrized; the
PostgreSQL case is marked ``postgres``), ``empty_database_url`` (both, not migrated),
``engine`` and ``uow_factory`` (over ``database_url``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from orderhub.adapters.persistence import SqlUnitOfWorkFactory, create_engine, metadata, migrate

T = TypeVar("T")

POSTGRES_ENV: Final = "ORDERHUB_TEST_POSTGRES_URL"
LOCAL_POSTGRES_URL: Final = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
POSTGRES_IMAGE: Final = "postgres:16-alpine"
CONNECT_TIMEOUT_SECONDS: Final = 5.0


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a private event loop in another thread, so that
    synchronous (and session-scoped) fixtures never touch pytest-asyncio's loops."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def _asyncpg_url(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"{POSTGRES_ENV} must be a postgresql:// URL, not {parsed.drivername}")
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def _libpq_dsn(url: str) -> str:
    """What asyncpg.connect() takes: the URL without the SQLAlchemy driver suffix."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _docker_answers() -> bool:
    try:
        import docker  # only needed when no URL is given

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


async def _connect(url: str) -> Any:
    import asyncpg

    return await asyncpg.connect(_libpq_dsn(url), timeout=CONNECT_TIMEOUT_SECONDS)


async def _reachable(url: str) -> str | None:
    """None when the server answers, else why not."""
    try:
        connection = await _connect(url)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await connection.close()
    return None


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A reachable PostgreSQL server (URL with the database to connect to first)."""
    container: Any = None
    if os.environ.get(POSTGRES_ENV):
        url, source = _asyncpg_url(os.environ[POSTGRES_ENV]), POSTGRES_ENV
    elif _docker_answers():
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer(POSTGRES_IMAGE, driver="asyncpg").start()
        url, source = container.get_connection_url(), f"a {POSTGRES_IMAGE} container"
    else:
        url, source = LOCAL_POSTGRES_URL, "the local default"
    try:
        problem = run_async(lambda: _reachable(url))
        if problem is not None:
            where = "CI must provide one" if os.environ.get("CI") else "start one"
            pytest.fail(
                f"PostgreSQL at {_safe(url)} ({source}) cannot be reached: {problem}. "
                f"Set {POSTGRES_ENV}, make Docker available, or {where} on 127.0.0.1:5432; "
                'to leave these tests out on purpose, run pytest -m "not postgres".',
                pytrace=False,
            )
        yield url
    finally:
        if container is not None:
            container.stop()


async def _create_database(server_url: str, name: str) -> None:
    connection = await _connect(server_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def _drop_database(server_url: str, name: str) -> None:
    connection = await _connect(server_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def _database_name(purpose: str) -> str:
    return f"orderhub_{purpose}_{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def postgres_session_database(postgres_server_url: str) -> Iterator[str]:
    """One migrated database for the whole session, dropped at the end."""
    name = _database_name("test")
    run_async(lambda: _create_database(postgres_server_url, name))
    url = _with_database(postgres_server_url, name)
    try:
        run_async(lambda: migrate(url))
        yield url
    finally:
        run_async(lambda: _drop_database(postgres_server_url, name))


# children first (foreign keys); DELETE beats TRUNCATE by far on tables this small
_DATA_TABLES: Final = [t.name for t in reversed(metadata.sorted_tables) if t.name != "feed_counter"]


async def _empty(url: str) -> None:
    connection = await _connect(url)
    try:
        statements = [f'DELETE FROM "{name}"' for name in _DATA_TABLES]
        # recreated, not updated: a test may have deleted the row
        statements.append("DELETE FROM feed_counter")
        statements.append("INSERT INTO feed_counter (id, last_seq) VALUES (1, 0)")
        await connection.execute(";".join(statements))
    finally:
        await connection.close()


@pytest.fixture
def postgres_url(postgres_session_database: str) -> str:
    """The session's migrated PostgreSQL database, emptied for this test."""
    run_async(lambda: _empty(postgres_session_database))
    return postgres_session_database


@pytest.fixture
def empty_postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A new PostgreSQL database with no tables at all (for migration tests)."""
    name = _database_name("empty")
    run_async(lambda: _create_database(postgres_server_url, name))
    try:
        yield _with_database(postgres_server_url, name)
    finally:
        run_async(lambda: _drop_database(postgres_server_url, name))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; tests copy it instead of migrating again."""
    path = tmp_path_factory.mktemp("sqlite-template") / "orderhub.db"
    run_async(lambda: migrate(f"sqlite+aiosqlite:///{path}"))
    # the last connection closed checkpoints the WAL into the file: one file to copy
    assert not Path(f"{path}-wal").exists()
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A migrated SQLite database in a file of this test's own."""
    path = tmp_path / "orderhub.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def empty_sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"


BACKENDS: Final = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database: SQLite, then PostgreSQL."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest) -> str:
    """A database with no schema at all: SQLite, then PostgreSQL."""
    return str(request.getfixturevalue(f"empty_{request.param}_url"))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def uow_factory(engine: AsyncEngine) -> SqlUnitOfWorkFactory:
    """Units of work on a migrated, empty database (both backends)."""
    return SqlUnitOfWorkFactory(engine)
