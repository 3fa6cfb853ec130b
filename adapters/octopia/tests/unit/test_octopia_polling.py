"""The poller against a scripted order list: what a walk reads when orders move under it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import msgspec
import pytest
from octopia_helpers import account_config

from orderhub.channels.spi import IntakeMessage, JobContext
from orderhub.testing.fakes import FixedClock
from orderhub_octopia import wire
from orderhub_octopia.polling import Poller
from orderhub_octopia.settings import parse

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)


class Cursors:
    def __init__(self) -> None:
        self.values: dict[tuple[str, str, str], str] = {}

    async def get(self, channel: str, account: str, name: str) -> str | None:
        return self.values.get((channel, account, name))

    async def set(self, channel: str, account: str, name: str, value: str) -> None:
        self.values[(channel, account, name)] = value


class Listing:
    """``GET /orders`` and ``/orders/count`` over orders sorted by update time; ``after``
    runs once a page was served (an order updated during the walk)."""

    def __init__(self, orders: dict[str, str]) -> None:
        self.orders = dict(orders)  # order id -> updatedAt
        self.after: dict[int, Any] = {}
        self.pages = 0

    def _window(self, params: Mapping[str, Any]) -> list[str]:
        low, high = str(params["updatedAtMin"]), str(params["updatedAtMax"])
        found = [(at, oid) for oid, at in self.orders.items() if low <= at <= high]
        return [oid for _, oid in sorted(found)]

    async def list_orders(self, params: Mapping[str, Any]) -> wire.OrderPage:
        index, size = int(params["pageIndex"]), int(params["pageSize"])
        ids = self._window(params)[(index - 1) * size : index * size]
        items = [
            {"orderId": oid, "status": "InPreparation", "updatedAt": self.orders[oid]}
            for oid in ids
        ]
        self.pages += 1
        page = msgspec.json.decode(json.dumps({"items": items}).encode(), type=wire.OrderPage)
        if (hook := self.after.pop(self.pages, None)) is not None:
            hook()
        return page

    async def count_orders(self, params: Mapping[str, Any]) -> int:
        return len(self._window(params))


def stamp(minutes: int) -> str:
    return wire.timestamp(NOW + dt.timedelta(minutes=minutes))


async def test_an_order_updated_during_the_walk_hides_no_other_order() -> None:
    """Pages of 2 over A..E, older than the overlap (the next run will not read them
    again): A is updated (leaves the window) once page 1 was read, so C moves up to page 1
    and page 2 starts at D. The count then says 4 and the walk read 4 ids (A, B, D, E): C
    must still be read before the cursor moves past it."""
    listing = Listing({o: stamp(-170 + i) for i, o in enumerate("ABCDE")})
    listing.after[1] = lambda: listing.orders.update(A=stamp(5))
    settings = parse("main", account_config("http://octopia.test", poll_page_size=2).settings)
    poller = Poller("main", listing, settings)  # type: ignore[arg-type]
    stored: list[IntakeMessage] = []
    cursors = Cursors()

    async def submit(message: IntakeMessage) -> bool:
        stored.append(message)
        return True

    context = JobContext(
        account=account_config("http://octopia.test"),
        cursors=cursors,  # type: ignore[arg-type]
        clock=FixedClock(NOW),
        submit=submit,
    )
    await cursors.set("octopia", "main", "orders", (NOW - dt.timedelta(hours=2)).isoformat())
    await poller.run(context)
    read = {m.dedupe_key.split(":")[1] for m in stored}
    moved = await cursors.get("octopia", "main", "orders") == NOW.isoformat()
    assert "C" in read or not moved, "the cursor moved past order C, never read"
    assert read >= set("ABCDE")


async def test_a_retry_after_of_nan_neither_hangs_the_poll_nor_is_taken_as_a_wait() -> None:
    """``asyncio.sleep(nan)`` never returns: one odd header would stop intake for good."""
    from orderhub.channels.spi import TransientChannelError
    from orderhub_octopia.client import parse_retry_after

    assert parse_retry_after("nan") is None
    assert parse_retry_after("inf") is None
    listing = Listing({"A": stamp(-5)})
    failures = [TransientChannelError("busy", status=429, retry_after=float("nan"))]
    served = listing.list_orders

    async def list_orders(params: Mapping[str, Any]) -> wire.OrderPage:
        if failures:
            raise failures.pop()
        return await served(params)

    listing.list_orders = list_orders  # type: ignore[method-assign]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    settings = parse("main", account_config("http://octopia.test").settings)
    poller = Poller("main", listing, settings, sleep)  # type: ignore[arg-type]
    stored: list[IntakeMessage] = []

    async def submit(message: IntakeMessage) -> bool:
        stored.append(message)
        return True

    context = JobContext(
        account=account_config("http://octopia.test"),
        cursors=Cursors(),  # type: ignore[arg-type]
        clock=FixedClock(NOW),
        submit=submit,
    )
    await poller.run(context)
    assert len(slept) == 1
    assert 0 < slept[0] <= 30
    assert len(stored) == 1


async def test_a_sales_channel_that_fails_stops_no_other_sales_channels_polling() -> None:
    from orderhub.channels.spi import ChannelConfigurationError

    listing = Listing({"A": stamp(-5)})
    served = listing.list_orders

    async def list_orders(params: Mapping[str, Any]) -> wire.OrderPage:
        if params.get("salesChannelId") == "CDISFR":  # listed first, refused for good
            raise ChannelConfigurationError("Octopia refused to list orders (HTTP 403)")
        return await served(params)

    listing.list_orders = list_orders  # type: ignore[method-assign]
    config = account_config("http://octopia.test", poll_per_sales_channel=True)
    settings = parse("main", config.settings)
    assert next(iter(settings.sales_channels)) == "CDISFR"
    poller = Poller("main", listing, settings)  # type: ignore[arg-type]
    cursors = Cursors()

    async def submit(message: IntakeMessage) -> bool:
        return True

    context = JobContext(
        account=config,
        cursors=cursors,  # type: ignore[arg-type]
        clock=FixedClock(NOW),
        submit=submit,
    )
    with pytest.raises(ChannelConfigurationError):
        await poller.run(context)  # the run still fails, visibly
    assert await cursors.get("octopia", "main", "orders:CDISFR") is None
    assert await cursors.get("octopia", "main", "orders:OCTOBE") == NOW.isoformat()


async def test_updates_within_the_overlap_never_hold_the_cursor_and_nothing_is_skipped() -> None:
    """The same shift among orders newer than the overlap: the next run reads them again,
    so the cursor moves (a busy account's updates, one after each page here, must not
    keep it in place forever), and what was skipped now is read by the next run."""
    names = [f"O{i:02}" for i in range(40)]
    listing = Listing({o: stamp(-50 + i) for i, o in enumerate(names)})
    for page, name in enumerate(names[:30], start=1):
        listing.after[page] = lambda name=name: listing.orders.update({name: stamp(5)})
    settings = parse("main", account_config("http://octopia.test", poll_page_size=2).settings)
    poller = Poller("main", listing, settings)  # type: ignore[arg-type]
    stored: list[IntakeMessage] = []
    cursors = Cursors()

    async def submit(message: IntakeMessage) -> bool:
        stored.append(message)
        return True

    clock = FixedClock(NOW)
    context = JobContext(
        account=account_config("http://octopia.test"),
        cursors=cursors,  # type: ignore[arg-type]
        clock=clock,
        submit=submit,
    )
    await cursors.set("octopia", "main", "orders", (NOW - dt.timedelta(hours=2)).isoformat())
    await poller.run(context)
    assert await cursors.get("octopia", "main", "orders") == NOW.isoformat()
    listing.after.clear()  # a quiet moment
    clock.current = NOW + dt.timedelta(minutes=10)
    await poller.run(context)
    assert {m.dedupe_key.split(":")[1] for m in stored} >= set(names)


async def test_a_long_catch_up_moves_the_cursor_past_each_complete_hour() -> None:
    """A change in hour 3 of a five-hour catch-up keeps failing its walks: the hours
    before it are done and the cursor moves past them; the next run starts there."""
    listing = Listing({f"H{h}": stamp(-60 * (6 - h) + 30) for h in range(5)})
    count = listing.count_orders

    async def unstable(params: Mapping[str, Any]) -> int:  # hour 3 never holds still
        n = await count(params)
        hour3 = wire.timestamp(NOW - dt.timedelta(hours=6 - 3) + dt.timedelta(minutes=30))
        if params["updatedAtMin"] <= hour3 <= params["updatedAtMax"]:
            unstable.calls += 1  # type: ignore[attr-defined]
            return n + unstable.calls  # type: ignore[attr-defined]
        return n

    unstable.calls = 0  # type: ignore[attr-defined]
    listing.count_orders = unstable  # type: ignore[method-assign]
    config = account_config("http://octopia.test", poll_overlap_minutes=60)
    settings = parse("main", config.settings)
    poller = Poller("main", listing, settings)  # type: ignore[arg-type]
    cursors = Cursors()

    async def submit(message: IntakeMessage) -> bool:
        return True

    context = JobContext(
        account=account_config("http://octopia.test"),
        cursors=cursors,  # type: ignore[arg-type]
        clock=FixedClock(NOW),
        submit=submit,
    )
    start = NOW - dt.timedelta(hours=5)  # the cursor of a run five hours ago
    await cursors.set("octopia", "main", "orders", start.isoformat())
    await poller.run(context)
    moved = dt.datetime.fromisoformat(str(await cursors.get("octopia", "main", "orders")))
    assert start < moved < NOW  # past the complete hours, short of the unstable one
    assert moved - dt.timedelta(hours=1) <= NOW - dt.timedelta(hours=3)
