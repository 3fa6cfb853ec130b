"""The reference: a plain hand-written webhook receiver on the hub's own stack.

litestar + asyncpg under uvicorn, as the hub's ``serve`` runs: check the bearer token,
INSERT the raw body under a unique key (the ``webhook-id`` header, else the body's
SHA-256), answer 202. No queue, no parsing, no ORM: what one durable write per webhook
costs here, the yardstick of the hub's ratios. Kept in the repo so that every run
measures it again, side by side with the hub.

``python -m benchmarks.stack.receiver --port 8900 --dsn postgresql://... --token t``
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import asyncpg
import uvicorn
from litestar import Litestar, Request, Response, get, post

TABLE: Final = """
CREATE TABLE IF NOT EXISTS bench_received (
    key text PRIMARY KEY,
    channel text NOT NULL,
    account text NOT NULL,
    body bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)"""
INSERT: Final = (
    "INSERT INTO bench_received (key, channel, account, body) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (key) DO NOTHING"
)


def create_app(dsn: str, token: str, pool_size: int) -> Litestar:
    expected = f"Bearer {token}".encode()
    pools: list[asyncpg.Pool] = []

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
        async with pool.acquire() as conn:
            await conn.execute(TABLE)
        pools.append(pool)
        try:
            yield
        finally:
            await pool.close()

    @post("/webhooks/{channel:str}/{account:str}", status_code=202)
    async def receive(request: Request[Any, Any, Any], channel: str, account: str) -> Response[Any]:
        given = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return Response(content=b'{"error":"unauthorized"}', status_code=401)
        body = await request.body()
        key = request.headers.get("webhook-id") or hashlib.sha256(body).hexdigest()
        async with pools[0].acquire() as conn:
            await conn.execute(INSERT, key, channel, account, body)
        return Response(
            content=b'{"accepted":true}', status_code=202, media_type="application/json"
        )

    @get("/healthz", sync_to_thread=False)
    def healthz() -> dict[str, bool]:
        return {"ok": True}

    return Litestar(route_handlers=[receive, healthz], lifespan=[lifespan], openapi_config=None)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stack.receiver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True, help="postgresql:// DSN (asyncpg)")
    parser.add_argument("--token", required=True)
    parser.add_argument("--pool-size", type=int, default=16)
    args = parser.parse_args(argv)
    uvicorn.run(
        create_app(args.dsn, args.token, args.pool_size),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
