"""The asyncio load generator, run as a process of its own so that its CPU is its own.

``openloop``: webhooks at a fixed offered rate (each sent at its scheduled time, whether
or not earlier ones were answered: an open loop), while a follower long-polls the feed
for each order's ``order.received``; webhook -> feed latency is measured from the
scheduled send time (a late generator cannot hide a slow hub). Samples the inbox backlog
from the database. ``closed``: a fixed list of WMS commands at a fixed concurrency.

Prints one JSON object: counts, latencies, its own CPU seconds (``generator_cpu_s``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from benchmarks.stack.httpclient import Pool
from benchmarks.stack.stats import summarize

BACKLOG_SQL: Final = "SELECT count(*) FROM inbox_messages WHERE state = 'received'"


def order_document(channel_order_id: str) -> dict[str, Any]:
    """A test channel order (topi profile: awaits acceptance), about 600 bytes as JSON."""
    return {
        "id": channel_order_id,
        "status": "created",
        "number": channel_order_id,
        "currency": "EUR",
        "placed_at": "2026-01-05T10:00:00Z",
        "lines": [{"id": "L1", "title": "Item L1", "quantity": 1, "sku": "SKU-L1", "price": 1990}],
        "customer": {"name": "Erika Mustermann", "email": "erika@example.org"},
        "shipping_address": {
            "name": "Erika Mustermann",
            "line1": "Heidestrasse 17",
            "postal_code": "51147",
            "city": "Koeln",
            "country_code": "DE",
        },
    }


def cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class OpenLoop:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.pools = [Pool(url, args.max_connections) for url in args.urls]
        self.feed = Pool(args.feed_url, 1)
        self.scheduled: dict[str, float] = {}  # channel order id -> scheduled send time
        self.accepted: set[str] = set()
        self.seen: dict[str, float] = {}
        self.intake_ms: list[float] = []
        self.statuses: dict[str, int] = {}
        self.lag_ms: list[float] = []  # how late the generator sent each request
        self.backlog: list[tuple[float, int]] = []
        self.sending = True

    async def send(self, index: int, due: float) -> None:
        args = self.args
        order_id = f"{args.prefix}-{index}"
        self.scheduled[order_id] = due
        self.lag_ms.append((time.monotonic() - due) * 1000)
        body = json.dumps(order_document(order_id)).encode()
        headers = {
            "Authorization": f"Bearer {args.token}",
            "Content-Type": "application/json",
            "webhook-id": f"{args.prefix}-{index}-{secrets.token_hex(4)}",
        }
        pool = self.pools[index % len(self.pools)]
        try:
            status, _ = await pool.request("POST", args.path, headers, body)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            key = type(exc).__name__
            self.statuses[key] = self.statuses.get(key, 0) + 1
            return
        self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
        if 200 <= status < 300:
            self.accepted.add(order_id)
            self.intake_ms.append((time.monotonic() - due) * 1000)

    async def follow(self, deadline: float) -> None:
        cursor = self.args.after
        headers = {"Authorization": f"Bearer {self.args.reader_key}"}
        while time.monotonic() < deadline:
            if not self.sending and self.accepted <= self.seen.keys():
                return
            target = f"/api/v1/feed?after={cursor}&limit=1000&wait=1"
            status, data = await self.feed.request("GET", target, headers)
            now = time.monotonic()
            if status != 200:
                raise RuntimeError(f"GET /feed answered {status}: {data[:200]!r}")
            page = json.loads(data)
            for event in page["events"]:
                if event["type"] == "order.received":
                    order_id = event["data"].get("channel_order_id", "")
                    if order_id in self.scheduled and order_id not in self.seen:
                        self.seen[order_id] = now
            cursor = page["next_cursor"]

    async def sample_backlog(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.args.dsn)
        start = time.monotonic()
        try:
            while self.sending:
                self.backlog.append((time.monotonic() - start, await conn.fetchval(BACKLOG_SQL)))
                await asyncio.sleep(0.5)
            self.backlog.append((time.monotonic() - start, await conn.fetchval(BACKLOG_SQL)))
        finally:
            await conn.close()

    async def run(self) -> dict[str, Any]:
        args = self.args
        count = max(1, round(args.rate * args.seconds))
        start = time.monotonic()
        follower = asyncio.create_task(
            self.follow(start + args.seconds + args.grace + args.startup)
        )
        sampler = asyncio.create_task(self.sample_backlog()) if args.dsn else None
        tasks = []
        first = start + args.startup
        for index in range(count):
            due = first + index / args.rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tasks.append(asyncio.create_task(self.send(index, due)))
        await asyncio.gather(*tasks)
        sent_wall = time.monotonic() - first
        self.sending = False
        if sampler is not None:
            await sampler
        await follower
        latencies = [
            (self.seen[o] - self.scheduled[o]) * 1000 for o in self.accepted if o in self.seen
        ]
        for pool in [*self.pools, self.feed]:
            pool.close()
        return {
            "offered_rate": args.rate,
            "seconds": args.seconds,
            "sent": count,
            "send_wall_s": round(sent_wall, 3),
            "statuses": self.statuses,
            "accepted": len(self.accepted),
            "seen": len(latencies),
            "left_behind": len(self.accepted - self.seen.keys()),
            "intake": summarize(self.intake_ms),
            "feed": summarize(latencies),
            "generator_lag": summarize(self.lag_ms),
            "connections_opened": sum(p.opened for p in self.pools),
            "backlog": self.backlog,
        }


async def closed_loop(args: argparse.Namespace, ids: list[str]) -> dict[str, Any]:
    """POST ``/api/v1/orders/{id}/{action}`` once for each id, ``concurrency`` at a time."""
    pool = Pool(args.url, args.concurrency)
    todo = iter(ids)
    latencies: list[float] = []
    statuses: dict[str, int] = {}

    async def client() -> None:
        for order_id in todo:
            headers = {
                "Authorization": f"Bearer {args.key}",
                "Content-Type": "application/json",
                "Idempotency-Key": f"bench-{secrets.token_hex(8)}",
            }
            began = time.monotonic()
            status, _ = await pool.request(
                "POST", f"/api/v1/orders/{order_id}/{args.action}", headers, b"{}"
            )
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if 200 <= status < 300:
                latencies.append((time.monotonic() - began) * 1000)

    start = time.monotonic()
    await asyncio.gather(*(client() for _ in range(args.concurrency)))
    wall = time.monotonic() - start
    pool.close()
    return {
        "requests": len(ids),
        "ok": len(latencies),
        "statuses": statuses,
        "seconds": round(wall, 3),
        "rate": len(latencies) / wall if wall > 0 else 0.0,
        **{k: v for k, v in summarize(latencies).items() if k != "count"},
    }


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stack.loadgen")
    modes = parser.add_subparsers(dest="mode", required=True)
    o = modes.add_parser("openloop", help="webhooks at a fixed rate; webhook -> feed latency")
    o.add_argument("--urls", nargs="+", required=True, help="serve base URLs (round robin)")
    o.add_argument("--path", required=True, help="the webhook path")
    o.add_argument("--token", required=True)
    o.add_argument("--feed-url", required=True)
    o.add_argument("--reader-key", required=True)
    o.add_argument("--after", type=int, default=0, help="the feed's last seq before the run")
    o.add_argument("--rate", type=float, required=True)
    o.add_argument("--seconds", type=float, required=True)
    o.add_argument("--grace", type=float, default=10.0, help="wait for the feed after sending")
    o.add_argument("--startup", type=float, default=0.3, help="delay before the first send")
    o.add_argument("--prefix", default=f"OL-{secrets.token_hex(3)}")
    o.add_argument("--dsn", help="PostgreSQL DSN: sample the inbox backlog")
    o.add_argument("--max-connections", type=int, default=256)
    c = modes.add_parser("closed", help="one WMS command per order id, fixed concurrency")
    c.add_argument("--url", required=True)
    c.add_argument("--key", required=True)
    c.add_argument("--ids-file", required=True)
    c.add_argument("--action", default="accept")
    c.add_argument("--concurrency", type=int, default=16)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    cpu_start, wall_start = cpu_now(), time.monotonic()
    if args.mode == "openloop":
        if args.rate <= 0 or args.seconds <= 0:
            raise SystemExit("--rate and --seconds must be positive")
        result = asyncio.run(OpenLoop(args).run())
    else:
        text = Path(args.ids_file).read_text(encoding="utf-8")
        result = asyncio.run(closed_loop(args, [i.strip() for i in text.splitlines() if i]))
    result["generator_cpu_s"] = round(cpu_now() - cpu_start, 3)
    result["wall_s"] = round(time.monotonic() - wall_start, 3)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
