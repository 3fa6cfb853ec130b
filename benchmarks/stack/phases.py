"""The measurements of one run, each a function of the running processes that returns
what it measured (a dict for results.json). Every wait is bounded."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from benchmarks.stack import wrk
from benchmarks.stack.procstat import Sampler, cpu_delta
from benchmarks.stack.stats import RatePoint, backlog_grows, drain_rate, sustained_rate
from benchmarks.stack.topology import (
    READER_KEY,
    TOKEN,
    WEBHOOK_PATH,
    WMS_KEY,
    ProductionHub,
    query,
    scalar,
)

POLL_SECONDS: Final = 0.2
DRAIN_POLL_SECONDS: Final = 1.0
"""How often a drain counts what is done. The count is not free: it reads every row done
so far (15,700 index entries per count near the end of a 20,000-message drain, with no
vacuum: this machine's PostgreSQL runs with autovacuum off) and opens a connection, on
the 2 cores the measured worker needs. At 1 s instead of 0.2 that is a fifth of the
cost; :func:`~benchmarks.stack.stats.drain_rate` places the drain's start and end
between the polls at the drain's own pace, so the window is not a poll longer."""
RECEIVED: Final = "SELECT count(*) FROM inbox_messages WHERE state = 'received'"
PROCESSED: Final = "SELECT count(*) FROM inbox_messages WHERE state = 'processed'"
PENDING: Final = "SELECT count(*) FROM channel_commands WHERE state = 'pending'"
SUCCEEDED: Final = "SELECT count(*) FROM channel_commands WHERE state = 'succeeded'"
LAST_SEQ: Final = "SELECT coalesce(max(seq), 0) FROM feed_events"


@dataclass(frozen=True)
class Profile:
    name: str
    pg_seconds: float
    closed_seconds: float
    rates: tuple[float, ...]
    open_seconds: float
    grace: float
    drain_seconds: float
    settle_seconds: float
    wms_orders: int
    feed_seconds: float
    concurrency: int = 16
    feed_connections: int = 4
    serves: int = 1
    workers: int = 2
    worker_threads: int = 8
    scale_sizes: tuple[int, int] = (10_000, 200_000)
    """the ``scale`` phase: orders stored at its first and its second measurement"""
    scale_requests: int = 100
    """the ``scale`` phase: requests of each kind at each size"""


@dataclass
class Run:
    """What the phases share: the profile, the output folder, the process sampler."""

    profile: Profile
    workdir: Path
    sampler: Sampler

    def measured(self, what: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """``what()`` with the CPU each tracked process used meanwhile (``cpu_s``)."""
        before = self.sampler.cpu()
        result = what()
        result["cpu_s"] = cpu_delta(before, self.sampler.cpu())
        return result

    def wrk(self, urls: list[str], kind: str, env: dict[str, str], **options: Any) -> Any:
        options.setdefault("seconds", self.profile.closed_seconds)
        options.setdefault("connections", self.profile.concurrency)
        return self.measured(
            lambda: wrk.run_many(urls, kind=kind, workdir=self.workdir, env=env, **options)
        )

    def webhooks(self, urls: list[str], prefix: str) -> dict[str, Any]:
        env = {"BENCH_PATH": WEBHOOK_PATH, "BENCH_TOKEN": TOKEN, "BENCH_PREFIX": prefix}
        return self.wrk(urls, "webhook", env)


def python_json(module: str, *args: str, timeout: float) -> dict[str, Any]:
    """Run ``python -m module args`` (a generator process of its own); its JSON line."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{module} exited {done.returncode}: {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def poll(
    dsn: str,
    sql: str,
    until: Callable[[int], bool],
    seconds: float,
    *,
    interval: float = POLL_SECONDS,
) -> list[Any]:
    """(elapsed seconds, value) every ``interval`` until ``until(value)`` or ``seconds``."""
    start = time.monotonic()
    samples = []
    while True:
        value = int(scalar(dsn, sql))
        samples.append((time.monotonic() - start, value))
        if until(value) or time.monotonic() - start > seconds:
            return samples
        time.sleep(interval)


def settle(dsn: str, seconds: float) -> int:
    """Wait (bounded) until the inbox backlog and pending commands are gone; what is left."""
    left = poll(dsn, f"SELECT ({RECEIVED}) + ({PENDING})", lambda v: v == 0, seconds)
    return int(left[-1][1])


# --- the phases ------------------------------------------------------------------------


def postgres_ceiling(run: Run, dsn: str) -> dict[str, Any]:
    seconds = run.profile.pg_seconds
    return python_json(
        "benchmarks.stack.pgceiling",
        *("--dsn", dsn, "--seconds", str(seconds), "--connections", "8"),
        timeout=seconds + 60,
    )


def drain(run: Run, hub: ProductionHub, dsn: str, workers: int, *, commands: bool) -> Any:
    """Start ``workers`` on a backlog that is complete, measure how fast it goes."""
    pending, done = (PENDING, SUCCEEDED) if commands else (RECEIVED, PROCESSED)
    time.sleep(1.0)  # requests wrk left in flight when it stopped are stored meanwhile
    total, before = int(scalar(dsn, pending)), int(scalar(dsn, done))

    def measure() -> dict[str, Any]:
        for worker in hub.set_workers(workers):
            run.sampler.track(worker.name, worker.pid)
        samples = poll(
            dsn,
            done,
            lambda v: v - before >= total,
            run.profile.drain_seconds,
            interval=DRAIN_POLL_SECONDS,
        )
        found = drain_rate([(t, v - before) for t, v in samples], total)
        return {**found, "poll_seconds": DRAIN_POLL_SECONDS}

    return run.measured(measure)


def processing(run: Run, hub: ProductionHub, dsn: str, workers: int) -> Any:
    """No worker; a batch of webhooks (closed loop); then ``workers`` drain it."""
    hub.set_workers(0)
    intake = run.webhooks(hub.urls, f"P{workers}-{time.time_ns()}")
    result = drain(run, hub, dsn, workers, commands=False)
    result["left_after_settle"] = settle(dsn, run.profile.settle_seconds)
    return intake, result


def feed_latency(run: Run, hub: ProductionHub, dsn: str) -> dict[str, Any]:
    """Open-loop steps at rising rates, up to one step past the first that does not keep
    up (the sustained rate is below it; the next step shows the knee of the curve)."""
    profile = run.profile
    steps = []
    failed = 0
    for rate in profile.rates:
        step = run.measured(
            lambda rate=rate: python_json(
                "benchmarks.stack.loadgen",
                "openloop",
                *("--urls", *hub.urls, "--path", WEBHOOK_PATH, "--token", TOKEN),
                *("--feed-url", hub.urls[0], "--reader-key", READER_KEY),
                *("--after", str(scalar(dsn, LAST_SEQ)), "--dsn", dsn),
                *("--rate", str(rate), "--seconds", str(profile.open_seconds)),
                *("--grace", str(profile.grace), "--prefix", f"OL{rate:g}-{time.time_ns()}"),
                timeout=profile.open_seconds + profile.grace + 120,
            )
        )
        step["backlog_grows"] = backlog_grows(step["backlog"], rate)
        point = RatePoint(rate, step["feed"]["p99_ms"], step["left_behind"], step["backlog_grows"])
        step["keeps_up"] = point.keeps_up
        step["left_after_settle"] = settle(dsn, profile.settle_seconds)
        steps.append(step)
        failed += not point.keeps_up
        if failed > 1:  # one step past the first that fails: the knee of the curve
            break
    points = [
        RatePoint(s["offered_rate"], s["feed"]["p99_ms"], s["left_behind"], s["backlog_grows"])
        for s in steps
    ]
    return {"steps": steps, "sustained_rate": sustained_rate(points)}


def wms_and_dispatch(run: Run, hub: ProductionHub, dsn: str) -> dict[str, Any]:
    """Accept orders over the API with no worker running (WMS commands), then 1 worker
    sends that batch to the channel; the same again with 2 workers."""
    n = run.profile.wms_orders
    rows = query(
        dsn, f"SELECT id FROM orders WHERE status = 'awaiting_acceptance' ORDER BY id LIMIT {2 * n}"
    )
    ids = [r[0] for r in rows]
    half = len(ids) // 2
    if half == 0:
        raise RuntimeError("no order awaits acceptance: the intake phases stored none")
    out: dict[str, Any] = {"wms": {}, "dispatch": {}}
    for workers, batch in ((1, ids[:half]), (2, ids[half : 2 * half])):
        hub.set_workers(0)
        ids_file = run.workdir / f"accept-{workers}.txt"
        ids_file.write_text("\n".join(batch) + "\n")
        out["wms"][str(workers)] = run.measured(
            lambda ids_file=ids_file: python_json(
                "benchmarks.stack.loadgen",
                "closed",
                *("--url", hub.urls[0], "--key", WMS_KEY, "--ids-file", str(ids_file)),
                *("--concurrency", str(run.profile.concurrency)),
                timeout=600,
            )
        )
        out["dispatch"][str(workers)] = drain(run, hub, dsn, workers, commands=True)
        out["dispatch"][str(workers)]["left_after_settle"] = settle(dsn, run.profile.settle_seconds)
    return out


def feed_reads(run: Run, hub: ProductionHub, dsn: str) -> dict[str, Any]:
    last = int(scalar(dsn, LAST_SEQ))
    page = min(1000, last)
    if page < 1:
        raise RuntimeError("the feed is empty")
    env = {"BENCH_KEY": READER_KEY, "BENCH_LAST": str(last), "BENCH_PAGE": str(page)}
    result = run.wrk(
        hub.urls[:1],
        "feed",
        env,
        seconds=run.profile.feed_seconds,
        connections=run.profile.feed_connections,
    )
    result.update(page=page, feed_length=last, events_per_s=result["rate"] * page)
    return dict(result)
