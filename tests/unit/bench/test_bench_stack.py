"""The real-stack benchmark's maths and report (benchmarks/stack): no load, no process.

The load run itself is ``make bench-stack``, never part of ``make test``."""

from __future__ import annotations

import json
import os
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from benchmarks.stack import chart, compare, procstat, report, wrk
from benchmarks.stack.loadgen import order_document
from benchmarks.stack.pgceiling import kib_document
from benchmarks.stack.stats import (
    RatePoint,
    Target,
    backlog_grows,
    drain_rate,
    percentile,
    sustained_rate,
    targets,
)


def test_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 0) == 1
    assert percentile(values, 100) == 100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="within"):
        percentile(values, 101)


def test_drain_rate_counts_from_the_first_progress_to_the_total() -> None:
    # idle for 2 s (workers starting), then 10 items/s up to 50
    samples = [(0.0, 0), (1.0, 0), (2.0, 0), *((2.0 + s, 10 * s) for s in range(1, 6))]
    found = drain_rate(samples, 50)
    assert found["rate"] == pytest.approx(10.0)
    assert found["complete"] is True
    partial = drain_rate(samples[:5], 50)  # stopped at 20 of 50
    assert partial["complete"] is False
    assert partial["rate"] == pytest.approx(10.0)
    assert drain_rate([], 5)["rate"] == 0


def test_a_coarse_poll_does_not_lengthen_the_drain() -> None:
    """10 items/s from t=2.5 to t=7.5, polled every second: the first sample with progress
    and the one at the total each come up to a second late; the pace between them puts
    both ends back."""
    samples = [(0.0, 0), (1.0, 0), (2.0, 0), *((t, min(50, 10 * t - 25)) for t in range(3, 9))]
    found = drain_rate(samples, 50)

    assert found["rate"] == pytest.approx(10.0)
    assert found["seconds"] == pytest.approx(5.0)
    assert found["complete"] is True
    only_progress = drain_rate([(0.0, 0), (1.0, 0), (2.0, 50)], 50)  # done between two polls
    assert only_progress["rate"] == pytest.approx(50.0)
    assert drain_rate([(0.0, 0), (1.0, 0)], 50)["rate"] == 0


def test_a_backlog_grows_only_when_it_rises_and_stays() -> None:
    flat = [(t / 2, 3) for t in range(20)]
    rising = [(t / 2, 10 * t) for t in range(20)]
    assert not backlog_grows(flat, offered_rate=50)
    assert backlog_grows(rising, offered_rate=50)
    # rising, but drained to almost nothing at the end: not a growing backlog
    assert not backlog_grows([*rising[:-1], (10.0, 1)], offered_rate=50)


def test_the_sustained_rate_stops_at_the_first_rate_that_fails() -> None:
    points = [
        RatePoint(10, 80.0, 0, False),
        RatePoint(25, 200.0, 0, False),
        RatePoint(50, 240.0, 3, False),  # messages left behind
        RatePoint(75, 120.0, 0, False),  # passed by chance above a failure: ignored
    ]
    assert sustained_rate(points) == 25
    assert sustained_rate([RatePoint(10, 300.0, 0, False)]) is None
    assert not RatePoint(10, 100.0, 0, True).keeps_up
    assert not RatePoint(10, None, 0, False).keeps_up


def results() -> dict:
    return {
        "meta": {"profile": "smoke", "note": "Smoke run."},
        "postgres": {"rate": 4000.0, "p50_ms": 1.0, "p99_ms": 5.0, "connections": 8},
        "receiver": {"rate": 1000.0, "ok": 2000, "p50_ms": 10.0, "p99_ms": 30.0,
                     "cpu_s": {"receiver": 2.0}, "generator_cpu_s": 0.1, "duration_s": 2.0},
        "intake": {"rate": 750.0, "ok": 1500, "p50_ms": 20.0, "p99_ms": 45.0,
                   "cpu_s": {"serve-1": 3.0}},
        "processing": {"1": {"rate": 40.0, "done": 10, "total": 10},
                       "2": {"rate": 60.0, "done": 10, "total": 10}},
        "dispatch": {"1": {"rate": 300.0, "done": 5, "total": 5},
                     "2": {"rate": 500.0, "done": 5, "total": 5}},
        "feed_latency": {"steps": [
            {"offered_rate": 100.0, "left_behind": 0, "backlog_grows": False,
             "feed": {"p50_ms": 50.0, "p95_ms": 90.0, "p99_ms": 120.0}},
            {"offered_rate": 500.0, "left_behind": 9, "backlog_grows": True,
             "feed": {"p50_ms": 900.0, "p95_ms": 4000.0, "p99_ms": 9000.0}},
        ], "sustained_rate": 100.0},
        "processes": {"serve-1": {"rss_max_mb": 120.0}, "worker-2": {"rss_max_mb": 230.0},
                      "worker-3": {"rss_max_mb": 90.0}},
    }  # fmt: skip


def test_targets_compare_against_the_receiver_of_the_same_run() -> None:
    verdicts = {t.name: t for t in targets(results())}
    assert verdicts["webhook intake / receiver"].value == pytest.approx(0.75)
    assert verdicts["webhook intake / receiver"].verdict == "met"
    assert verdicts["webhook intake p99"].verdict == "met"
    assert verdicts["processing: 2 workers / 1 worker"].verdict == "not met"  # 1.5 < 1.6
    assert verdicts["dispatch: 2 workers / 1 worker"].verdict == "met"
    assert verdicts["RSS of each process"].value == 230.0
    assert verdicts["RSS of each process"].verdict == "not met"
    assert verdicts["WMS commands / receiver"].verdict == "not measured"
    sustained = verdicts["webhook -> feed sustained (p99 <= 250 ms, none left) / receiver"]
    assert sustained.value == pytest.approx(0.1)
    assert Target("x", 5.0, 5.0, at_least=False).verdict == "met"


def test_no_rate_that_keeps_up_is_a_target_not_met() -> None:
    data = results()
    data["feed_latency"]["sustained_rate"] = None
    sustained = next(t for t in targets(data) if t.name.startswith("webhook -> feed"))
    assert sustained.verdict == "not met"


def test_the_report_writes_json_markdown_and_the_chart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chart, "to_png", lambda svg, png: "no PNG in this test")
    paths = report.write(results(), tmp_path)
    text = paths["markdown"].read_text()
    assert "**Smoke run.**" in text
    assert "| webhook intake, no worker running, 16 concurrent | 750 req/s" in text
    assert "| 75.0% |" in text
    assert "serve* CPU 2.00 ms/req" in text
    assert "| RSS, worker (2 process(es)) | 230 MB at most |" in text
    assert "| webhook intake / receiver | 0.75 | >= 0.7  | met |" in text
    stored = json.loads(paths["json"].read_text())
    assert stored["meta"]["chart"] == "no PNG in this test"
    assert {t["verdict"] for t in stored["targets"]} >= {"met", "not met", "not measured"}
    svg = ET.fromstring(paths["svg"].read_text())
    assert svg.tag.endswith("svg")
    assert "png" not in paths


def test_the_chart_axis_and_clipped_points() -> None:
    assert [chart.nice_ceiling(v) for v in (0, 0.7, 3, 240, 300, 2001)] == [1, 1, 5, 250, 500, 2500]
    drawn = chart.svg(results()["feed_latency"]["steps"], limit_ms=250, title="t")
    ET.fromstring(drawn)
    assert ">9000</text>" in drawn  # beyond the axis (2000 ms): its value is written


def test_wrk_summary_line() -> None:
    out = (
        "Running 2s test\n"
        'BENCH_JSON {"requests":100,"duration_s":2.0,"bytes":1,"errors_connect":0,'
        '"errors_read":0,"errors_write":0,"errors_status":4,"errors_timeout":1,'
        '"max_ms":9.0,"mean_ms":2.0,"p50_ms":1.0,"p90_ms":2.0,"p95_ms":3.0,"p99_ms":4.0}\n'
    )
    found = wrk.parse(out)
    assert (found["ok"], found["errors"], found["rate"]) == (96, 5, 48.0)
    with pytest.raises(RuntimeError, match="no summary"):
        wrk.parse("wrk: connection refused\n")


def test_the_lua_webhook_body_is_the_generator_s_document() -> None:
    lua = (wrk.LUA / "webhook.lua").read_text()
    block = lua[lua.index("local template") : lua.index("function request")]
    template = "".join(re.findall(r"'([^']*)'", block))
    assert json.loads(template % ("T-1", "T-1")) == order_document("T-1")


def test_one_kib_rows_and_proc_readings() -> None:
    assert {len(kib_document(i)) for i in (0, 7, 10**9)} == {1024}
    assert kib_document(1) != kib_document(1)  # a nonce each: never the same row
    assert (procstat.rss_mb(os.getpid()) or 0) > 1
    assert procstat.cpu_seconds(os.getpid()) >= 0
    assert procstat.rss_mb(2**22 + 12345) is None  # no such process


def test_the_machine_and_its_shared_services_are_read_too() -> None:
    busy = procstat.machine_busy_seconds()
    deadline = time.monotonic() + 10
    while procstat.machine_busy_seconds() <= busy and time.monotonic() < deadline:
        pass  # spinning is busy time: the reading moves within a clock tick or two
    assert procstat.machine_busy_seconds() > busy
    assert os.getpid() in procstat.named(Path(f"/proc/{os.getpid()}/comm").read_text().strip())
    readings = procstat.Sampler().cpu()
    assert {"machine", "postgres", "redis"} <= readings.keys()


def test_a_drain_row_says_where_the_cpu_went() -> None:
    phase = {
        "rate": 100.0,
        "done": 10,
        "total": 10,
        "seconds": 2.0,
        "cpu_s": {"worker-2": 1.5, "worker-3": 0.5, "postgres": 1.0, "redis": 0.2, "machine": 3.6},
    }
    text = report.cores(phase, 2)
    assert "workers 1.00" in text
    assert "PostgreSQL 0.50" in text
    assert "Redis 0.10" in text
    assert "machine busy 1.80 = 90% of 2" in text
    assert report.cores({"seconds": 2.0, "cpu_s": {"worker-2": 1.0}}, 2) == ""


def test_runs_side_by_side_a_column_each() -> None:
    def run(name: str, receiver: float, intake: float) -> dict[str, Any]:
        return {
            "meta": {"started_at": name, "load_before": 0.5, "load_after": 1.0},
            "receiver": {"rate": receiver, "p99_ms": 9.0},
            "intake": {"rate": intake, "p99_ms": 80.0},
            "processing": {"1": {"rate": 100.0}, "2": {"rate": 170.0}},
        }

    lines = compare.table([run("A", 1000.0, 500.0), run("B", 2000.0, 500.0)])
    assert lines[0] == "| figure | A | B |"
    assert "| webhook intake req/s (p99 ms) | 500 (80.0) | 500 (80.0) |" in lines
    ratio = next(line for line in lines if "target: webhook intake / receiver" in line)
    assert ratio.endswith("| 0.50 (not met) | 0.25 (not met) |")
    scale_out = next(line for line in lines if "processing: 2 workers / 1 worker" in line)
    assert scale_out.endswith("| 1.70 (met) | 1.70 (met) |")
