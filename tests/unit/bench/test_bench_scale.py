"""The scale phase's pure parts (benchmarks/stack/scale.py): the plan checker, the
ratios and the target, the seeded rows. No database, no process."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from benchmarks.stack import report, scale
from benchmarks.stack.stats import targets

INDEX_PLAN: Any = [
    {
        "Plan": {
            "Node Type": "Limit",
            "Plans": [
                {
                    "Node Type": "Index Scan",
                    "Relation Name": "orders",
                    "Index Name": "ix_orders_last_seq",
                }
            ],
        }
    }
]
SEQ_PLAN: Any = [
    {
        "Plan": {
            "Node Type": "Limit",
            "Plans": [
                {
                    "Node Type": "Sort",
                    "Plans": [
                        {"Node Type": "Seq Scan", "Relation Name": "orders"},
                        {"Node Type": "Seq Scan", "Relation Name": "feed_counter"},
                    ],
                }
            ],
        }
    }
]


def test_the_plan_checker_flags_a_seq_scan_on_a_growing_table_only() -> None:
    assert scale.seq_scans(INDEX_PLAN) == []
    assert scale.seq_scans(SEQ_PLAN) == ["orders"]  # feed_counter has one row: not watched
    assert scale.scans_used(INDEX_PLAN) == ["Index Scan on orders using ix_orders_last_seq"]
    assert scale.scans_used(SEQ_PLAN) == ["Seq Scan on orders", "Seq Scan on feed_counter"]


def test_the_verdict_names_scanning_statements_but_not_the_unasserted_scheduler() -> None:
    def plan(p: Any) -> dict[str, Any]:
        return {"seq_scans": scale.seq_scans(p), "scans": scale.scans_used(p)}

    ok = scale.index_verdict({"list_first": plan(INDEX_PLAN), "scheduler_stale": plan(SEQ_PLAN)})
    assert ok == {"index_only": True, "seq_scans": {}}
    bad = scale.index_verdict({"list_first": plan(SEQ_PLAN)})
    assert bad == {"index_only": False, "seq_scans": {"list_first": ["orders"]}}


def test_ratios_are_large_over_small_and_the_target_is_the_worst_p50() -> None:
    small = {
        "intake": {"p50_ms": 10.0, "p99_ms": 40.0},
        "list_first": {"p50_ms": 20.0, "p99_ms": 50.0},
        "list_deep": {"p50_ms": 20.0, "p99_ms": 50.0},
        "list_status": {"p50_ms": 20.0, "p99_ms": None},
        "detail_100_lines": {"p50_ms": 5.0, "p99_ms": 9.0},
    }
    large = {
        "intake": {"p50_ms": 11.0, "p99_ms": 80.0},
        "list_first": {"p50_ms": 25.0, "p99_ms": 50.0},
        "list_deep": {"p50_ms": 18.0, "p99_ms": 45.0},
        "list_status": {"p50_ms": 22.0, "p99_ms": 60.0},
        "detail_100_lines": {"p50_ms": 50.0, "p99_ms": 90.0},
    }
    ratios = scale.latency_ratios(small, large)
    assert ratios["intake"]["p50_ms"] == 1.1
    assert ratios["intake"]["p99_ms"] == 2.0
    assert ratios["list_status"]["p99_ms"] is None
    assert ratios["intake"]["serve_cpu_ms"] is None  # not measured at either size
    # the worst p50 of intake and the list; the detail (10x here) is not in the target
    assert scale.target_ratio(ratios) == 1.25
    assert scale.target_ratio({k: v for k, v in ratios.items() if k != "list_deep"}) == 1.25
    assert scale.target_ratio({"intake": {"p50_ms": None, "p99_ms": None}}) is None


def test_the_target_of_the_report_reads_the_scale_phase() -> None:
    found = {t.name: t for t in targets({"scale": {"target_ratio": 1.1}})}
    (target,) = (t for name, t in found.items() if name.startswith("200k"))
    assert target.value == 1.1
    assert target.verdict == "met"
    (missing,) = (t for t in targets({}) if t.name.startswith("200k"))
    assert missing.verdict == "not measured"


def test_seeded_rows_are_the_hubs_own_orders_numbered_after_what_is_stored() -> None:
    shapes = scale.templates()
    big = scale.template(scale.BIG_LINES, (), "awaiting_acceptance")
    statuses = {shape.row["status"] for shape in shapes}
    assert statuses == {status for status, _, _ in scale.MIX}
    assert len(big.row["document"]["lines"]) == scale.BIG_LINES
    now = datetime(2026, 6, 1, tzinfo=UTC)
    rows = list(scale._rows(0, 40, 1000, shapes, big, now, scale.Numbers(feed=7, inbox=3)))
    orders = [r[0] for r in rows]
    assert len({o[0] for o in orders}) == 40  # unique ids
    assert all(uuid.UUID(o[0]).version == 7 for o in orders)
    assert [o[16] for o in orders] == list(range(8, 48))  # last_seq after the feed's 7
    assert [r[1][0] for r in rows] == list(range(8, 48))  # the events' seq, the same
    assert [r[2][11] for r in rows] == list(range(4, 44))  # the inbox after its 3
    assert orders[1][13] == big.document  # number 1 is the 100-line order
    assert len(orders[0][13]) < len(big.document)
    created = [o[10] for o in orders]
    assert created == sorted(created)
    assert created[-1] < now
    assert b"S-0000005" in rows[5][2][4]  # the stored webhook names its order


def test_serve_cpu_per_request() -> None:
    assert scale.serve_cpu_ms({"cpu_s": {scale.SERVE: 0.5, "other": 9.0}}, 100) == 5.0
    assert scale.serve_cpu_ms({"cpu_s": {}}, 100) is None
    assert scale.serve_cpu_ms({"cpu_s": {scale.SERVE: 0.5}}, 0) is None


def test_the_report_shows_the_scale_table() -> None:
    at = {"p50_ms": 10.0, "p99_ms": 20.0}
    plans = {"list_first": {"seq_scans": [], "scans": scale.scans_used(INDEX_PLAN)}}
    found = {
        "sizes": [10_000, 200_000],
        "requests": 100,
        "at_small": {"list_first": at},
        "at_large": {"list_first": {"p50_ms": 11.0, "p99_ms": 30.0}},
        "ratios": {"list_first": {"p50_ms": 1.1, "p99_ms": 1.5}},
        "seed": [{"orders": 10_000, "copy_s": 1.5}, {"orders": 190_000, "copy_s": 28.0}],
        "seed_s": 31.0,
        "plans": plans,
        "target_ratio": 1.1,
    }
    text = report.markdown({"meta": {}, "scale": found})
    assert "| list first | 10.0 / 20.0; - | 11.0 / 30.0; - | 1.10x / 1.50x / - |" in text
    assert "no Seq Scan on orders" in text
    assert "Index Scan on orders using ix_orders_last_seq" in text
