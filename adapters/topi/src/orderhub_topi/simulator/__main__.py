"""``python -m orderhub_topi.simulator``: run the topi simulator (the ``simulator`` extra)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import structlog
import uvicorn

from orderhub_topi.simulator.app import SimulatorConfig, create_app
from orderhub_topi.wire import ORDER_ACKNOWLEDGED, ORDER_CONFIRMED, WEBHOOK_ORDER_STATUSES


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="python -m orderhub_topi.simulator",
        description="An in-memory topi Seller API for tests and demos.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8701)
    p.add_argument("--webhook-url", default=env("TOPI_SIM_WEBHOOK_URL"))
    p.add_argument(
        "--webhook-token",
        default=env("TOPI_SIM_WEBHOOK_TOKEN"),
        help="sent as 'Authorization: Bearer <token>' on every webhook",
    )
    p.add_argument(
        "--webhook-secret",
        default=env("TOPI_SIM_WEBHOOK_SECRET"),
        help="whsec_<base64>: sign webhooks with Standard Webhooks headers",
    )
    p.add_argument(
        "--webhook-all-statuses",
        action="store_true",
        help="also send webhooks for acknowledged and confirmed (topi documents no such webhooks)",
    )
    p.add_argument("--client-id", default=env("TOPI_SIM_CLIENT_ID", "orderhub"))
    p.add_argument("--client-secret", default=env("TOPI_SIM_CLIENT_SECRET", "orderhub-secret"))
    p.add_argument(
        "--static-token",
        action="append",
        default=[],
        help="a bearer token always accepted (repeatable)",
    )
    p.add_argument("--token-ttl", type=int, default=3600, help="access token lifetime, seconds")
    p.add_argument("--no-fixtures", action="store_true", help="do not preload sandbox orders")
    p.add_argument("--log-level", default="info")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    level = getattr(logging, args.log_level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    statuses = WEBHOOK_ORDER_STATUSES
    if args.webhook_all_statuses:
        statuses = statuses | {ORDER_ACKNOWLEDGED, ORDER_CONFIRMED}
    config = SimulatorConfig(
        webhook_url=args.webhook_url,
        webhook_token=args.webhook_token,
        webhook_secret=args.webhook_secret,
        webhook_statuses=statuses,
        clients={args.client_id: args.client_secret},
        static_tokens=frozenset(args.static_token),
        token_ttl=args.token_ttl,
        fixtures=not args.no_fixtures,
    )
    structlog.get_logger("topi_simulator").info(
        "simulator.starting",
        url=f"http://{args.host}:{args.port}",
        webhook_url=args.webhook_url,
        client_id=args.client_id,
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
