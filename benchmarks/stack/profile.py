"""Profile one process of the production topology under one load, with py-spy.

``python -m benchmarks.stack.profile intake|processing|dispatch [--seconds N] [--out DIR]``

* ``intake``: wrk posts webhooks (no worker running); ``serve`` is sampled;
* ``processing``: a batch of webhooks is stored, then one worker drains it; the worker's
  child process (the one running the jobs) is sampled;
* ``accept``: orders are stored and processed, then accepted over the API (16 at a time,
  no worker running); ``serve`` is sampled;
* ``dispatch``: the same, then one worker sends the commands to the channel server; the
  worker is sampled.

Writes py-spy's ``--format raw`` (collapsed stacks, for flame graphs) and a top-N of the
functions with the most samples, by self time and by total time, to ``--out``. Needs
``py-spy`` on PATH (``uv tool install py-spy``) and the services of ``make bench-stack``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import asyncpg
from benchmarks.stack import phases, wrk
from benchmarks.stack.phases import Profile, Run
from benchmarks.stack.procstat import Sampler, cpu_seconds
from benchmarks.stack.run import POSTGRES_URL, REDIS_URL
from benchmarks.stack.topology import (
    WMS_KEY,
    ProductionHub,
    Stack,
    database,
    embedded_hub,
    query,
    scalar,
)

from orderhub.testing.processes.managed import ManagedProcess

PROFILE: Final = Profile(
    "profile", pg_seconds=1, closed_seconds=10, rates=(), open_seconds=1, grace=1,
    drain_seconds=120, settle_seconds=120, wms_orders=600, feed_seconds=1,
)  # fmt: skip


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    spy = shutil.which("py-spy") or os.path.expanduser("~/.local/bin/py-spy")
    # ORDERHUB_PROFILE_GIL=1 samples only the thread holding the GIL: where the CPU that
    # the interpreter spends goes, without the threads waiting in a system call
    gil = ("--gil",) if os.environ.get("ORDERHUB_PROFILE_GIL") == "1" else ()
    return subprocess.Popen(
        [
            *(spy, "record", "--pid", str(pid), "--duration", str(int(seconds))),
            *("--rate", "200", "--format", "raw", "--output", str(out), "--nonblocking"),
            *gil,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarise(raw: Path, top: int = 40) -> str:
    """Self and total samples per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1] for f in stack.split(";") if f]
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    lines = [f"{samples} samples", "", "self:"]
    lines += [f"{100 * n / samples:5.1f}% {f}" for f, n in own.most_common(top)]
    lines += ["", "total:"]
    lines += [f"{100 * n / samples:5.1f}% {f}" for f, n in total.most_common(top)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stack.profile")
    parser.add_argument("what", choices=["intake", "processing", "accept", "dispatch", "embedded"])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--workers-threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="worker processes draining")
    parser.add_argument(
        "--orders", type=int, default=PROFILE.wms_orders, help="orders accepted (accept, dispatch)"
    )
    args = parser.parse_args()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out: Path = args.out or Path("var/bench-profile") / f"{args.what}-{stamp}"
    (out / "work").mkdir(parents=True, exist_ok=True)
    sampler = Sampler().start()
    profile = Profile(
        **{**vars(PROFILE), "closed_seconds": args.seconds, "wms_orders": args.orders}
    )
    run = Run(profile, out / "work", sampler)
    stack = Stack(out / "work")
    raw = out / "profile.txt"
    try:
        stack.start_channel_server()
        if args.what == "embedded":  # one serve on SQLite, its queue and scheduler inside
            embedded = embedded_hub(stack)
            try:
                spy = record(embedded.serve.pid, args.seconds, raw)
                result = run.webhooks([embedded.url], f"E-{time.time_ns()}")
                spy.wait(timeout=args.seconds + 60)
                print(f"embedded intake: {result['rate']:.0f} req/s, p99 {result['p99_ms']} ms")
            finally:
                embedded.serve.stop()
        with database(POSTGRES_URL, "orderhub_profile") as dsn:
            hub = ProductionHub(
                stack,
                database_url=dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
                redis_url=REDIS_URL,
                serves=1,
                worker_threads=args.workers_threads,
            )
            try:
                if args.what != "embedded":
                    hub.start()
                    hub.set_workers(0)
                if args.what == "embedded":
                    pass
                elif args.what == "intake":
                    serve = hub.serves[0].pid
                    spy = record(serve, args.seconds, raw)
                    cpu_before = cpu_seconds(serve)
                    result = run.webhooks(hub.urls, f"I-{time.time_ns()}")
                    cpu = cpu_seconds(serve) - cpu_before
                    spy.wait(timeout=args.seconds + 60)
                    print(
                        f"intake: {result['rate']:.0f} req/s, serve CPU "
                        f"{1000 * cpu / max(result.get('requests', 0), 1):.3f} ms/req"
                    )
                elif args.what == "processing":
                    run.webhooks(hub.urls, f"P-{time.time_ns()}")
                    total = int(scalar(dsn, phases.RECEIVED))
                    _drain(hub, dsn, args.seconds, raw, phases.PROCESSED, total, args.workers)
                else:
                    run.webhooks(hub.urls, f"D-{time.time_ns()}")
                    hub.set_workers(1)
                    phases.settle(dsn, profile.settle_seconds)
                    hub.set_workers(0)
                    rows = query(
                        dsn,
                        "SELECT id FROM orders WHERE status = 'awaiting_acceptance' "
                        f"LIMIT {profile.wms_orders}",
                    )
                    ids_file = run.workdir / "accept.txt"
                    ids_file.write_text("\n".join(r[0] for r in rows) + "\n")
                    spy = (
                        record(hub.serves[0].pid, args.seconds, raw)
                        if args.what == "accept"
                        else None
                    )
                    accepted = phases.python_json(
                        "benchmarks.stack.loadgen",
                        "closed",
                        *("--url", hub.urls[0], "--key", WMS_KEY, "--ids-file", str(ids_file)),
                        *("--concurrency", "16"),
                        timeout=600,
                    )
                    print(f"accept: {accepted.get('rate', 0):.0f} req/s")
                    if spy is not None:
                        spy.wait(timeout=args.seconds + 60)
                    else:
                        _drain(
                            hub, dsn, args.seconds, raw, phases.SUCCEEDED, len(rows), args.workers
                        )
            finally:
                hub.close()
    finally:
        stack.close()
        sampler.stop()
    if raw.exists():
        summary = summarise(raw)
        (out / "summary.txt").write_text(summary)
        print(summary)
    print(f"profile: wrote {out}")
    return 0


WAITS: Final = (
    "SELECT coalesce(wait_event_type || ':' || wait_event, 'on CPU'), state, "
    "left(regexp_replace(query, '\\s+', ' ', 'g'), 60) "
    "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
    "AND state <> 'idle'"
)


class Waits:
    """What the hub's PostgreSQL sessions are doing, sampled every 50 ms on a thread:
    wait events (a lock on the feed counter shows as Lock:transactionid or Lock:tuple on
    COMMIT, where migration 0009 numbers the events; on its UPDATE before) and sessions
    idle in transaction (waiting for their client)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.seen: Counter[str] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Waits:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        async def sample() -> None:
            conn = await asyncpg.connect(self.dsn, timeout=10)
            try:
                while not self._stop.is_set():
                    for event, state, query in await conn.fetch(WAITS):
                        what = query if event.startswith("Lock") else ""
                        self.seen[f"{state} | {event} {what}".strip()] += 1
                    self.samples += 1
                    await asyncio.sleep(0.05)
            finally:
                await conn.close()

        asyncio.run(sample())

    def report(self) -> str:
        lines = [f"pg_stat_activity, {self.samples} samples: sessions on average"]
        lines += [
            f"{n / max(self.samples, 1):6.2f} {what}" for what, n in self.seen.most_common(15)
        ]
        return "\n".join(lines)


def _tree(started: list[ManagedProcess]) -> list[int]:
    return [pid for worker in started for pid in (worker.pid, *children(worker.pid))]


def _drain(
    hub: ProductionHub, dsn: str, seconds: float, raw: Path, done: str, total: int, workers: int
) -> None:
    before = int(scalar(dsn, done))
    with Waits(dsn) as waits:
        started = hub.set_workers(workers)
        kids = children(started[0].pid)
        target = kids[-1] if kids else started[0].pid
        cpu_before = {pid: cpu_seconds(pid) for pid in _tree(started)}
        began = time.monotonic()
        spy = record(target, seconds, raw)
        samples = phases.poll(
            dsn, done, lambda v: v - before >= total, 300, interval=phases.DRAIN_POLL_SECONDS
        )
        took = time.monotonic() - began
        # the processes at the end: a worker's children may be forked after the start
        cpu = sum(cpu_seconds(pid) - cpu_before.get(pid, 0.0) for pid in _tree(started))
    spy.wait(timeout=seconds + 60)
    moved = samples[-1][1] - before
    print(
        f"drained {moved}/{total} in {took:.1f} s, {moved / took:.1f}/s with {workers} "
        f"worker(s), worker CPU {1000 * cpu / max(moved, 1):.2f} ms each"
    )
    print(waits.report())
    (raw.parent / "waits.txt").write_text(waits.report())


if __name__ == "__main__":
    if not wrk.available():
        raise SystemExit("wrk is not installed")
    raise SystemExit(main())
