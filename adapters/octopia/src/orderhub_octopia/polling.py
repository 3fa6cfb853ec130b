"""Polling Octopia's order list: Octopia sends no webhooks.

Each run walks one fixed window of update times, ``[cursor - overlap, now]`` (the first
run: ``now - look-back``), in pages of at most 100 from ``pageIndex`` 1 until a short page,
and stores every order found in the inbox under a key made of its id, update stamp,
status and content, so a page read twice stores nothing new and every change is stored
once. ``Processing`` orders are left until they leave it (their update stamp changes).

Index pages shift when an order of the window is updated during the walk (it leaves the
window, so an order behind it moves up a page and would be skipped, while the count
afterwards drops by one and still matches the ids read). The next run reads again what
is newer than ``now - overlap``; the older part of the window is this run's last chance,
so it is walked an hour at a time, each hour counted (``GET /orders/count``) before and
after each walk and walked again unless the count held still and it read at least that
many, the cursor moving past each hour done. The cursor moves to the end
only after a complete walk, once every page is stored. A failed page is retried a few
times, then the run fails with the cursor where it was: the next run walks the whole
window again (an outage of hours is one longer window).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import math
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Final, TypeVar

import msgspec
import structlog

from orderhub.channels.spi import IntakeMessage, JobContext, TransientChannelError
from orderhub_octopia import wire
from orderhub_octopia.client import OctopiaClient
from orderhub_octopia.settings import NAME, Settings

log = structlog.get_logger("orderhub.octopia")

SOURCE_HEADER: Final = "x-orderhub-source"
POLL_SOURCE: Final = "octopia-poll"
REFRESH_SOURCE: Final = "octopia-refresh"
CURSOR: Final = "orders"
MAX_PAGES: Final = 10_000  # 1 million orders in one window: beyond, something loops
WALKS: Final = 3
SLICE: Final = dt.timedelta(hours=1)  # the older part of a window is verified by the hour
MAX_PAUSE: Final = 30.0

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


class _Head(msgspec.Struct, kw_only=True, rename="camel"):
    order_id: str
    status: str = ""
    updated_at: str | None = None


def message_for(body: bytes, source: str) -> IntakeMessage:
    """An order as read, for the inbox; its key changes whenever the order does."""
    digest = hashlib.sha256(body).hexdigest()[:16]
    try:
        head = msgspec.json.decode(body, type=_Head)
        key = f"order:{head.order_id}:{head.updated_at or '-'}:{head.status}:{digest}"
    except (msgspec.DecodeError, msgspec.ValidationError):
        key = f"unreadable:{digest}"  # stored all the same: it fails, visible and retriable
    return IntakeMessage(dedupe_key=key, body=body, headers={SOURCE_HEADER: source})


def is_processing(body: bytes) -> bool:
    try:
        return msgspec.json.decode(body, type=_Head).status == wire.PROCESSING
    except (msgspec.DecodeError, msgspec.ValidationError):
        return False


class Poller:
    def __init__(
        self, account: str, client: OctopiaClient, settings: Settings, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.account = account
        self.client = client
        self.settings = settings
        self._sleep = sleep

    async def run(self, context: JobContext) -> None:
        scopes: list[str | None] = [None]
        if self.settings.poll_per_sales_channel and self.settings.sales_channels:
            scopes = list(self.settings.sales_channels)
        failed: list[Exception] = []
        for scope in scopes:  # one sales channel failing stops none of the others
            try:
                await self.walk(context, scope)
            except Exception as exc:
                if len(scopes) == 1:
                    raise
                log.warning(
                    "octopia.poll.failed", account=self.account, sales_channel=scope, error=str(exc)
                )
                failed.append(exc)
        if failed:
            raise failed[0]

    async def walk(self, context: JobContext, sales_channel: str | None = None) -> int:
        """One window; the number of new messages stored."""
        name = CURSOR if sales_channel is None else f"{CURSOR}:{sales_channel}"
        raw = await context.cursors.get(NAME, self.account, name)
        now = context.clock.now()
        if raw:
            since = dt.datetime.fromisoformat(raw) - dt.timedelta(
                minutes=self.settings.poll_overlap_minutes
            )
        else:
            since = now - dt.timedelta(hours=self.settings.poll_lookback_hours)
        # The next run walks again from ``now - overlap`` (its cursor less the overlap):
        # what this run reads after that edge is read again then, and what it reads before
        # it is its last chance. Only that older part must be complete before the cursor
        # moves (below); the recent part, where most updates land, is walked once.
        # The older part is walked whole once; if that walk is not complete and the part
        # is longer than an hour (the first run, an outage), it goes in slices of an hour,
        # oldest first, the cursor moved past each one complete: a long catch-up is not
        # one walk that any change anywhere in it would start again.
        overlap = dt.timedelta(minutes=self.settings.poll_overlap_minutes)
        edge = min(max(since, now - overlap), now)
        stored = 0
        complete, low = True, since
        if edge - since > SLICE:
            whole = self._window(since, edge, sales_channel)
            complete, new = await self._complete(context, whole, walks=1)
            stored += new
            low = edge if complete else since
        while low < edge:
            high = min(low + SLICE, edge)
            older = self._window(low, high, sales_channel)
            complete, new = await self._complete(context, older)
            stored += new
            if not complete:
                log.warning("octopia.poll.incomplete", account=self.account, window=older)
                break
            if high < edge:  # the next run starts at this slice's end
                await context.cursors.set(NAME, self.account, name, (high + overlap).isoformat())
            low = high
        if edge < now:
            stored += (await self._pages(context, self._window(edge, now, sales_channel)))[1]
        if not complete:
            return stored  # the cursor stays: the next run walks from there again
        await context.cursors.set(NAME, self.account, name, now.isoformat())
        log.info(
            "octopia.polled",
            account=self.account,
            sales_channel=sales_channel,
            since=wire.timestamp(since),
            stored=stored,
        )
        return stored

    def _window(
        self, low: dt.datetime, high: dt.datetime, sales_channel: str | None
    ) -> dict[str, str | list[str]]:
        window: dict[str, str | list[str]] = {
            "updatedAtMin": wire.timestamp(low),
            "updatedAtMax": wire.timestamp(high),
        }
        if sales_channel is not None:
            window["salesChannelId"] = sales_channel
        if self.settings.wire.sort:
            window["sort"] = self.settings.wire.sort
        return window

    async def _complete(
        self, context: JobContext, window: dict[str, str | list[str]], walks: int = WALKS
    ) -> tuple[bool, int]:
        """Walk ``window`` until one walk is known complete (or :data:`WALKS` tries);
        whether one was, and the number of new messages stored.

        An order updated during a walk leaves the window and moves the orders behind it
        up a page: the one it pushed over the page boundary is never read, yet the count
        afterwards (one fewer) still matches the ids read. So a walk is complete only when
        the window's count did not change while it ran and it read at least that many."""
        stored = 0
        verify = self.settings.poll_verify_count
        for walk in range(1, walks + 1):
            before = (
                await self._retrying(partial(self.client.count_orders, window)) if verify else 0
            )
            seen, new = await self._pages(context, window)
            stored += new
            if not verify:
                return True, stored
            count = await self._retrying(partial(self.client.count_orders, window))
            if count == before and count <= len(seen):
                return True, stored
            log.warning(
                "octopia.poll.short_walk",
                account=self.account,
                read=len(seen),
                count=count,
                count_before=before,
                walk=walk,
            )
        return False, stored

    async def _pages(
        self, context: JobContext, window: dict[str, str | list[str]]
    ) -> tuple[set[str], int]:
        size = self.settings.poll_page_size
        seen: set[str] = set()
        new = 0
        for index in range(1, MAX_PAGES + 1):
            params = {**window, "pageIndex": str(index), "pageSize": str(size)}
            page = await self._retrying(partial(self.client.list_orders, params))
            for item in page.items:
                body = bytes(item)
                message = message_for(body, POLL_SOURCE)
                seen.add(message.dedupe_key.split(":")[1])
                if is_processing(body):
                    continue
                new += int(await context.submit(message))
            if len(page.items) < size:
                return seen, new
        raise TransientChannelError(f"Octopia's order list did not end within {MAX_PAGES} pages")

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        attempts = self.settings.poll_page_attempts
        for attempt in range(1, attempts + 1):
            try:
                return await call()
            except TransientChannelError as exc:
                if attempt == attempts:
                    raise
                wait = exc.retry_after
                if wait is None or not math.isfinite(wait) or wait <= 0:
                    wait = 2.0**attempt
                pause = min(wait, MAX_PAUSE)
                log.info("octopia.poll.retry", account=self.account, error=str(exc), pause=pause)
                await self._sleep(pause)
        raise AssertionError("unreachable")
