"""The dramatiq worker (``orderhub worker``): N processes x M threads, Redis or RabbitMQ.

``orderhub worker`` validates the configuration, then hands over to dramatiq's own CLI
(process supervision, signals, graceful shutdown), which imports :func:`setup` in every
worker process. :func:`setup` builds the broker from the same settings (the config path
travels in ``ORDERHUB_CONFIG``) and adds :class:`HubLifecycle`, which bootstraps one
:class:`Hub` per process once dramatiq's event-loop thread is up and closes it on the same
loop at shutdown. All worker threads of a process share that loop, its database engine
and the channel clients."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import dramatiq
from dramatiq.asyncio import get_event_loop_thread, set_event_loop_thread
from dramatiq.middleware import Middleware, MiddlewareError

from orderhub.adapters.queue.dramatiq_queue import (
    BrokerKind,
    DramatiqQueue,
    declare_actors,
    make_broker,
    middleware_stack,
    set_hub,
)
from orderhub.application.hub import Hub
from orderhub.bootstrap import aclose, bootstrap, build_registry, loop_publishing_url
from orderhub.config import ENV_CONFIG, Settings, load_settings
from orderhub.entrypoints.event_loop import install_event_loop, loop_name
from orderhub.entrypoints.gc_freeze import freeze_startup_objects
from orderhub.entrypoints.metrics_port import metrics_directory, metrics_server
from orderhub.entrypoints.worker_watchdog import ConsumerWatchdog
from orderhub.logging import configure_logging, get_logger
from orderhub.metrics import MULTIPROC_ENV

__all__ = [
    "EmbeddedBrokerError",
    "HubLifecycle",
    "build_worker_broker",
    "dramatiq_argv",
    "require_external_broker",
    "run_worker",
    "setup",
]

log = get_logger(__name__)

BROKER_SPEC = "orderhub.entrypoints.worker:setup"
IDLE_POLL_MS: Final = 100
"""A consumer that finds its queue empty waits at most this long before it looks again
(dramatiq's own default, 1 s, is a latency floor for the first job after a quiet moment:
issue 10). Redis: one cheap script call per look and queue; ``dramatiq_worker_timeout``
in the environment overrides it."""
WORKER_TIMEOUT_ENV: Final = "dramatiq_worker_timeout"


def idle_poll_ms(environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    given = env.get(WORKER_TIMEOUT_ENV)
    return int(given) if given else IDLE_POLL_MS


class HubLifecycle(Middleware):
    """Bootstraps the process's :class:`Hub` at worker boot and closes it at shutdown.

    Must come after ``AsyncIO`` in the middleware list: "before" hooks run in list order
    (the loop exists when we boot) and "after" hooks in reverse (we close before the loop
    stops)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.hub: Hub | None = None
        self.queue: DramatiqQueue | None = None

    def before_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        # before the consumers start (they are added after this hook), which read it
        worker.worker_timeout = idle_poll_ms()
        try:
            self.queue = DramatiqQueue(
                broker,
                queue_prefix=self.settings.broker.queue_prefix,
                retry=self.settings.retry.policy(),
                linger_seconds=self.settings.broker.publish_linger_ms / 1000,
                redis_url=loop_publishing_url(self.settings),
            )
            self.hub = bootstrap(self.settings, queue=self.queue)
        except Exception as exc:
            log.exception("worker.bootstrap_failed", pid=os.getpid())
            # a worker without a hub would fail every message: stop this process instead
            # (dramatiq then stops the others). The loop thread must go, or it keeps the
            # process alive.
            loop_thread = get_event_loop_thread()
            if loop_thread is not None:
                loop_thread.stop()  # type: ignore[no-untyped-call]
                set_event_loop_thread(None)
            raise MiddlewareError(f"cannot bootstrap the hub: {exc}") from exc
        set_hub(self.hub)
        freeze_startup_objects("worker")  # before the first job: no long collections
        loop_thread = get_event_loop_thread()
        log.info(
            "worker.ready",
            pid=os.getpid(),
            broker=self.settings.broker.kind,
            event_loop=None if loop_thread is None else loop_name(loop_thread.loop),
        )

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        hub, self.hub = self.hub, None
        queue, self.queue = self.queue, None
        set_hub(None)
        if hub is not None:
            loop_thread = get_event_loop_thread()
            if loop_thread is not None:
                loop_thread.run_coroutine(aclose(hub))
        if queue is not None:
            # publish the follow-ups still buffered (bounded) while the broker is open:
            # dramatiq closes it after this hook
            queue.shutdown()
        if hub is not None:
            log.info("worker.closed", pid=os.getpid())


class EmbeddedBrokerError(ValueError):
    """A dramatiq process was asked for, but the configuration runs jobs in-process."""


def require_external_broker(settings: Settings) -> tuple[BrokerKind, str]:
    """(kind, url) of a Redis or RabbitMQ broker; ValueError in embedded mode."""
    kind = settings.broker.kind
    if kind == "embedded" or settings.broker.url is None:
        raise EmbeddedBrokerError(
            "broker.kind is 'embedded': jobs run inside `orderhub serve`; "
            "set broker.kind to 'redis' or 'rabbitmq' (and broker.url) to run workers"
        )
    return kind, settings.broker.url


def build_worker_broker(
    settings: Settings, *, lifecycle: Middleware | None = None
) -> dramatiq.Broker:
    """The worker's broker: the standard middleware, ``AsyncIO``, then the hub's lifecycle."""
    kind, url = require_external_broker(settings)
    policy = settings.retry.policy()
    # the watchdog first: its "after shutdown" hook runs last, once the hub is closed
    extra = [ConsumerWatchdog(), lifecycle or HubLifecycle(settings)]
    broker = make_broker(
        kind,
        url,
        middleware=middleware_stack(retry=policy, extra=extra),
    )
    declare_actors(broker, queue_prefix=settings.broker.queue_prefix, retry=policy)
    return broker


def setup() -> None:
    """dramatiq's broker hook (``orderhub.entrypoints.worker:setup``), run in each process."""
    settings = load_settings()
    configure_logging(level=settings.logging.level, json=settings.logging.json)
    # before the AsyncIO middleware makes the process's loop (at worker boot)
    install_event_loop(settings.runtime.event_loop)
    dramatiq.set_broker(build_worker_broker(settings))


def dramatiq_argv(
    *,
    processes: int,
    threads: int,
    queues: Sequence[str] = (),
    shutdown_timeout: int = 60,
    spawn: bool = False,
) -> list[str]:
    argv = [
        BROKER_SPEC,
        "--processes",
        str(processes),
        "--threads",
        str(threads),
        "--skip-logging",
        "--worker-shutdown-timeout",
        str(shutdown_timeout * 1000),
    ]
    if queues:
        argv += ["--queues", *queues]
    if spawn:
        argv.append("--use-spawn")
    return argv


def run_worker(
    settings: Settings,
    *,
    config_path: str | None,
    processes: int,
    threads: int,
    queues: Sequence[str] = (),
    shutdown_timeout: int = 60,
    metrics: tuple[str, int] | None = None,
) -> int:
    """Run dramatiq's supervisor with our broker; returns its exit code. With ``metrics``
    (host, port), this process serves ``/metrics`` adding up all its worker processes."""
    import dramatiq.cli

    require_external_broker(settings)  # fail here, not in every forked process
    registry = build_registry(settings)  # the plugins and accounts load (PluginLoadError)
    asyncio.run(registry.aclose())
    if config_path is not None:
        os.environ[ENV_CONFIG] = str(Path(config_path).resolve())
    if settings.logging.json is None:
        # children write to a pipe, not our terminal: decide the renderer here
        os.environ["ORDERHUB_LOGGING__JSON"] = "false" if _stderr_isatty() else "true"
    with contextlib.ExitStack() as serving:
        spawn = False
        if metrics is not None:
            # forked processes would keep the counting mode this one chose when it started:
            # without a metrics directory then, they must start fresh (spawn) to use one
            spawn = not os.environ.get(MULTIPROC_ENV)
            serving.enter_context(metrics_directory())
            serving.enter_context(metrics_server(*metrics))
        argv = dramatiq_argv(
            processes=processes,
            threads=threads,
            queues=queues,
            shutdown_timeout=shutdown_timeout,
            spawn=spawn,
        )
        args = dramatiq.cli.make_argument_parser().parse_args(argv)  # type: ignore[no-untyped-call]
        code: Any = dramatiq.cli.main(args)  # type: ignore[no-untyped-call]
    return int(code or 0)


def _stderr_isatty() -> bool:
    try:
        return sys.stderr.isatty()
    except ValueError:
        return False
