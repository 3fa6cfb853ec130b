"""The production topology of one chaos run, over loopback: a fresh PostgreSQL database
(``chaos_<seed>_<hex>``), a broker (Redis or RabbitMQ) with a queue prefix of its own, the
marketplace simulators, then ``orderhub migrate``, 2 x ``serve`` behind a load balancer
(:mod:`chaos.balancer`), 2 x ``worker`` and 2 x ``scheduler``. The hub reaches PostgreSQL
and the broker through fault proxies (:mod:`chaos.netfaults`), and some of its processes
may run with their clock skewed (libfaketime, ``skews``). Every hub process can be
SIGKILLed (:meth:`Stack.kill`) and started again (:meth:`Stack.restart`);
:meth:`Stack.close` stops everything and drops the database and the queues, also after a
failure."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import asyncpg

from chaos.balancer import Balancer
from chaos.channels import Channel
from chaos.netfaults import FaultProxy
from orderhub.testing.processes import (
    Launch,
    ManagedProcess,
    ProcessSet,
    free_port,
    orderhub_command,
    run_async,
    stop_all,
    wait_for_http,
    wait_until,
    write_toml,
)

POSTGRES_SERVER: Final = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL: Final = "redis://127.0.0.1:6379/10"
RABBITMQ_URL: Final = "amqp://guest:guest@127.0.0.1:5672/%2F"
WMS_KEY: Final = "chaos-wms-key-" + secrets.token_hex(12)
OPS_KEY: Final = "chaos-ops-key-" + secrets.token_hex(12)
STARTUP_SECONDS: Final = 120.0
LAUNCH: Final = Launch(pycache_prefix="/tmp/orderhub-chaos-pycache", stop_seconds=10.0)
FAKETIME_SITE: Final = Path(__file__).with_name("faketime_site")
FAKETIME_LIBS: Final = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
)


def faketime_library() -> str | None:
    """libfaketime (Debian's ``faketime`` package), if installed."""
    if shutil.which("faketime") is None:
        return None
    return next((lib for lib in FAKETIME_LIBS if Path(lib).exists()), None)


@dataclass(frozen=True, kw_only=True)
class HubTuning:
    """Retries and sweeps short enough that recovery shows within the run."""

    max_attempts: int = 8
    base_seconds: float = 0.3
    max_seconds: float = 4.0
    lease_seconds: float = 8.0
    sweep_interval_seconds: float = 1.0
    grace_seconds: float = 3.0
    refresh_interval_seconds: float = 10.0
    refresh_after_seconds: float = 20.0
    worker_threads: int = 4

    @property
    def retry_horizon(self) -> float:
        """How long a command or message may stay unfinished while everything runs:
        every attempt's back-off at most, plus a lease and a sweep per attempt."""
        per_attempt = self.max_seconds + self.lease_seconds + self.grace_seconds
        return self.max_attempts * per_attempt


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(POSTGRES_SERVER, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _delete_queues(broker: str, url: str, prefix: str) -> None:
    if broker == "redis":
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        try:
            for key in client.scan_iter(f"*{prefix}*"):
                client.delete(key)
        finally:
            client.close()
        return
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for queue in ("commands", "inbox"):
            for suffix in ("", ".DQ", ".XQ"):
                channel.queue_delete(queue=f"{prefix}.{queue}{suffix}")
    finally:
        connection.close()


@dataclass
class Stack:
    workdir: Path
    channels: Sequence[Channel]
    broker: str
    seed: int
    tuning: HubTuning = field(default_factory=HubTuning)
    processes: ProcessSet = field(default_factory=ProcessSet)
    hub: dict[str, ManagedProcess] = field(default_factory=dict)
    urls: list[str] = field(default_factory=list)
    database: str = ""
    queue_prefix: str = ""
    balancer: Balancer | None = None
    db_proxy: FaultProxy | None = None
    broker_proxy: FaultProxy | None = None
    skews: dict[str, float] = field(default_factory=dict)
    """Clock offset in seconds of a hub process (by name), through libfaketime."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def broker_url(self) -> str:
        return REDIS_URL if self.broker == "redis" else RABBITMQ_URL

    @property
    def hub_broker_url(self) -> str:
        """The broker as the hub reaches it: through its fault proxy."""
        assert self.broker_proxy is not None
        port = self.broker_proxy.port
        if self.broker == "redis":
            return f"redis://127.0.0.1:{port}/10"
        return f"amqp://guest:guest@127.0.0.1:{port}/%2F"

    # --- starting ----------------------------------------------------------------------

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        suffix = secrets.token_hex(3)
        self.database = f"chaos_{self.seed}_{suffix}"
        self.queue_prefix = f"chaos-{self.seed}-{suffix}"
        run_async(lambda: _admin(f'CREATE DATABASE "{self.database}"'))
        ports = [free_port(), free_port()]
        while ports[1] == ports[0]:
            ports[1] = free_port()
        self.urls = [f"http://127.0.0.1:{p}" for p in ports]
        # the marketplaces reach the hub through the load balancer; the WMS talks to each
        # serve itself (and tries the other one when one does not answer)
        self.balancer = Balancer([("127.0.0.1", p) for p in ports]).start()
        for channel in self.channels:
            channel.start(self, hub_url=self.balancer.url)
        self.db_proxy = FaultProxy("127.0.0.1", 5432, "postgres-proxy").start()
        broker_port = 6379 if self.broker == "redis" else 5672
        self.broker_proxy = FaultProxy("127.0.0.1", broker_port, f"{self.broker}-proxy").start()
        config = write_toml(
            self.workdir / "orderhub.toml",
            self.hub_config(),
            comment="written by chaos.stack for one run; secrets are random",
        )
        migrate = self.processes.add(self._hub_process("migrate", config, ["migrate"]))
        if migrate.run_to_end(STARTUP_SECONDS) != 0:
            raise RuntimeError(f"orderhub migrate failed:\n{migrate.tail(40)}")
        for index, port in enumerate(ports, start=1):
            self._add(f"serve-{index}", config, ["serve", "--port", str(port)])
        worker = ["worker", "--processes", "1", "--threads", str(self.tuning.worker_threads)]
        for index in (1, 2):
            self._add(f"worker-{index}", config, [*worker, "--shutdown-timeout", "5"])
            self._add(f"scheduler-{index}", config, ["scheduler"])
        for process in self.hub.values():
            process.start()
        for channel in self.channels:
            channel.wait_ready()
        for name in self.hub:
            self.wait_ready(name)

    def _hub_process(self, name: str, config: Path, args: list[str]) -> ManagedProcess:
        launch = LAUNCH
        skew = self.skews.get(name, 0.0)
        library = faketime_library()
        if skew and library is not None:
            # the wall clock of the process (and of dramatiq's forked worker) skewed, the
            # monotonic clock not; faketime_site/sitecustomize.py works around
            # libfaketime's time.sleep in that mode
            launch = LAUNCH.with_env(
                {
                    "LD_PRELOAD": library,
                    "FAKETIME": f"{skew:+.0f}",
                    "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                    "PYTHONPATH": str(FAKETIME_SITE),
                }
            )
        return ManagedProcess(
            name,
            orderhub_command("--config", str(config), *args),
            self.workdir / f"{name}.log",
            launch,
        )

    def _add(self, name: str, config: Path, args: list[str]) -> None:
        self.hub[name] = self.processes.add(self._hub_process(name, config, args))

    def add_simulator(self, name: str, argv: list[str], env: dict[str, str]) -> ManagedProcess:
        """Start a simulator process (channels call this from :meth:`Channel.start`)."""
        process = ManagedProcess(name, argv, self.workdir / f"{name}.log", LAUNCH.with_env(env))
        return self.processes.add(process).start()

    def wait_ready(self, name: str, timeout: float = STARTUP_SECONDS) -> None:
        process = self.hub[name]
        if name.startswith("serve"):
            url = self.urls[int(name.rsplit("-", 1)[1]) - 1]
            wait_for_http(f"{url}/readyz", what=f"{name} ready", timeout=timeout)
        elif name.startswith("worker"):
            process.wait_for_event("worker.ready", timeout=timeout)
        else:  # the leader starts its jobs, a standby waits for the lock
            wait_until(
                lambda: (
                    process.has_event("scheduler.started")
                    or process.has_event("scheduler.waiting_for_leadership")
                ),
                f"{name} to start or stand by",
                timeout=timeout,
                processes=[process],
            )

    def hub_config(self) -> dict[str, Any]:
        t = self.tuning
        assert self.db_proxy is not None
        db_port = self.db_proxy.port
        keys = [
            {"name": "wms", "key": WMS_KEY, "scopes": ["orders:read", "orders:write"]},
            {"name": "checker", "key": OPS_KEY, "scopes": ["orders:read", "ops"]},
        ]
        return {
            "database": {
                "url": f"postgresql+asyncpg://postgres@127.0.0.1:{db_port}/{self.database}"
            },
            "broker": {
                "kind": self.broker,
                "url": self.hub_broker_url,
                "queue_prefix": self.queue_prefix,
                "concurrency": 4,
            },
            "api": {"host": "127.0.0.1", "port": int(self.urls[0].rsplit(":", 1)[1]), "keys": keys},
            "channels": {
                "enabled": [c.name for c in self.channels],
                "accounts": [c.account() for c in self.channels],
            },
            "retry": {
                "base_seconds": t.base_seconds,
                "max_seconds": t.max_seconds,
                "max_attempts": t.max_attempts,
                "lease_seconds": t.lease_seconds,
            },
            "scheduler": {
                "sweep_interval_seconds": t.sweep_interval_seconds,
                "grace_seconds": t.grace_seconds,
                "first_run_jitter_seconds": 0.3,
                "refresh_interval_seconds": t.refresh_interval_seconds,
                "refresh_after_seconds": t.refresh_after_seconds,
                "leadership_check_seconds": 2.0,
            },
            "logging": {"level": "INFO", "json": True},
        }

    # --- faults ------------------------------------------------------------------------

    def kill(self, name: str) -> bool:
        """SIGKILL the process group of ``name`` if it runs; whether it did."""
        with self.lock:
            process = self.hub[name]
            if not process.running():
                return False
            process.kill()
            return True

    def restart(self, name: str) -> None:
        with self.lock:
            process = self.hub[name]
            if not process.running():
                process.start()

    def down(self) -> list[str]:
        return [name for name, p in self.hub.items() if not p.running()]

    def ensure_all_running(self) -> None:
        for name in self.down():
            self.restart(name)
        deadline = time.monotonic() + STARTUP_SECONDS
        for name in self.hub:
            self.wait_ready(name, max(deadline - time.monotonic(), 5.0))

    # --- stopping ----------------------------------------------------------------------

    def close(self) -> None:
        """Stop every process (the hub's first), then drop the queues and the database;
        never raises."""
        hub_side = [p for p in self.processes if p.name in self.hub or p.name == "migrate"]
        others = [p for p in self.processes if p not in hub_side]
        for group in (hub_side, others):
            with contextlib.suppress(Exception):
                stop_all(group)
        for proxy in (self.balancer, self.db_proxy, self.broker_proxy):
            if proxy is not None:
                with contextlib.suppress(Exception):
                    proxy.close()
        if self.queue_prefix:
            with contextlib.suppress(Exception):
                _delete_queues(self.broker, self.broker_url, self.queue_prefix)
        if self.database:
            with contextlib.suppress(Exception):
                run_async(lambda: _admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
