"""``make bench-stack``: one run of the real-stack benchmark, side by side.

``python -m benchmarks.stack [--profile smoke|quick|full] [--phases ...] [--out DIR]``.
The ``full`` profile is the measurement (a quiet machine: nothing else running; about
15-25 minutes);
``smoke`` checks the harness in about three minutes and measures nothing worth quoting;
``quick`` (about eight minutes) compares two versions run back to back. ``--phases scale``
runs only the cost of stored orders (10k, then 200k; about 3 minutes).
Writes results.json, results.md, latency.svg/.png to ``--out`` (var/bench-stack/<time>)."""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from benchmarks.stack import phases, report, scale, wrk
from benchmarks.stack.phases import Profile, Run
from benchmarks.stack.procstat import Sampler
from benchmarks.stack.topology import ProductionHub, Stack, database, embedded_hub, scalar

PROFILES: Final = {
    "smoke": Profile(
        "smoke", pg_seconds=2, closed_seconds=2, rates=(2, 5, 10), open_seconds=3, grace=10,
        drain_seconds=20, settle_seconds=30, wms_orders=30, feed_seconds=2,
        scale_sizes=(1_000, 5_000), scale_requests=20,
    ),
    "quick": Profile(
        "quick", pg_seconds=5, closed_seconds=8, rates=(10, 25, 50, 75, 100, 150),
        open_seconds=10, grace=15, drain_seconds=60, settle_seconds=90, wms_orders=300,
        feed_seconds=4, scale_requests=50,
    ),
    "full": Profile(
        "full", pg_seconds=15, closed_seconds=15,
        rates=(10, 25, 50, 75, 100, 150, 200, 300, 400, 600, 800), open_seconds=30, grace=30,
        drain_seconds=90, settle_seconds=240, wms_orders=1000, feed_seconds=10,
    ),
}  # fmt: skip
SMOKE_NOTE: Final = (
    "Smoke or quick run: shorter than the measurement. Quote only ratios taken in the same "
    "run, or runs made back to back on the same machine."
)
POSTGRES_URL: Final = os.environ.get(
    "ORDERHUB_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
PHASES: Final = ("reference", "production", "embedded", "scale")
"""``--phases``: the PostgreSQL ceiling and the plain receiver; the production hub's
intake, processing, feed, WMS, dispatch and feed reads; embedded mode; the cost of
stored orders (benchmarks/stack/scale.py). All of them unless named."""
REDIS_URL: Final = os.environ.get("ORDERHUB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stack", description=__doc__)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--out", type=Path, help="output folder (default var/bench-stack/...)")
    parser.add_argument("--serves", type=int, help="orderhub serve processes")
    parser.add_argument("--workers", type=int, help="worker processes while load runs")
    parser.add_argument("--rates", type=float, nargs="+", help="open-loop offered rates")
    parser.add_argument("--postgres-url", default=POSTGRES_URL, help="a server URL (superuser)")
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument("--no-embedded", action="store_true", help="leave embedded mode out")
    parser.add_argument(
        "--phases", nargs="+", choices=PHASES, default=list(PHASES), help="run only these"
    )
    parser.add_argument(
        "--scale-sizes", type=int, nargs=2, metavar=("SMALL", "LARGE"),
        help="orders stored at the scale phase's two measurements",
    )  # fmt: skip
    return parser.parse_args(argv)


def _commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout.strip() + (" (working tree changed)" if dirty.stdout.strip() else "")


class Phases:
    """Runs each phase, keeps what it measured or why it failed; goes on when it can."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.results = results

    def __call__(self, name: str, what: Callable[[], Any]) -> Any:
        began = time.monotonic()
        print(f"bench-stack: {name} ...", flush=True)
        try:
            value = what()
        except Exception as exc:  # a failed phase is reported, the others still run
            self.results.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"[:2000]
            print(f"bench-stack: {name} failed: {exc!r}", flush=True)
            return None
        print(f"bench-stack: {name} done in {time.monotonic() - began:.0f} s", flush=True)
        return value


def all_stored(results: dict[str, Any], stored: int) -> dict[str, Any]:
    """Every webhook answered 2xx was stored as a message of its own (none deduplicated:
    each body and webhook-id is unique); wrk's requests in flight at its end add a few."""
    answered = sum(
        (results.get(key) or {}).get("ok", 0)
        for key in ("intake", "intake_again", "intake_with_workers")
    )
    answered += sum(s["accepted"] for s in (results.get("feed_latency") or {}).get("steps", []))
    return {"answered_2xx": answered, "stored": stored, "ok": stored >= answered}


def production(run: Run, stack: Stack, args: argparse.Namespace, results: dict[str, Any]) -> None:
    phase = Phases(results)
    profile = run.profile
    with database(args.postgres_url, "orderhub_bench") as dsn:
        hub = ProductionHub(
            stack,
            database_url=dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
            redis_url=args.redis_url,
            serves=profile.serves,
            worker_threads=profile.worker_threads,
        )
        try:
            phase("start the production hub", hub.start)
            for i, serve in enumerate(hub.serves):
                run.sampler.track(f"serve-{i + 1}", serve.pid)
            if hub.main.scheduler is not None:
                run.sampler.track("scheduler", hub.main.scheduler.pid)
            for workers in (1, 2):
                found = phase(
                    f"intake, then processing with {workers} worker(s)",
                    lambda w=workers: phases.processing(run, hub, dsn, w),
                )
                if found:
                    results["intake" if workers == 1 else "intake_again"] = found[0]
                    results.setdefault("processing", {})[str(workers)] = found[1]
            hub.set_workers(profile.workers)

            def busy_intake() -> Any:
                result = run.webhooks(hub.urls, f"W-{time.time_ns()}")
                result["left_after_settle"] = phases.settle(dsn, profile.settle_seconds)
                return result

            results["intake_with_workers"] = phase("intake with workers", busy_intake)
            results["feed_latency"] = phase(
                "webhook -> feed latency", lambda: phases.feed_latency(run, hub, dsn)
            )
            found = phase("WMS accept, dispatch", lambda: phases.wms_and_dispatch(run, hub, dsn))
            if found:
                results["wms"], results["wms_again"] = found["wms"]["1"], found["wms"]["2"]
                results["dispatch"] = found["dispatch"]
            results["feed_reads"] = phase("feed reads", lambda: phases.feed_reads(run, hub, dsn))
            stored = {
                table: scalar(dsn, f"SELECT count(*) FROM {table}")
                for table in ("inbox_messages", "orders", "channel_commands", "feed_events")
            }
            results["meta"]["stored"] = stored
            results["meta"]["all_stored"] = all_stored(results, stored["inbox_messages"])
        finally:
            hub.close()


def reference(run: Run, stack: Stack, args: argparse.Namespace, results: dict[str, Any]) -> None:
    phase = Phases(results)
    with database(args.postgres_url, "orderhub_bench_ref") as ref_dsn:
        results["postgres"] = phase(
            "PostgreSQL commit ceiling", lambda: phases.postgres_ceiling(run, ref_dsn)
        )
        receiver, url = stack.start_receiver(ref_dsn)
        run.sampler.track("receiver", receiver.pid)
        results["receiver"] = phase("plain receiver", lambda: run.webhooks([url], "R"))
        receiver.stop()


def embedded(run: Run, stack: Stack, results: dict[str, Any]) -> None:
    def intake() -> Any:
        hub = embedded_hub(stack)
        run.sampler.track("embedded-serve", hub.serve.pid)
        try:
            return run.webhooks([hub.url], f"E-{time.time_ns()}")
        finally:
            hub.serve.stop()

    results["embedded"] = Phases(results)("embedded mode intake", intake)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if not wrk.available():
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    profile = PROFILES[args.profile]
    overrides = {"serves": args.serves, "workers": args.workers}
    if args.rates:
        overrides["rates"] = tuple(args.rates)
    if args.scale_sizes:
        overrides["scale_sizes"] = tuple(args.scale_sizes)
    profile = replace(profile, **{k: v for k, v in overrides.items() if v is not None})
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    outdir = args.out or Path("var/bench-stack") / stamp
    workdir = outdir / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "meta": {
            "started_at": stamp,
            "profile": profile.name,
            "settings": vars(profile),
            "commit": _commit(),
            "cpus": os.cpu_count(),
            "load_before": round(os.getloadavg()[0], 2),
            "note": SMOKE_NOTE if profile.name != "full" else "",
            "phases": list(args.phases),
        }
    }
    phase = Phases(results)
    sampler = Sampler().start()
    run = Run(profile, workdir, sampler)
    stack = Stack(workdir)
    began = time.monotonic()
    try:
        sampler.track("channel-server", stack.start_channel_server().pid)
        if "reference" in args.phases:
            reference(run, stack, args, results)
        if "production" in args.phases:
            production(run, stack, args, results)
        if "embedded" in args.phases and not args.no_embedded:
            embedded(run, stack, results)
        if "scale" in args.phases:
            results["scale"] = phase(
                "cost with stored orders",
                lambda: scale.phase(run, stack, args.postgres_url, args.redis_url),
            )
    finally:
        stack.close()
        sampler.stop()
        results["processes"] = sampler.rss()
        results["meta"]["load_after"] = round(os.getloadavg()[0], 2)
        results["meta"]["wall_s"] = round(time.monotonic() - began, 1)
        paths = report.write(results, outdir)
    print(paths["markdown"].read_text())
    print("bench-stack: wrote " + ", ".join(str(p) for p in paths.values()))
    return 1 if results.get("errors") else 0
