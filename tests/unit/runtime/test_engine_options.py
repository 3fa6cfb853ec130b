"""The engine's pool and JSON settings (issue 10): a pool big enough for a process's units
of work, no ping at checkout unless asked, JSON columns through msgspec with the standard
library for what msgspec refuses."""

from __future__ import annotations

import json
import math

import pytest

from orderhub.adapters.persistence import PoolOptions, create_engine
from orderhub.adapters.persistence.engine import json_dumps, json_loads
from orderhub.config import load_settings

PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/none"


async def test_the_postgresql_pool_defaults_and_options() -> None:
    engine = create_engine(PG)
    pool = engine.sync_engine.pool
    assert (pool.size(), pool._max_overflow, pool._pre_ping, pool._recycle) == (  # type: ignore[attr-defined]
        20,
        10,
        False,
        1800.0,
    )
    await engine.dispose()

    engine = create_engine(
        PG, pool=PoolOptions(size=3, max_overflow=0, pre_ping=True, recycle_seconds=60)
    )
    pool = engine.sync_engine.pool
    assert (pool.size(), pool._max_overflow, pool._pre_ping, pool._recycle) == (3, 0, True, 60)  # type: ignore[attr-defined]
    await engine.dispose()


def test_the_settings_default_to_the_same_pool() -> None:
    db = load_settings(environ={}).database
    assert (db.pool_size, db.max_overflow, db.pool_pre_ping, db.pool_recycle_seconds) == (
        20,
        10,
        False,
        1800.0,
    )


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, 2.5, None, True], "b": {"c": "Zoë ✓"}},
        [],
        "text",
        2**70,
    ],
)
def test_json_round_trips_through_msgspec(value: object) -> None:
    assert json_loads(json_dumps(value)) == value
    assert json.loads(json_dumps(value)) == value  # plain JSON any reader takes


def test_what_msgspec_refuses_goes_through_the_standard_library() -> None:
    lone = {"name": "\ud800"}  # a lone surrogate from a hostile body
    assert json_loads(json_dumps(lone)) == lone
    assert math.isnan(json_loads('{"x": NaN}')["x"])  # as json.dumps wrote it before
