"""A PostgreSQL database of a test's own on the server the tests use: created, its URL
given, dropped afterwards (the end-to-end fixtures and the live fuzz)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
from sqlalchemy.engine import make_url

from orderhub.testing.processes import run_async


async def _admin(server_url: str, statement: str) -> None:
    dsn = make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def new_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new, empty database named ``<prefix>_<random>``; dropped (forced) at the end."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    run_async(lambda: _admin(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        run_async(lambda: _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
