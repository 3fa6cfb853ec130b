"""Fakes that refuse what PostgreSQL would refuse, so tests over fakes see those bugs too.

The in-memory fakes store anything; PostgreSQL (through asyncpg and JSONB) does not: a NUL
character in text or JSON, an integer outside BIGINT, a NaN or infinity in JSON, a naive
datetime, or an aware one with no UTC equivalent (9999-12-31T23:00-14:00) all raise in
the driver, which a request answers with a 500. :class:`PostgresLikeUnitOfWork` checks
every argument given to a repository and everything a commit would write, and raises
:class:`PostgresWouldRefuse` (so the request answers 500, as it would in production);
each refusal is also kept in :attr:`PostgresLikeUnitOfWorkFactory.refusals`."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import msgspec

from orderhub.testing.fakes import (
    FakeDatabase,
    FakeUnitOfWork,
    FakeUnitOfWorkFactory,
    FixedClock,
)

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
REPOSITORIES = ("orders", "commands", "inbox", "feed", "cursors", "idempotency")


class PostgresWouldRefuse(Exception):
    """What the real database driver would have raised."""


def refusals_in(value: Any, where: str = "") -> Iterator[str]:
    """Each part of ``value`` that PostgreSQL would refuse, named by where it is."""
    yield from _walk(value, where, set())


def _walk(value: Any, where: str, seen: set[int]) -> Iterator[str]:
    if value is None or (isinstance(value, bool | bytes | Enum) and not isinstance(value, str)):
        return
    if isinstance(value, str):
        if "\x00" in value:
            yield f"{where}: NUL character in {value!r}"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            yield f"{where}: not encodable as UTF-8: {value!r}"
    elif isinstance(value, int):
        if not BIGINT_MIN <= value <= BIGINT_MAX:
            yield f"{where}: integer outside BIGINT: {value}"
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield f"{where}: {value} in JSON"
    elif isinstance(value, datetime):
        yield from _datetime(value, where)
    elif id(value) not in seen:
        seen.add(id(value))
        yield from _children(value, where, seen)


def _datetime(value: datetime, where: str) -> Iterator[str]:
    if value.tzinfo is None or value.utcoffset() is None:
        yield f"{where}: naive datetime {value.isoformat()}"
        return
    try:
        value.astimezone(UTC)
    except OverflowError:
        yield f"{where}: no UTC equivalent for {value.isoformat()}"


def _children(value: Any, where: str, seen: set[int]) -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk(key, f"{where}[key]", seen)
            yield from _walk(item, f"{where}[{key!r}]", seen)
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            yield from _walk(item, f"{where}[{index}]", seen)
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            yield from _walk(getattr(value, name), f"{where}.{name}", seen)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _walk(getattr(value, field.name), f"{where}.{field.name}", seen)


class _Checked:
    """A repository whose every call is checked before it reaches the fake."""

    def __init__(self, target: Any, name: str, refuse: Callable[[Any, str], None]) -> None:
        self._target = target
        self._name = name
        self._refuse = refuse

    def __getattr__(self, attribute: str) -> Any:
        found = getattr(self._target, attribute)
        if not callable(found):
            return found

        def checked(*args: Any, **kwargs: Any) -> Any:
            self._refuse((args, kwargs), f"{self._name}.{attribute}")
            return found(*args, **kwargs)

        return checked


class PostgresLikeUnitOfWork(FakeUnitOfWork):
    def __init__(self, db: FakeDatabase, clock: FixedClock | None, refusals: list[str]) -> None:
        super().__init__(db, clock)
        self._refusals = refusals
        for name in REPOSITORIES:
            setattr(self, name, _Checked(getattr(self, name), name, self._refuse))

    def _refuse(self, value: Any, where: str) -> None:
        found = list(refusals_in(value, where))
        if found:
            self._refusals.extend(found)
            raise PostgresWouldRefuse("; ".join(found))

    def record(self, event_type: str, *, order: Any, data: dict[str, Any]) -> None:
        self._refuse((event_type, data), "feed event")
        super().record(event_type, order=order, data=data)

    async def commit(self) -> None:
        # everything the unit of work holds (orders it read or added, pending rows, events),
        # whatever the fake calls it: a commit may write any of it
        held = {
            name: value
            for name, value in vars(self).items()
            if name not in ("db", "clock", "_refusals", *REPOSITORIES)
        }
        self._refuse(held, "commit")
        await super().commit()


class PostgresLikeUnitOfWorkFactory(FakeUnitOfWorkFactory):
    def __init__(self, db: FakeDatabase, clock: FixedClock) -> None:
        super().__init__(db, clock)
        self.refusals: list[str] = []

    def __call__(self, *, read_only: bool = False) -> FakeUnitOfWork:
        return PostgresLikeUnitOfWork(self.db, self.clock, self.refusals)
