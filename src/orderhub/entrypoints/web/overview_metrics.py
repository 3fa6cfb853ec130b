"""Gauges of the hub's state (backlogs, failures, orders needing a person, feed head, the
last message applied per account), read from the database by the API when it is scraped.

Counters are counted by the process that does the work (a worker, the scheduler), and a
worker in another container or pod is not scraped through the API. What an operator
alerts on most is state the database holds, so the API reads it with the console's
overview reads (:class:`~orderhub.application.ports.OverviewReader`):

* ``GET /metrics`` first awaits :meth:`OverviewMetrics.fresh`: when the last read is older
  than ``interval_seconds``, one read of each (in one unit of work, under
  ``timeout_seconds``; concurrent scrapes share it). The reads are async (the event loop
  is never blocked) and happen only when someone scrapes: a process nobody scrapes costs
  the database nothing, and one scraped often reads at most once per interval. The
  collector then only renders the snapshot. A failed read keeps the previous snapshot, is
  logged and counted (``orderhub_overview_refresh_failures_total``);
  ``orderhub_overview_age_seconds`` says how old the snapshot is.
* Each API process answers with its own snapshot and these gauges are never added up
  across processes (``serve --workers``: :func:`orderhub.metrics.render` sums the
  multi-process counters, then the answering process's snapshot is appended once), so N
  API processes do not count N times.
* Lists (failed commands, held commands, failed inbox messages, orders needing
  attention) are counted up to :data:`COUNT_CAP`: a value of ``COUNT_CAP`` means "at least
  that many" (the console lists them).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from orderhub.application.hub import Hub
from orderhub.application.ports import Backlog, ChannelActivity, OrderFilter, StatusCount
from orderhub.logging import get_logger

__all__ = ["COUNT_CAP", "OverviewMetrics", "OverviewSnapshot", "read_snapshot"]

log = get_logger(__name__)

COUNT_CAP: Final = 500


@dataclass(frozen=True, kw_only=True, slots=True)
class OverviewSnapshot:
    taken_at: datetime
    inbox: Backlog
    commands: Backlog
    feed_head: int
    status_counts: Sequence[StatusCount]
    activity: Sequence[ChannelActivity]
    feed_unnumbered: int = 0  # events committed but never numbered: always 0
    failed_commands: dict[str, int] = field(default_factory=dict)  # by channel
    held_commands: dict[str, int] = field(default_factory=dict)
    failed_messages: dict[str, int] = field(default_factory=dict)
    attention_orders: dict[str, int] = field(default_factory=dict)


async def read_snapshot(hub: Hub, *, cap: int = COUNT_CAP) -> OverviewSnapshot:
    """One read of everything the gauges show, in one unit of work."""
    async with hub.uow() as uow:
        reads = uow.overview
        failed = await uow.commands.failed(limit=cap)
        held = await uow.commands.held(limit=cap)
        messages = await uow.inbox.failed(limit=cap)
        attention = await uow.orders.list(OrderFilter(attention=True), after_seq=None, limit=cap)
        return OverviewSnapshot(
            taken_at=hub.clock.now(),
            inbox=await reads.inbox_backlog(),
            commands=await reads.command_backlog(),
            feed_head=await reads.feed_head(),
            feed_unnumbered=await reads.feed_unnumbered(),
            status_counts=await reads.status_counts(),
            activity=await reads.channel_activity(),
            failed_commands=dict(Counter(c.channel for c in failed)),
            held_commands=dict(Counter(c.channel for c in held)),
            failed_messages=dict(Counter(m.channel for m in messages)),
            attention_orders=dict(Counter(o.channel for o in attention)),
        )


def _age(now: datetime, since: datetime | None) -> float:
    return 0.0 if since is None else max(0.0, (now - since).total_seconds())


def _by_channel(name: str, documentation: str, values: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["channel"])
    for channel, count in sorted(values.items()):
        family.add_metric([channel], count)
    return family


class OverviewMetrics(Collector):
    """The collector (renders the snapshot) and its reads (:meth:`fresh`, per scrape)."""

    def __init__(
        self,
        hub: Hub,
        *,
        interval_seconds: float,
        timeout_seconds: float = 5.0,
        cap: int = COUNT_CAP,
    ) -> None:
        if interval_seconds <= 0 or timeout_seconds <= 0:
            raise ValueError("interval_seconds and timeout_seconds must be positive")
        self.hub = hub
        self.interval_seconds = interval_seconds
        self.timeout_seconds = timeout_seconds
        self.cap = cap
        self.snapshot: OverviewSnapshot | None = None
        self.failures = 0
        self._tried_at: float | None = None
        self._reading = asyncio.Lock()
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(self)

    async def refresh(self) -> bool:
        """Read a new snapshot; on failure keep the previous one. True when it worked."""
        try:
            async with asyncio.timeout(self.timeout_seconds):
                self.snapshot = await read_snapshot(self.hub, cap=self.cap)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failures += 1
            log.warning("metrics.overview_refresh_failed", error=repr(exc))
            return False
        return True

    async def fresh(self) -> None:
        """Read a new snapshot unless the last read (or failed try) is recent enough."""
        if not self._due():
            return
        async with self._reading:
            if self._due():  # not read meanwhile by a concurrent scrape
                self._tried_at = time.monotonic()
                await self.refresh()

    def _due(self) -> bool:
        return self._tried_at is None or (
            time.monotonic() - self._tried_at >= self.interval_seconds
        )

    def render(self) -> bytes:
        return generate_latest(self._registry)

    def collect(self) -> Iterable[Metric]:
        yield from self._families()

    def _families(self) -> Iterator[Metric]:
        failures = CounterMetricFamily(
            "orderhub_overview_refresh_failures",
            "Refreshes of the overview gauges that failed (the previous values are kept).",
            value=self.failures,
        )
        yield failures
        snapshot = self.snapshot
        if snapshot is None:
            return
        now = self.hub.clock.now()
        yield GaugeMetricFamily(
            "orderhub_overview_age_seconds",
            "How old the overview gauges are (seconds since their last successful read).",
            value=_age(now, snapshot.taken_at),
        )
        for what, backlog, unit in (
            ("inbox", snapshot.inbox, "channel messages received, not yet applied"),
            ("command", snapshot.commands, "channel commands pending (held ones included)"),
        ):
            yield GaugeMetricFamily(
                f"orderhub_{what}_backlog", f"Work waiting: {unit}.", value=backlog.count
            )
            yield GaugeMetricFamily(
                f"orderhub_{what}_backlog_oldest_age_seconds",
                f"Age of the oldest of the {unit} (0 when there is none).",
                value=_age(now, backlog.oldest),
            )
        yield GaugeMetricFamily(
            "orderhub_feed_head_sequence",
            "The newest event sequence of the warehouse feed (0: nothing yet).",
            value=snapshot.feed_head,
        )
        yield GaugeMetricFamily(
            "orderhub_feed_unnumbered_events",
            "Feed events committed but never numbered: the warehouse will not see them "
            "(always 0; docs/feed.md says what to do otherwise).",
            value=snapshot.feed_unnumbered,
        )
        capped = f"counted up to {self.cap}"
        yield _by_channel(
            "orderhub_commands_failed",
            f"Channel commands failed, waiting for a person to retry or abandon ({capped}).",
            snapshot.failed_commands,
        )
        yield _by_channel(
            "orderhub_commands_held",
            f"Channel commands held behind a failed one of their order ({capped}).",
            snapshot.held_commands,
        )
        yield _by_channel(
            "orderhub_inbox_failed",
            f"Channel messages that could not be applied, waiting for a person ({capped}).",
            snapshot.failed_messages,
        )
        yield _by_channel(
            "orderhub_orders_attention",
            f"Orders with an attention reason, waiting for a person ({capped}).",
            snapshot.attention_orders,
        )
        orders = GaugeMetricFamily(
            "orderhub_orders",
            "Orders kept by the hub, by channel, account and canonical status.",
            labels=["channel", "account", "status"],
        )
        for count in snapshot.status_counts:
            orders.add_metric([count.channel, count.account, count.status.value], count.count)
        yield orders
        applied = GaugeMetricFamily(
            "orderhub_channel_last_applied_age_seconds",
            "Seconds since the newest message of each account and source (webhook, polling, "
            "reconciliation, refresh, command) was applied.",
            labels=["channel", "account", "source"],
        )
        for activity in snapshot.activity:
            applied.add_metric(
                [activity.channel, activity.account, activity.source],
                _age(now, activity.last_processed_at),
            )
        yield applied
