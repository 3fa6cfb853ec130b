"""The PostgreSQL-like fakes the fuzzers run over refuse what PostgreSQL would refuse."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from orderhub.testing.fakes import FakeDatabase, FixedClock

from .pg_like import PostgresLikeUnitOfWorkFactory, PostgresWouldRefuse, refusals_in


@dataclass
class Row:
    name: str
    values: list[Any]


@pytest.mark.parametrize(
    "value",
    [
        "a\x00b",
        {"key\x00": 1},
        [1, 2**63],
        -(2**63) - 1,
        float("nan"),
        {"nested": {"deeper": [float("inf")]}},
        datetime(2026, 1, 1),
        datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-14))),
        Row(name="ok", values=["\x00"]),
        "\ud800",
    ],
)
def test_what_postgresql_refuses_is_found(value: Any) -> None:
    assert list(refusals_in(value, "here"))


@pytest.mark.parametrize(
    "value",
    [
        "text with é and 😀",
        2**63 - 1,
        -(2**63),
        1.5,
        None,
        True,
        b"\x00 bytes are bytea",
        datetime(9999, 12, 31, 23, tzinfo=UTC),
        Row(name="ok", values=[1, "two", {"three": 3.0}]),
    ],
)
def test_what_postgresql_stores_passes(value: Any) -> None:
    assert list(refusals_in(value, "here")) == []


async def test_a_repository_call_with_a_nul_raises_and_is_kept() -> None:
    factory = PostgresLikeUnitOfWorkFactory(FakeDatabase(), FixedClock())
    async with factory() as uow:
        assert await uow.orders.get("fine") is None
        with pytest.raises(PostgresWouldRefuse):
            await uow.orders.get("bad\x00")
    assert len(factory.refusals) == 1
    assert "orders.get" in factory.refusals[0]
