"""The benchmark's processes over loopback: a PostgreSQL database of its own, Redis with a
queue prefix of its own, the test channel's recording server (the marketplace), the plain
reference receiver, and the hub (``orderhub migrate``, N ``serve``, M ``worker``,
``scheduler``) or an embedded hub on SQLite, through ``orderhub.testing.processes``."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import asyncpg
import redis

from orderhub.testing.processes import (
    HubProcesses,
    Launch,
    ManagedProcess,
    ProcessSet,
    free_port,
    run_async,
    wait_for_http,
    write_toml,
)

TOKEN: Final = "bench-webhook-token"
WMS_KEY: Final = "bench-wms-key-0123456789abcdef"
READER_KEY: Final = "bench-reader-key-0123456789abcdef"
OPS_KEY: Final = "bench-ops-key-0123456789abcdef"
CHANNEL: Final = "testchannel"
ACCOUNT: Final = "bench"
WEBHOOK_PATH: Final = f"/webhooks/{CHANNEL}/{ACCOUNT}"
STARTUP_SECONDS: Final = 90.0
LAUNCH: Final = Launch(pycache_prefix="/tmp/orderhub-bench-pycache")


def dsn_of(server: str, database: str) -> str:
    """A plain ``postgresql://`` DSN (asyncpg) for ``database`` on ``server``."""
    base = server.replace("postgresql+asyncpg://", "postgresql://").rsplit("/", 1)[0]
    return f"{base}/{database}"


async def _admin(server: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn_of(server, "postgres"), timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def database(server: str, prefix: str) -> Iterator[str]:
    """A new PostgreSQL database (its DSN), dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    run_async(lambda: _admin(server, f'CREATE DATABASE "{name}"'))
    try:
        yield dsn_of(server, name)
    finally:
        run_async(lambda: _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _query(dsn: str, sql: str) -> Any:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


def query(dsn: str, sql: str) -> list[Any]:
    return list(run_async(lambda: _query(dsn, sql)))


def scalar(dsn: str, sql: str) -> Any:
    return query(dsn, sql)[0][0]


def hub_config(
    *, database_url: str, port: int, channel_url: str, broker: dict[str, Any]
) -> dict[str, Any]:
    """One test channel account (topi profile: orders await acceptance) on the recording
    server; production defaults otherwise (retries, sweeps, pool), JSON logs at INFO."""
    keys = [
        {"name": "wms", "key": WMS_KEY, "scopes": ["orders:read", "orders:write"]},
        {"name": "reader", "key": READER_KEY, "scopes": ["orders:read"]},
        {"name": "operator", "key": OPS_KEY, "scopes": ["orders:read", "ops"]},
    ]
    account = {
        "channel": CHANNEL,
        "name": ACCOUNT,
        "settings": {"profile": "topi", "base_url": channel_url},
        "webhook": {"bearer_tokens": [TOKEN]},
    }
    return {
        "database": {"url": database_url},
        "broker": broker,
        "api": {"host": "127.0.0.1", "port": port, "keys": keys},
        "channels": {"enabled": [CHANNEL], "accounts": [account]},
        "logging": {"level": "INFO", "json": True},
    }


@dataclass
class Stack:
    """Every process of one benchmark run; :meth:`close` stops them all."""

    workdir: Path
    processes: ProcessSet = field(default_factory=ProcessSet)
    channel_url: str = ""

    def python(self, name: str, module: str, *args: str) -> ManagedProcess:
        return self.processes.add(
            ManagedProcess(
                name,
                [sys.executable, "-m", module, *args],
                self.workdir / f"{name}.log",
                LAUNCH,
            )
        )

    def start_channel_server(self) -> ManagedProcess:
        """In memory (no state file: a file rewritten per call would be what is measured)."""
        port = free_port()
        self.channel_url = f"http://127.0.0.1:{port}"
        process = self.python(
            "channel-server", "orderhub.testing.channel_server", "--port", str(port)
        ).start()
        wait_for_http(f"{self.channel_url}/healthz", what="the channel server", timeout=60)
        return process

    def start_receiver(self, dsn: str) -> tuple[ManagedProcess, str]:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = self.python(
            "receiver",
            "benchmarks.stack.receiver",
            *("--port", str(port), "--dsn", dsn, "--token", TOKEN),
        ).start()
        wait_for_http(f"{url}/healthz", what="the reference receiver", timeout=60)
        return process, url

    def close(self) -> None:
        self.processes.stop_all()


class ProductionHub:
    """``migrate``, N ``serve`` (one port each), workers started and stopped on demand
    (``orderhub worker --processes 1`` each), the scheduler; PostgreSQL and Redis."""

    def __init__(
        self,
        stack: Stack,
        *,
        database_url: str,
        redis_url: str,
        serves: int,
        worker_threads: int,
    ) -> None:
        self.stack = stack
        self.redis_url = redis_url
        self.queue_prefix = f"bench-{secrets.token_hex(4)}"
        workdir = stack.workdir / "hub"
        workdir.mkdir(parents=True, exist_ok=True)
        ports = [free_port() for _ in range(serves)]
        self.urls = [f"http://127.0.0.1:{p}" for p in ports]
        config = write_toml(
            workdir / "orderhub.toml",
            hub_config(
                database_url=database_url,
                port=ports[0],
                channel_url=stack.channel_url,
                broker={"kind": "redis", "url": redis_url, "queue_prefix": self.queue_prefix},
            ),
        )
        worker_args = ["--processes", "1", "--threads", str(worker_threads)]
        self.main = HubProcesses(
            config,
            url=self.urls[0],
            processes=stack.processes,
            production=True,
            launch=LAUNCH,
            worker_args=[*worker_args, "--shutdown-timeout", "5"],
        )
        # more serve processes: the same configuration on ports of their own
        self.extra = [
            HubProcesses(
                config,
                url=url,
                processes=stack.processes,
                production=False,
                migrate=False,
                logs=workdir / f"serve-{i + 2}",
                launch=LAUNCH,
                serve_args=["--port", str(port)],
            )
            for i, (url, port) in enumerate(zip(self.urls[1:], ports[1:], strict=True))
        ]
        self.active: list[ManagedProcess] = []

    def start(self) -> ProductionHub:
        self.main.spawn(timeout=STARTUP_SECONDS)
        for extra in self.extra:
            extra.spawn(timeout=STARTUP_SECONDS)
        self.main.wait_ready(timeout=STARTUP_SECONDS)
        for extra in self.extra:
            extra.wait_ready(timeout=STARTUP_SECONDS)
        self.active = list(self.main.workers)
        return self

    @property
    def serves(self) -> list[ManagedProcess]:
        return [self.main.serve, *(e.serve for e in self.extra)]

    def set_workers(self, count: int) -> list[ManagedProcess]:
        """Stop every running worker, then start ``count`` new ones (at once) and wait
        until they are ready."""
        for worker in self.active:
            worker.stop()
        self.active = [self.main.start_worker(wait=False) for _ in range(count)]
        for worker in self.active:
            worker.wait_for_event(
                "worker.ready", timeout=STARTUP_SECONDS, alive=self.main.check_alive
            )
        return self.active

    def close(self) -> None:
        for hub in [self.main, *self.extra]:
            for process in hub.services:
                process.stop()
        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=3)
        try:
            for key in client.scan_iter(f"dramatiq:{self.queue_prefix}.*"):
                client.delete(key)
        finally:
            client.close()


def embedded_hub(stack: Stack) -> HubProcesses:
    """One ``orderhub serve`` on SQLite with the in-process queue and scheduler."""
    workdir = stack.workdir / "embedded"
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = write_toml(
        workdir / "orderhub.toml",
        hub_config(
            database_url=f"sqlite+aiosqlite:///{workdir / 'hub.db'}",
            port=port,
            channel_url=stack.channel_url,
            broker={"kind": "embedded"},
        ),
    )
    hub = HubProcesses(
        config,
        url=f"http://127.0.0.1:{port}",
        processes=stack.processes,
        production=False,
        launch=LAUNCH,
    )
    return hub.start(timeout=STARTUP_SECONDS)
