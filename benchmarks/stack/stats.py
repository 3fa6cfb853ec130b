"""The maths of the benchmark: percentiles, rates, backlog growth, targets. Pure functions
of the numbers the phases collect (no I/O), unit-tested in tests/unit/bench/."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

LATENCY_P99_LIMIT_MS: Final = 250.0
"""webhook -> feed: the highest rate whose p99 stays under this is the sustained rate."""
BACKLOG_SLOPE_SHARE: Final = 0.05
"""A backlog grows when its fitted slope over the second half of a run exceeds this share
of the offered rate (messages per second) ..."""
BACKLOG_FLOOR_SECONDS: Final = 0.5
"""... and the backlog at the end holds more than this many seconds of offered work."""


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (as
    numpy's default); ``None`` for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is not within 0..100")
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values_ms: Sequence[float]) -> dict[str, Any]:
    """count, p50, p95, p99, max and mean of latencies in milliseconds."""
    return {
        "count": len(values_ms),
        "p50_ms": percentile(values_ms, 50),
        "p95_ms": percentile(values_ms, 95),
        "p99_ms": percentile(values_ms, 99),
        "max_ms": max(values_ms) if values_ms else None,
        "mean_ms": sum(values_ms) / len(values_ms) if values_ms else None,
    }


def rate(count: int, seconds: float) -> float:
    """Events per second; 0 for an empty or zero-length window."""
    return count / seconds if seconds > 0 and count > 0 else 0.0


def drain_rate(samples: Sequence[tuple[float, int]], total: int) -> dict[str, Any]:
    """How fast a counter of done items went from its first progress to ``total``.

    ``samples`` are (seconds, items done) polled while workers drain a backlog that was
    complete before they started. The drain began between the last sample without
    progress and the first with some, and ended between the last sample short of
    ``total`` and the first at it; each end is placed where the drain's pace between
    those samples puts it (within its interval), so a coarse poll does not lengthen the
    window. If ``total`` was never reached, the window ends at the last sample
    (``complete`` false)."""
    if not samples or total <= 0:
        return {"rate": 0.0, "done": 0, "total": total, "seconds": 0.0, "complete": False}
    start_done = samples[0][1]
    first = next((i for i, (_, done) in enumerate(samples) if done > start_done), None)
    if first is None:
        return {"rate": 0.0, "done": start_done, "total": total, "seconds": 0.0, "complete": False}
    reached = next((i for i, (_, done) in enumerate(samples) if done >= total), None)
    last = len(samples) - 1 if reached is None else reached
    inner = last - 1 if reached is not None and last > first else last
    (t_first, d_first), (t_inner, d_inner) = samples[first], samples[inner]
    pace = (d_inner - d_first) / (t_inner - t_first) if d_inner > d_first else None
    before = samples[first - 1][0]
    start = before if pace is None else max(before, t_first - (d_first - start_done) / pace)
    end, done = samples[last]
    counted = done
    if reached is not None:
        counted = total
        if pace is not None and last > first:
            end = min(end, t_inner + (total - d_inner) / pace)
    seconds = end - start
    return {
        "rate": rate(counted - start_done, seconds),
        "done": done,
        "total": total,
        "seconds": seconds,
        "complete": reached is not None,
    }


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x; 0 for fewer than two distinct x."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def backlog_grows(samples: Sequence[tuple[float, int]], offered_rate: float) -> bool:
    """Whether the inbox backlog grew during an open-loop run (see the constants): its
    fitted slope over the second half of the sending window and its size at the end."""
    if len(samples) < 2:
        return False
    mid = samples[0][0] + (samples[-1][0] - samples[0][0]) / 2
    tail = [(t, float(b)) for t, b in samples if t >= mid]
    growing = slope(tail) > BACKLOG_SLOPE_SHARE * offered_rate
    return growing and samples[-1][1] > BACKLOG_FLOOR_SECONDS * offered_rate


@dataclass(frozen=True, slots=True)
class RatePoint:
    """One open-loop step, as :func:`sustained_rate` judges it."""

    offered: float
    p99_ms: float | None
    left_behind: int
    backlog_grows: bool

    @property
    def keeps_up(self) -> bool:
        return (
            self.p99_ms is not None
            and self.p99_ms <= LATENCY_P99_LIMIT_MS
            and self.left_behind == 0
            and not self.backlog_grows
        )


def sustained_rate(points: Iterable[RatePoint]) -> float | None:
    """The highest offered rate that keeps up, below the lowest one that does not (a rate
    above a failing step does not count: it passed by chance); ``None`` if none keeps up."""
    best = None
    for point in sorted(points, key=lambda p: p.offered):
        if not point.keeps_up:
            break
        best = point.offered
    return best


def ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return value / reference


@dataclass(frozen=True, slots=True)
class Target:
    """One of the issue's targets: ``value`` against ``limit`` (``at_least`` or not)."""

    name: str
    value: float | None
    limit: float
    at_least: bool
    unit: str = ""

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "not measured"
        ok = self.value >= self.limit if self.at_least else self.value <= self.limit
        return "met" if ok else "not met"


def _get(data: Mapping[str, Any], *path: str) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def targets(results: Mapping[str, Any]) -> list[Target]:
    """The issue's targets, from the results of one run (missing phases: not measured)."""
    ref = _get(results, "receiver", "rate")
    intake = _get(results, "intake", "rate")
    proc1 = _get(results, "processing", "1", "rate")
    proc2 = _get(results, "processing", "2", "rate")
    disp1 = _get(results, "dispatch", "1", "rate")
    disp2 = _get(results, "dispatch", "2", "rate")
    sustained = _get(results, "feed_latency", "sustained_rate")
    if sustained is None and _get(results, "feed_latency", "steps"):
        sustained = 0.0  # measured: no rate tried kept up
    dispatch_best = max((r for r in (disp1, disp2) if r is not None), default=None)
    rss = [p.get("rss_max_mb") for p in (_get(results, "processes") or {}).values()]
    rss_known = [r for r in rss if r is not None]
    return [
        Target("webhook intake / receiver", ratio(intake, ref), 0.70, True),
        Target("webhook intake p99", _get(results, "intake", "p99_ms"), 50.0, False, "ms"),
        Target(
            "webhook -> feed sustained (p99 <= 250 ms, none left) / receiver",
            ratio(sustained, ref),
            0.40,
            True,
        ),
        Target("processing: 2 workers / 1 worker", ratio(proc2, proc1), 1.60, True),
        Target("dispatch: 2 workers / 1 worker", ratio(disp2, disp1), 1.60, True),
        Target("outbound dispatch / receiver", ratio(dispatch_best, ref), 0.30, True),
        Target("WMS commands / receiver", ratio(_get(results, "wms", "rate"), ref), 0.40, True),
        Target("embedded intake", _get(results, "embedded", "rate"), 300.0, True, "req/s"),
        Target("embedded intake p99", _get(results, "embedded", "p99_ms"), 100.0, False, "ms"),
        Target("RSS of each process", max(rss_known) if rss_known else None, 200.0, False, "MB"),
        Target(
            "200k stored orders vs 10k: intake and list latency (worst p50 ratio)",
            _get(results, "scale", "target_ratio"),
            1.20,
            False,
        ),
    ]
