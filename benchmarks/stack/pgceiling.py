"""The PostgreSQL commit ceiling: one 1 KiB JSON row per transaction (autocommit INSERT),
N connections (8 by default) each in a loop for a fixed time, asyncpg. Prints JSON:
commits, rate, commit latency, this process's CPU.

``python -m benchmarks.stack.pgceiling --dsn postgresql://... --seconds 5``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import secrets
import sys
import time
from collections.abc import Sequence
from typing import Any, Final

import asyncpg
from benchmarks.stack.stats import summarize

TABLE: Final = (
    "CREATE TABLE IF NOT EXISTS bench_commits (id bigserial PRIMARY KEY, body jsonb NOT NULL)"
)


def kib_document(index: int) -> str:
    """A JSON object of exactly 1024 bytes, different for each index."""
    head = {"n": index, "nonce": secrets.token_hex(8), "pad": ""}
    pad = 1024 - len(json.dumps(head))
    head["pad"] = "x" * pad
    text = json.dumps(head)
    assert len(text) == 1024, len(text)
    return text


async def run(dsn: str, seconds: float, connections: int) -> dict[str, Any]:
    setup = await asyncpg.connect(dsn)
    try:
        await setup.execute(TABLE)
    finally:
        await setup.close()
    conns = [await asyncpg.connect(dsn) for _ in range(connections)]
    latencies: list[float] = []
    counter = iter(range(10**12))
    deadline = time.monotonic() + seconds

    async def loop(conn: asyncpg.Connection) -> None:
        insert = await conn.prepare("INSERT INTO bench_commits (body) VALUES ($1::jsonb)")
        while time.monotonic() < deadline:
            body = kib_document(next(counter))
            began = time.monotonic()
            await insert.fetch(body)
            latencies.append((time.monotonic() - began) * 1000)

    start = time.monotonic()
    try:
        await asyncio.gather(*(loop(c) for c in conns))
    finally:
        wall = time.monotonic() - start
        for conn in conns:
            await conn.close()
    return {
        "connections": connections,
        "commits": len(latencies),
        "seconds": round(wall, 3),
        "rate": len(latencies) / wall,
        **{k: v for k, v in summarize(latencies).items() if k != "count"},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stack.pgceiling")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)
    before = resource.getrusage(resource.RUSAGE_SELF)
    result = asyncio.run(run(args.dsn, args.seconds, args.connections))
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    result["generator_cpu_s"] = round(cpu, 3)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
