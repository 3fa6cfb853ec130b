"""The latency chart, drawn as SVG by hand (no plotting library in the environment), and
turned into PNG by headless Chromium when one is installed (Debian's ``chromium``)."""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any, Final

WIDTH: Final = 800
HEIGHT: Final = 480
LEFT, RIGHT, TOP, BOTTOM = 70, 150, 40, 60
SERIES: Final = (
    ("p50_ms", "p50", "#1f77b4"),
    ("p95_ms", "p95", "#ff7f0e"),
    ("p99_ms", "p99", "#d62728"),
)


def nice_ceiling(value: float) -> float:
    """The next of 1, 2, 2.5, 5 x 10^n at or above ``value`` (an axis end)."""
    if value <= 0:
        return 1.0
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * exponent >= value:
            return step * exponent
    return 10 * exponent


def svg(steps: Sequence[Mapping[str, Any]], *, limit_ms: float, title: str) -> str:
    """``steps``: ``{"offered_rate", "feed": {"p50_ms", ...}}`` each; one line per series,
    the limit as a dashed line. Steps without latencies are left out."""
    points = [s for s in steps if s.get("feed", {}).get("p50_ms") is not None]
    x_max = nice_ceiling(max((s["offered_rate"] for s in points), default=1.0))
    top = max((s["feed"].get("p99_ms") or 0 for s in points), default=0.0)
    # the axis stops at 8x the limit: a saturated step would flatten the rest
    y_max = nice_ceiling(min(max(top, limit_ms * 1.2), limit_ms * 8))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(v: float) -> float:
        return LEFT + plot_w * v / x_max

    def y(v: float) -> float:
        return TOP + plot_h * (1 - min(v, y_max) / y_max)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="22" font-size="15">{escape(title)}</text>',
    ]
    for i in range(6):
        xv, yv = x_max * i / 5, y_max * i / 5
        out.append(
            f'<line x1="{LEFT}" y1="{y(yv):.1f}" x2="{LEFT + plot_w}" y2="{y(yv):.1f}" '
            'stroke="#ddd"/>'
        )
        out.append(f'<text x="{LEFT - 6}" y="{y(yv) + 4:.1f}" text-anchor="end">{yv:g}</text>')
        out.append(
            f'<text x="{x(xv):.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">{xv:g}</text>'
        )
    out += [
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#333"/>',
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 18}" text-anchor="middle">'
        "offered rate (webhooks/s, open loop)</text>",
        f'<text transform="translate(18 {TOP + plot_h / 2}) rotate(-90)" '
        'text-anchor="middle">webhook -&gt; order.received on the feed (ms)</text>',
        f'<line x1="{LEFT}" y1="{y(limit_ms):.1f}" x2="{LEFT + plot_w}" y2="{y(limit_ms):.1f}" '
        'stroke="#555" stroke-dasharray="6 4"/>',
        f'<text x="{LEFT + plot_w + 8}" y="{y(limit_ms) + 4:.1f}">p99 limit {limit_ms:g} ms</text>',
    ]
    for n, (key, label, colour) in enumerate(SERIES):
        coords = [(x(s["offered_rate"]), y(s["feed"][key])) for s in points]
        if coords:
            path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
            out += [
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{colour}"/>' for cx, cy in coords
            ]
            out += [
                f'<text x="{x(s["offered_rate"]) + 5:.1f}" y="{TOP + 12 + 12 * n}" '
                f'font-size="10" fill="{colour}">{s["feed"][key]:.0f}</text>'
                for s in points
                if s["feed"][key] > y_max
            ]
        ly = TOP + 20 + 20 * n
        out.append(
            f'<line x1="{LEFT + plot_w + 8}" y1="{ly}" x2="{LEFT + plot_w + 30}" '
            f'y2="{ly}" stroke="{colour}" stroke-width="2"/>'
        )
        out.append(f'<text x="{LEFT + plot_w + 36}" y="{ly + 4}">{label}</text>')
    out.append(
        f'<text x="{LEFT + plot_w + 8}" y="{TOP + 90}" font-size="10">'
        "beyond the top: value in ms</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def to_png(svg_path: Path, png_path: Path) -> str | None:
    """The PNG through headless Chromium; a reason when it cannot be made."""
    browser = chromium()
    if browser is None:
        return "no chromium installed: the chart is SVG only (apt-get install chromium)"
    argv = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={png_path}",
        svg_path.resolve().as_uri(),
    ]  # fmt: skip
    try:
        subprocess.run(argv, capture_output=True, timeout=60, check=True)
    except (subprocess.SubprocessError, OSError) as exc:
        return f"chromium could not draw the PNG: {exc}"
    return None if png_path.exists() else "chromium wrote no PNG"
