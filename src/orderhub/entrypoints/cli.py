"""``orderhub``: serve, worker, scheduler, migrate, check-config, channels setup|check.

Exit codes: 0 success; 1 an unexpected failure (logged with its traceback); 2 bad usage
(argparse); 78 (``EX_CONFIG``) invalid configuration or a command that the configuration
does not allow (a dramatiq worker in embedded mode); 130 interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import msgspec
import uvicorn
from sqlalchemy.engine import make_url

from orderhub import __version__
from orderhub.adapters.persistence import migrate as upgrade_schema
from orderhub.adapters.queue.inprocess import InProcessQueue
from orderhub.application.hub import Hub
from orderhub.bootstrap import aclose, bootstrap, ready_checks
from orderhub.channels.registry import PluginLoadError, discover
from orderhub.config import ConfigError, Settings, load_settings
from orderhub.entrypoints.cli_channels import add_channels_parser, run_channels
from orderhub.entrypoints.event_loop import install_event_loop, loop_name
from orderhub.entrypoints.gc_freeze import freeze_startup_objects
from orderhub.entrypoints.metrics_port import metrics_server
from orderhub.entrypoints.scheduler import Scheduler, run_scheduler
from orderhub.entrypoints.serve_workers import ServeOptions, run_workers
from orderhub.entrypoints.web import ApiKey, WebSettings, create_app
from orderhub.entrypoints.worker import EmbeddedBrokerError, run_worker
from orderhub.logging import configure_logging, get_logger
from orderhub.metrics import render

__all__ = [
    "EXIT_CONFIG",
    "build_parser",
    "check_config",
    "embedded_runtime",
    "main",
    "serve",
    "web_settings",
]

log = get_logger("orderhub.cli")

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2
EXIT_CONFIG: Final = 78  # sysexits EX_CONFIG: systemd and supervisors treat it as "don't loop"
EXIT_INTERRUPTED: Final = 130
DEFAULT_GRACEFUL_SECONDS: Final = 30
OVERVIEW_METRICS_SECONDS: Final = 30.0
"""An API process reads the overview gauges of ``/metrics`` from the database when scraped,
at most once per this many seconds."""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        "-c",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="TOML configuration file (default: $ORDERHUB_CONFIG, else built-in defaults); "
        "ORDERHUB_<SECTION>__<KEY> environment variables override it",
    )
    parser = argparse.ArgumentParser(
        prog="orderhub",
        description="Orderhub: one canonical order lifecycle between marketplaces and a WMS.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"orderhub {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="run the HTTP API (embedded broker: also the job worker and the scheduler)",
    )
    serve.add_argument("--host", help="bind address (default: api.host)")
    serve.add_argument("--port", type=int, help="port (default: api.port)")
    serve.add_argument(
        "--no-migrate",
        action="store_true",
        help="on SQLite, do not upgrade the schema before serving",
    )
    serve.add_argument(
        "--workers",
        "-w",
        type=_positive,
        default=1,
        help="API processes on one socket (default: 1; more needs broker redis or rabbitmq)",
    )
    serve.add_argument(
        "--graceful-timeout",
        type=_positive,
        default=DEFAULT_GRACEFUL_SECONDS,
        help="on SIGTERM, seconds to let in-flight requests finish "
        f"(default: {DEFAULT_GRACEFUL_SECONDS})",
    )

    worker = commands.add_parser(
        "worker", parents=[common], help="run dramatiq workers (broker.kind redis or rabbitmq)"
    )
    worker.add_argument("--processes", "-p", type=_positive, default=os.cpu_count() or 1)
    worker.add_argument("--threads", "-t", type=_positive, default=8)
    worker.add_argument(
        "--queues", "-Q", nargs="+", default=(), help="only these queues (default: all)"
    )
    _metrics_arguments(worker)
    worker.add_argument(
        "--shutdown-timeout",
        type=_positive,
        default=60,
        help="seconds to let running jobs finish on shutdown (default: 60)",
    )

    scheduler = commands.add_parser(
        "scheduler",
        parents=[common],
        help="run the sweeper and the channels' scheduled jobs (one leads, others stand by)",
    )
    _metrics_arguments(scheduler)
    commands.add_parser("migrate", parents=[common], help="upgrade the database schema to head")
    commands.add_parser(
        "check-config",
        parents=[common],
        help="validate the configuration and print it with secrets masked",
    )
    add_channels_parser(commands, common)
    return parser


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _metrics_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-port",
        type=_positive,
        default=None,
        help="serve GET /metrics on this port (where no API process shares the host's "
        "PROMETHEUS_MULTIPROC_DIR: containers, pods)",
    )
    parser.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="the address --metrics-port listens on (default 127.0.0.1; 0.0.0.0 in a container)",
    )


def _metrics_at(args: argparse.Namespace) -> tuple[str, int] | None:
    return None if args.metrics_port is None else (args.metrics_host, args.metrics_port)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config_path: str | None = getattr(args, "config", None)
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        print(f"orderhub: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:  # check-config too: uvloop asked for and missing is a configuration error
        event_loop = install_event_loop(settings.runtime.event_loop)
    except ConfigError as exc:
        print(f"orderhub: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "check-config":
        return check_config(settings)
    configure_logging(level=settings.logging.level, json=settings.logging.json)
    if args.command != "channels":  # an operator's one-off command: its report is enough
        log.info(
            "orderhub.start",
            command=args.command,
            version=__version__,
            event_loop=event_loop,
            config=config_path or os.environ.get("ORDERHUB_CONFIG"),
            settings=settings.redacted(),
        )
    try:
        return run(args, settings, config_path=config_path)
    except (EmbeddedBrokerError, PluginLoadError) as exc:
        print(f"orderhub {args.command}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception:
        log.exception("orderhub.failed", command=args.command)
        return EXIT_FAILURE


def run(args: argparse.Namespace, settings: Settings, *, config_path: str | None) -> int:
    if args.command == "serve" and args.workers > 1:
        if settings.database.is_sqlite and not args.no_migrate:
            asyncio.run(migrate(settings))
        options = ServeOptions(
            config_path=config_path,
            host=args.host or settings.api.host,
            port=args.port or settings.api.port,
            graceful_timeout=args.graceful_timeout,
        )
        return run_workers(settings, options, workers=args.workers)
    if args.command == "serve":
        asyncio.run(
            serve(
                settings,
                host=args.host,
                port=args.port,
                migrate_first=not args.no_migrate,
                graceful_timeout=args.graceful_timeout,
            )
        )
    elif args.command == "worker":
        return run_worker(
            settings,
            config_path=config_path,
            processes=args.processes,
            threads=args.threads,
            queues=args.queues,
            shutdown_timeout=args.shutdown_timeout,
            metrics=_metrics_at(args),
        )
    elif args.command == "scheduler":
        if settings.broker.kind == "embedded":
            raise EmbeddedBrokerError(
                "broker.kind is 'embedded': the scheduler runs inside `orderhub serve`"
            )
        metrics = _metrics_at(args)
        with metrics_server(*metrics) if metrics else contextlib.nullcontext():
            asyncio.run(run_scheduler(settings))
    elif args.command == "migrate":
        asyncio.run(migrate(settings))
    elif args.command == "channels":
        return run_channels(args, settings)
    return EXIT_OK


def check_config(settings: Settings) -> int:
    """Print the settings (secrets masked), then check that the channels are installed."""
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(settings.redacted())).decode())
    sys.stdout.write("\n")
    try:
        plugins = discover(enabled=settings.channels.enabled_names)
    except PluginLoadError as exc:
        print(f"orderhub: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    missing = sorted(
        {f"{a.channel}/{a.name}" for a in settings.channels.accounts if a.channel not in plugins}
    )
    if missing:
        print(
            f"orderhub: accounts for channels that are not installed: {', '.join(missing)}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    return EXIT_OK


# --- commands --------------------------------------------------------------------------


async def migrate(settings: Settings) -> None:
    _ensure_sqlite_directory(settings)
    await upgrade_schema(settings.database.url)
    log.info("migrate.done")


def _ensure_sqlite_directory(settings: Settings) -> None:
    if not settings.database.is_sqlite:
        return
    database = make_url(settings.database.url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def web_settings(settings: Settings) -> WebSettings:
    """The web app's view of the configuration."""
    return WebSettings(
        api_keys=tuple(
            ApiKey(
                name=key.name,
                key=key.key,
                scopes=frozenset(key.scopes),
                limit=key.account_limit(),
            )
            for key in settings.api.keys
        ),
        metrics_renderer=lambda: render()[0],
        max_body_bytes=settings.api.max_body_bytes,
        max_long_polls_per_key=settings.api.max_long_polls_per_key,
        max_document_bytes=settings.documents.max_bytes,
        console_log_sign_in=settings.api.console_log_sign_in,
        overview_metrics_seconds=OVERVIEW_METRICS_SECONDS,
    )


@asynccontextmanager
async def warm_channels(hub: Hub) -> AsyncIterator[None]:
    """The accounts' reference lists for pre-flight checks (Octopia's carriers), loaded in
    the background so that a channel down at start delays nothing; stopped with the server."""
    task = asyncio.get_running_loop().create_task(hub.channels.warm(), name="channels.warm")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@asynccontextmanager
async def embedded_runtime(hub: Hub, settings: Settings) -> AsyncIterator[None]:
    """Embedded mode, inside the app's lifespan: start the in-process queue and the
    scheduler with the server, stop them (scheduler first) when it stops."""
    queue = hub.queue
    if not isinstance(queue, InProcessQueue):
        yield
        return
    scheduler = Scheduler(
        hub,
        settings.scheduler,
        retention=settings.retention.policy(),
        invoice_interval_seconds=settings.invoices.job_interval_seconds,
    )
    await queue.start(hub)
    await scheduler.start()
    try:
        yield
    finally:
        await scheduler.stop()
        await queue.stop()


async def serve(
    settings: Settings,
    *,
    host: str | None,
    port: int | None,
    migrate_first: bool = True,
    sockets: list[socket.socket] | None = None,
    graceful_timeout: int | None = DEFAULT_GRACEFUL_SECONDS,
    on_started: Callable[[], None] | None = None,
) -> None:
    """The API (embedded: with the queue and the scheduler) until SIGTERM or SIGINT, on
    ``host``:``port`` or the given ``sockets`` (``serve --workers``: bound once by the
    supervisor); in-flight requests get ``graceful_timeout`` seconds to finish."""
    if settings.database.is_sqlite and migrate_first:
        await migrate(settings)
    hub = bootstrap(settings)
    try:
        web = web_settings(settings)

        @asynccontextmanager
        async def lifespan(_app: object) -> AsyncIterator[None]:
            async with embedded_runtime(hub, settings), warm_channels(hub):
                freeze_startup_objects("serve")  # before the first request: p99 tails
                log.info(
                    "serve.ready",
                    pid=os.getpid(),
                    event_loop=loop_name(asyncio.get_running_loop()),
                )
                if on_started is not None:
                    on_started()
                yield

        app = create_app(hub, web, lifespan=[lifespan], ready_checks=ready_checks(hub))
        config = uvicorn.Config(
            app,
            host=host or settings.api.host,
            port=port or settings.api.port,
            log_config=None,  # ours (structlog) stays in place
            lifespan="on",
            proxy_headers=True,
            server_header=False,
            timeout_graceful_shutdown=graceful_timeout,
            # h11 refuses a request head over 16 KiB (docs/limits.md); httptools takes any
            http="h11",
        )
        server = uvicorn.Server(config)
        # uvicorn re-raises the stop signal once it has shut down; with handlers of our own
        # installed it lands here, so the hub is still closed cleanly below.
        stopped_by: list[int] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, _frame: stopped_by.append(signum))
        await server.serve(sockets=sockets)
        if not server.started:
            raise RuntimeError(f"the server could not start on {config.host}:{config.port}")
    finally:
        await aclose(hub)
    log.info("serve.stopped", signals=[signal.Signals(s).name for s in stopped_by])
