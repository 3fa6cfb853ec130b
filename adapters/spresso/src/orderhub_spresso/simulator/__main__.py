"""``python -m orderhub_spresso.simulator``: run the Spresso simulator (the ``simulator`` extra)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import structlog
import uvicorn

from orderhub_spresso.simulator.app import SimulatorConfig, create_app


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="python -m orderhub_spresso.simulator",
        description="An in-memory Spresso Order Fulfillment API for tests and demos.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8703)
    p.add_argument("--client-id", default=env("SPRESSO_SIM_CLIENT_ID", "orderhub"))
    p.add_argument("--client-secret", default=env("SPRESSO_SIM_CLIENT_SECRET", "orderhub-secret"))
    p.add_argument(
        "--webhook-url",
        default=env("SPRESSO_SIM_WEBHOOK_URL"),
        help="send webhooks here too (as if Spresso's support had registered it)",
    )
    p.add_argument("--static-token", action="append", default=[], help="always accepted")
    p.add_argument("--grace-seconds", type=float, default=600.0)
    p.add_argument("--token-ttl", type=int, default=3600)
    p.add_argument("--signing", choices=("raw", "compact"), default="raw")
    p.add_argument("--log-level", default="info")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    level = getattr(logging, args.log_level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    config = SimulatorConfig(
        clients={args.client_id: args.client_secret},
        webhook_url=args.webhook_url,
        static_tokens=frozenset(args.static_token),
        grace_seconds=args.grace_seconds,
        token_ttl=args.token_ttl,
        signing=args.signing,
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
