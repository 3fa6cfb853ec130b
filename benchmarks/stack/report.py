"""The run's report: ``results.json`` (everything measured), ``results.md`` (the table,
ratios against the plain receiver, the issue's targets met or not) and the latency chart
(``latency.svg``, ``latency.png`` where Chromium can draw it)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.stack import chart, scale
from benchmarks.stack.stats import LATENCY_P99_LIMIT_MS, ratio, targets


def num(value: Any, digits: int = 0) -> str:
    """A number for the table: thousands separated, ``-`` when not measured."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:,.{digits}f}"


def _ratio(value: Any, reference: Any) -> str:
    found = ratio(value, reference)
    return "-" if found is None else f"{found:.1%}"


def _latency(phase: Mapping[str, Any]) -> str:
    return f"p50 {num(phase.get('p50_ms'), 1)} ms, p99 {num(phase.get('p99_ms'), 1)} ms"


def _generator(phase: Mapping[str, Any]) -> str:
    cpu = phase.get("generator_cpu_s")
    wall = phase.get("wall_s") or phase.get("duration_s") or phase.get("seconds")
    if cpu is None or not wall:
        return "-"
    return f"{cpu / wall:.0%}"


def server_cpu_ms(phase: Mapping[str, Any], prefix: str) -> float | None:
    """CPU milliseconds per answered request of the processes named ``prefix...``."""
    cpu = phase.get("cpu_s") or {}
    used = sum(v for k, v in cpu.items() if k.startswith(prefix))
    return used * 1000 / phase["ok"] if phase.get("ok") and used else None


def cores(phase: Mapping[str, Any], cpus: Any) -> str:
    """Where a drain's CPU went, in cores: the workers, PostgreSQL, Redis, and how busy
    the whole machine was (a second worker can only use what the first left idle)."""
    cpu = phase.get("cpu_s") or {}
    seconds = phase.get("seconds")
    if not seconds or "machine" not in cpu:
        return ""
    workers = sum(v for k, v in cpu.items() if k.startswith("worker"))
    busy = cpu["machine"] / seconds
    share = f" = {busy / cpus:.0%} of {cpus}" if isinstance(cpus, int) and cpus else ""
    return (
        f"; CPU in cores: workers {workers / seconds:.2f}, PostgreSQL "
        f"{cpu.get('postgres', 0) / seconds:.2f}, Redis {cpu.get('redis', 0) / seconds:.2f}, "
        f"machine busy {busy:.2f}{share}"
    )


def roles(processes: Mapping[str, Any]) -> dict[str, tuple[float, int]]:
    """The largest RSS per role (``worker-3`` and ``worker-7`` are both ``worker``) and
    how many processes had that role."""
    found: dict[str, tuple[float, int]] = {}
    for name, proc in processes.items():
        role = re.sub(r"-\d+", "", name)
        top, count = found.get(role, (0.0, 0))
        found[role] = (max(top, proc["rss_max_mb"]), count + 1)
    return found


def rows(results: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(what, figure, ratio to the receiver, generator CPU share of one core)."""
    ref = (results.get("receiver") or {}).get("rate")
    cpus = (results.get("meta") or {}).get("cpus")
    out: list[tuple[str, str, str, str]] = []

    def closed(name: str, key: str, server: str) -> None:
        phase = results.get(key)
        if phase:
            figure = f"{num(phase['rate'])} req/s, {_latency(phase)}"
            if (cpu := server_cpu_ms(phase, server)) is not None:
                figure += f"; {server}* CPU {cpu:.2f} ms/req"
            out.append((name, figure, _ratio(phase["rate"], ref), _generator(phase)))

    if pg := results.get("postgres"):
        figure = f"{num(pg['rate'])} commits/s, {_latency(pg)}"
        out.append(
            (
                f"PostgreSQL commits, 1 KiB JSON, {pg['connections']} connections",
                figure,
                "",
                _generator(pg),
            )
        )
    closed("plain receiver (litestar + asyncpg), 16 concurrent", "receiver", "receiver")
    closed("webhook intake, no worker running, 16 concurrent", "intake", "serve")
    closed("webhook intake, no worker running, again", "intake_again", "serve")
    closed("webhook intake, workers running, 16 concurrent", "intake_with_workers", "serve")
    for workers, phase in sorted((results.get("processing") or {}).items()):
        figure = f"{num(phase['rate'], 1)} orders/s ({phase['done']}/{phase['total']})"
        figure += cores(phase, cpus)
        out.append((f"processing inbox -> order -> feed, {workers} worker(s)", figure, "", ""))
    latency = results.get("feed_latency") or {}
    for step in latency.get("steps", []):
        feed = step["feed"]
        figure = (
            f"p50 {num(feed['p50_ms'])} ms, p95 {num(feed['p95_ms'])} ms, "
            f"p99 {num(feed['p99_ms'])} ms; left behind {step['left_behind']}, "
            f"backlog grows: {num(step['backlog_grows'])}"
        )
        name = f"webhook -> feed at {num(step['offered_rate'])}/s offered"
        out.append((name, figure, _ratio(step["offered_rate"], ref), _generator(step)))
    if latency:
        sustained = latency.get("sustained_rate")
        figure = f"{num(sustained)} webhooks/s" if sustained else "none of the rates tried"
        name = f"webhook -> feed sustained (p99 <= {LATENCY_P99_LIMIT_MS:g} ms, none left)"
        out.append((name, figure, _ratio(sustained, ref), ""))
    closed("WMS accept (API), no worker running, 16 concurrent", "wms", "serve")
    closed("WMS accept (API), again", "wms_again", "serve")
    for workers, phase in sorted((results.get("dispatch") or {}).items()):
        figure = f"{num(phase['rate'], 1)} commands/s ({phase['done']}/{phase['total']})"
        figure += cores(phase, cpus)
        out.append(
            (f"outbound dispatch, {workers} worker(s)", figure, _ratio(phase["rate"], ref), "")
        )
    if reads := results.get("feed_reads"):
        figure = f"{num(reads['events_per_s'])} events/s (pages of {reads['page']})"
        out.append(("feed reads", figure, "", _generator(reads)))
    closed("embedded mode (SQLite) intake, 16 concurrent", "embedded", "embedded")
    for role, (top, count) in sorted(roles(results.get("processes") or {}).items()):
        out.append((f"RSS, {role} ({count} process(es))", f"{num(top)} MB at most", "", ""))
    return out


def markdown(results: Mapping[str, Any]) -> str:
    meta = results.get("meta", {})
    lines = [
        f"Run {meta.get('started_at', '?')} ({meta.get('profile', '?')} profile), "
        f"commit {meta.get('commit', '?')}, {meta.get('cpus', '?')} CPUs, load average "
        f"{meta.get('load_before', '?')} before and {meta.get('load_after', '?')} after.",
        "",
    ]
    if check := meta.get("all_stored"):
        verdict = "yes" if check["ok"] else "NO: some were deduplicated or lost"
        lines += [
            f"Webhooks answered 2xx: {check['answered_2xx']:,}; inbox messages stored: "
            f"{check['stored']:,}; each stored: {verdict}.",
            "",
        ]
    if note := meta.get("note"):
        lines += [f"**{note}**", ""]
    lines += [
        "| what | figure | / plain receiver | load generator CPU |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(results)]
    lines += ["", "| target | reached | limit | verdict |", "|---|---|---|---|"]
    for target in targets(results):
        shown = "-" if target.value is None else f"{target.value:,.2f} {target.unit}".strip()
        sign = ">=" if target.at_least else "<="
        lines.append(
            f"| {target.name} | {shown} | {sign} {target.limit:g} {target.unit} | "
            f"{target.verdict} |"
        )
    if found := results.get("scale"):
        lines += ["", "Cost with stored orders:", "", *scale.table(found)]
    if errors := results.get("errors"):
        lines += ["", "Phases that failed:", ""] + [f"- {k}: {v}" for k, v in errors.items()]
    return "\n".join(lines) + "\n"


def write(results: dict[str, Any], outdir: Path) -> dict[str, Path]:
    """results.json, results.md, latency.svg and latency.png (when it can be drawn)."""
    outdir.mkdir(parents=True, exist_ok=True)
    results["targets"] = [
        {"name": t.name, "value": t.value, "limit": t.limit, "at_least": t.at_least,
         "verdict": t.verdict}
        for t in targets(results)
    ]  # fmt: skip
    paths = {"json": outdir / "results.json", "markdown": outdir / "results.md"}
    steps = (results.get("feed_latency") or {}).get("steps", [])
    if steps:
        paths["svg"] = outdir / "latency.svg"
        paths["svg"].write_text(
            chart.svg(steps, limit_ms=LATENCY_P99_LIMIT_MS, title="webhook -> feed latency")
        )
        problem = chart.to_png(paths["svg"], outdir / "latency.png")
        if problem is None:
            paths["png"] = outdir / "latency.png"
        else:
            results.setdefault("meta", {})["chart"] = problem
    paths["json"].write_text(json.dumps(results, indent=1, default=str) + "\n")
    paths["markdown"].write_text(markdown(results))
    return paths
