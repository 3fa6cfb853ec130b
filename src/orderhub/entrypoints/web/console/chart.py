"""The overview's chart, drawn here as SVG: orders received per hour per channel.

Everything in it is text the template engine escapes (channel names come from
configuration, but are escaped all the same); no script, no external asset."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from orderhub.application.ports import HourlyCount

WIDTH: Final = 720
HEIGHT: Final = 200
LEFT: Final = 40
BOTTOM: Final = 24
TOP: Final = 10
RIGHT: Final = 10
# high-contrast colours that stay apart for the common colour-vision deficiencies
PALETTE: Final = ("#0b5cad", "#b34700", "#1b7f3b", "#7a2f9e", "#8a6d00", "#a1123f")


@dataclass(frozen=True, kw_only=True, slots=True)
class Series:
    channel: str
    colour: str
    points: str  # an SVG polyline's points
    total: int
    counts: tuple[int, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class Chart:
    width: int
    height: int
    hours: tuple[datetime, ...]
    series: tuple[Series, ...]
    peak: int
    y_ticks: tuple[tuple[float, int], ...]  # (y, value)
    x_ticks: tuple[tuple[float, str], ...]  # (x, label)
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int


def build_chart(counts: Sequence[HourlyCount], *, since: datetime, hours: int) -> Chart:
    slots = tuple(since + timedelta(hours=i) for i in range(hours))
    index = {hour: i for i, hour in enumerate(slots)}
    per_channel: dict[str, list[int]] = {}
    for item in counts:
        at = index.get(item.hour)
        if at is None:
            continue
        per_channel.setdefault(item.channel, [0] * hours)[at] += item.count
    peak = max((max(values) for values in per_channel.values()), default=0)
    scale_top = max(peak, 1)
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    step = plot_w / max(hours - 1, 1)

    def y(value: float) -> float:
        return round(TOP + plot_h - plot_h * value / scale_top, 1)

    series = tuple(
        Series(
            channel=channel,
            colour=PALETTE[i % len(PALETTE)],
            points=" ".join(f"{round(LEFT + step * h, 1)},{y(v)}" for h, v in enumerate(values)),
            total=sum(values),
            counts=tuple(values),
        )
        for i, (channel, values) in enumerate(sorted(per_channel.items()))
    )
    y_ticks = tuple((y(v), v) for v in sorted({0, scale_top // 2, scale_top}))
    x_ticks = tuple(
        (round(LEFT + step * h, 1), slots[h].strftime("%d %H:00")) for h in range(0, hours, 6)
    )
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        hours=slots,
        series=series,
        peak=peak,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        plot_left=LEFT,
        plot_right=WIDTH - RIGHT,
        plot_top=TOP,
        plot_bottom=HEIGHT - BOTTOM,
    )
