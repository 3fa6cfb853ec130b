"""The run's figures, its JSON report and its short Markdown summary."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from chaos.checker import Violation, waiting_for_operator


def figures(observation: dict[str, Any], faults: dict[str, Any]) -> dict[str, Any]:
    wms = observation.get("wms", [])
    answered = Counter(
        "2xx"
        if e["status"] is not None and 200 <= e["status"] < 300
        else ("no answer" if e["status"] is None else str(e["status"]))
        for e in wms
    )
    feed = observation.get("feed", [])
    ends = Counter(e["type"] for e in feed if e["type"].startswith("command."))
    channels = {}
    for name, seen in observation.get("channels", {}).items():
        hooks = seen.get("webhooks", [])
        channels[name] = {
            "orders": len(seen.get("orders", [])),
            "order_statuses": dict(Counter(o["status"] for o in seen.get("orders", []))),
            "calls": len(seen.get("calls", [])),
            "calls_faulted": sum(1 for c in seen.get("calls", []) if c.get("fault")),
            "webhooks": len(hooks),
            "webhooks_delivered": sum(1 for h in hooks if h.get("delivered")),
            "webhooks_dropped": sum(1 for h in hooks if h.get("dropped")),
            "webhooks_retried_after_give_up": seen.get("webhooks_retried_after_give_up", 0),
        }
    kinds = Counter(e["action"] for e in wms if e.get("command_id"))
    return {
        "kills": sum(v for k, v in faults["counts"].items() if k.startswith("kill")),
        "restarts": faults["restarts"],
        "network_faults": sum(
            v for k, v in faults["counts"].items() if k.startswith(("db ", "broker "))
        ),
        "clock_skews": faults.get("skews", {}),
        "faults": dict(sorted(faults["counts"].items())),
        "orders": {name: c["orders"] for name, c in channels.items()},
        "hub_orders": len(observation.get("hub_orders", [])),
        "attention_orders": sum(1 for o in observation.get("hub_orders", []) if o["attention"]),
        "wms_commands": len(wms),
        "wms_answers": dict(answered),
        "wms_commands_by_action": dict(kinds),
        "wms_tries": dict(Counter(str(a) for e in wms for a in e.get("answers", []))),
        "terminal_events": dict(ends),
        "feed_events": len(feed),
        "failed_commands": len(observation.get("failed_commands", [])),
        "held_commands": sum(
            len(waiting_for_operator(o.get("pending_commands", [])))
            for o in observation.get("hub_orders", [])
        ),
        "channels": channels,
    }


def write(
    out: Path,
    *,
    run: dict[str, Any],
    numbers: dict[str, Any],
    violations: list[Violation],
    observation: dict[str, Any],
) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "run": run,
        "figures": numbers,
        "violations": [v.as_dict() for v in violations],
    }
    json_path = out / "report.json"
    json_path.write_text(json.dumps(report, indent=2, default=str))
    (out / "observation.json").write_text(json.dumps(observation, default=str))
    md_path = out / "summary.md"
    md_path.write_text(markdown(run, numbers, violations))
    return json_path, md_path


def markdown(run: dict[str, Any], n: dict[str, Any], violations: list[Violation]) -> str:
    lines = [
        f"# Chaos run: seed {run['seed']}, {run['broker']}",
        "",
        f"`{run['command']}`",
        "",
        f"{run['workload_seconds']:.0f} s of workload and faults, settled in "
        f"{run['settle']['seconds']} s, {run['total_seconds']:.0f} s in all; "
        f"channels {', '.join(run['channels'])}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| kills (SIGKILL) | {n['kills']} |",
        f"| restarts | {n['restarts']} |",
        f"| network faults (PostgreSQL, broker) | {n.get('network_faults', 0)} |",
        f"| clock skews (s) | {_pairs(n.get('clock_skews', {}))} |",
        f"| marketplace orders | {sum(n['orders'].values())} ({_pairs(n['orders'])}) |",
        f"| hub orders | {n['hub_orders']} ({n['attention_orders']} with attention) |",
        f"| WMS commands | {n['wms_commands']} ({_pairs(n['wms_answers'])}) |",
        f"| WMS tries (each answer, retries included) | {_pairs(n['wms_tries'])} |",
        f"| terminal events | {_pairs(n['terminal_events'])} |",
        f"| commands failed / held behind them (for an operator) | {n['failed_commands']} / "
        f"{n['held_commands']} |",
        f"| feed events | {n['feed_events']} |",
        f"| simulator calls | {_pairs({k: v['calls'] for k, v in n['channels'].items()})} |",
        f"| violations | {len(violations)} |",
        "",
        "## Faults",
        "",
        *[f"- {kind}: {count}" for kind, count in n["faults"].items()],
        "",
    ]
    if run["settle"]["unsettled"]:
        lines += ["## Not settled", "", *[f"- {p}" for p in run["settle"]["unsettled"]], ""]
    lines += ["## Violations", ""]
    if not violations:
        lines.append("None.")
    for v in violations:
        where = f" {v.channel} order {v.order} (hub {v.hub_order})" if v.order else ""
        lines += [f"### {v.kind}{where}", "", v.detail, ""]
        if v.timeline:
            lines += ["```", *v.timeline[-60:], "```", ""]
    return "\n".join(lines) + "\n"


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items()) or "none"
