"""Several runs side by side: ``python -m benchmarks.stack.compare DIR DIR DIR``.

Issue 10 asks for three runs of each figure: this reads their ``results.json`` and prints
one Markdown table, a column per run, with the figures the targets are taken from (rates
and their ratios to the receiver of the same run) and each target's value and verdict."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.stack.report import num
from benchmarks.stack.stats import targets

Figure = Callable[[Mapping[str, Any]], str]


def _rate(*path: str, digits: int = 0) -> Figure:
    def figure(results: Mapping[str, Any]) -> str:
        found: Any = results
        for key in path:
            found = (found or {}).get(key) if isinstance(found, Mapping) else None
        return num(found, digits)

    return figure


def _closed(key: str) -> Figure:
    """A closed loop's rate and p99: ``570 (155.7)``."""

    def figure(results: Mapping[str, Any]) -> str:
        phase = results.get(key) or {}
        return f"{num(phase.get('rate'))} ({num(phase.get('p99_ms'), 1)})"

    return figure


def _load(results: Mapping[str, Any]) -> str:
    meta = results.get("meta") or {}
    return f"{meta.get('load_before', '?')} / {meta.get('load_after', '?')}"


FIGURES: Sequence[tuple[str, Figure]] = (
    ("load average before / after", _load),
    ("PostgreSQL commits/s", _rate("postgres", "rate")),
    ("plain receiver req/s (p99 ms)", _closed("receiver")),
    ("webhook intake req/s (p99 ms)", _closed("intake")),
    ("webhook intake again req/s (p99 ms)", _closed("intake_again")),
    ("processing, 1 worker, orders/s", _rate("processing", "1", "rate", digits=1)),
    ("processing, 2 workers, orders/s", _rate("processing", "2", "rate", digits=1)),
    ("webhook -> feed sustained, webhooks/s", _rate("feed_latency", "sustained_rate")),
    ("WMS accept req/s (p99 ms)", _closed("wms")),
    ("outbound dispatch, 1 worker, commands/s", _rate("dispatch", "1", "rate", digits=1)),
    ("outbound dispatch, 2 workers, commands/s", _rate("dispatch", "2", "rate", digits=1)),
    ("embedded intake req/s (p99 ms)", _closed("embedded")),
)


def table(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The Markdown lines: figures, then the targets, a column per run."""
    names = [
        str((run.get("meta") or {}).get("started_at", f"run {i + 1}")) for i, run in enumerate(runs)
    ]
    lines = ["| figure | " + " | ".join(names) + " |", "|---|" + "---|" * len(runs)]
    lines += [f"| {name} | " + " | ".join(f(run) for run in runs) + " |" for name, f in FIGURES]
    found = [{t.name: t for t in targets(run)} for run in runs]
    for name, first in found[0].items():
        cells = []
        for run in found:
            target = run.get(name)
            value = "-" if target is None or target.value is None else f"{target.value:,.2f}"
            cells.append(f"{value} ({target.verdict if target else '-'})")
        sign = ">=" if first.at_least else "<="
        lines.append(f"| target: {name} {sign} {first.limit:g} | " + " | ".join(cells) + " |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stack.compare")
    parser.add_argument("runs", nargs="+", type=Path, help="output folders of benchmark runs")
    args = parser.parse_args(argv)
    runs = [json.loads((folder / "results.json").read_text()) for folder in args.runs]
    print("\n".join(table(runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
