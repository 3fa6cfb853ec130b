"""The machinery behind ``python -m orderhub_topi.demo`` and the topi end-to-end tests.

* :class:`Stack` starts the topi simulator and the hub as real processes on free loopback
  ports: ``orderhub serve`` in embedded mode (SQLite, in-process queue and scheduler), or
  production mode (``orderhub migrate``, then ``serve``, ``worker`` and ``scheduler`` on a
  database and a Redis or RabbitMQ broker), and stops every one of them again, also on
  failure and Ctrl-C.
* :class:`HubApi` is the warehouse (WMS): it talks to the hub only through ``/api/v1``.
* :class:`TopiView` is the customer (the simulator's ``/_sim`` control API) and topi's own
  view of an order (``GET /v1/orders/{id}`` with a read-only static token).
* :class:`Narrator` prints what happens.

The processes, the waits (:func:`eventually`) and the configuration file are
:mod:`orderhub.testing.processes`: a wait on a process that times out, or finds it gone,
raises :class:`DemoFailure` (``ProcessFailure``) with the process's name, pid, state or
exit code and the last :data:`LOG_TAIL_LINES` lines of its log.

Part of the ``simulator`` extra (``orderhub-topi[simulator]``), never of the runtime
plugin. Nothing here imports the hub's internals: the demo sees the hub as a WMS and topi
do.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import httpx

from orderhub.testing.demo import DemoFailure, Narrator, temporary_workdir
from orderhub.testing.demo import HubApi as SharedHubApi
from orderhub.testing.processes import (
    TAIL_LINES,
    HubProcesses,
    Launch,
    ManagedProcess,
    NotYet,
    ProcessSet,
    Watch,
    describe_returncode,
    eventually,
    free_port,
    stop_all,
    wait_for_http,
    write_toml,
)
from orderhub_topi.simulator.control import SimulatorControl
from orderhub_topi.simulator.webhooks import sign

__all__ = [
    "ACCOUNT",
    "DemoFailure",
    "HubApi",
    "ManagedProcess",
    "Narrator",
    "NotYet",
    "Stack",
    "StackOptions",
    "TopiView",
    "describe_returncode",
    "eventually",
    "free_port",
    "redeliver_webhook",
    "temporary_workdir",
]

ACCOUNT: Final = "demo"
"""The hub's topi account: webhooks go to ``/webhooks/topi/demo``."""
CLIENT_ID: Final = "orderhub-demo"
STOP_TIMEOUT: Final = 20.0
"""How long each process may take to stop after SIGTERM before it is killed."""
LOG_TAIL_LINES: Final = TAIL_LINES
"""How much of a process's log a failure shows."""


# --------------------------------------------------------------------------
# Narration
# --------------------------------------------------------------------------


# --------------------------------------------------------------------------
# The stack: simulator + hub
# --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StackOptions:
    """How to run the hub. The defaults are the demo: embedded mode on SQLite."""

    database_url: str | None = None
    """None: a SQLite file in the work directory."""
    broker_url: str | None = None
    """None: embedded (``serve`` runs the queue and the scheduler); ``redis://`` or
    ``amqp://``: production mode with ``orderhub worker`` and ``orderhub scheduler``."""
    queue_prefix: str = "orderhub-demo"
    reconcile_interval_seconds: float = 3.0
    retry_base_seconds: float = 0.2
    retry_max_seconds: float = 2.0
    retry_max_attempts: int = 6
    topi_timeout_seconds: float = 5.0
    worker_threads: int = 4
    startup_timeout: float = 60.0
    log_level: str = "INFO"

    @property
    def embedded(self) -> bool:
        return self.broker_url is None

    @property
    def broker_kind(self) -> str:
        if self.broker_url is None:
            return "embedded"
        if self.broker_url.startswith(("redis://", "rediss://")):
            return "redis"
        if self.broker_url.startswith(("amqp://", "amqps://")):
            return "rabbitmq"
        raise ValueError(f"broker URL must be redis:// or amqp://, not {self.broker_url!r}")

    def describe(self) -> str:
        if self.embedded and self.database_url is None:
            return "embedded mode: SQLite, in-process queue and scheduler"
        database = "SQLite" if self.database_url is None else _redact(self.database_url)
        broker = self.broker_kind if self.broker_url is None else _redact(self.broker_url)
        return f"database {database}, broker {broker}"


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.partition(":")[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


@dataclass
class Stack:
    """The topi simulator and the hub, as real processes on free loopback ports.

    ``with Stack(workdir, options) as stack:`` starts everything and waits until it is
    ready; leaving the block stops every process (SIGTERM, then SIGKILL). Secrets (API
    key, webhook token and secret, OAuth client secret) are random per stack."""

    workdir: Path
    options: StackOptions = field(default_factory=StackOptions)
    api_key: str = field(default_factory=lambda: "demo-" + secrets.token_urlsafe(24))
    webhook_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    webhook_secret: str = field(
        default_factory=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    )
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    observer_token: str = field(default_factory=lambda: "observer-" + secrets.token_urlsafe(16))
    sim_port: int = 0
    hub_port: int = 0
    processes: ProcessSet = field(default_factory=ProcessSet)

    # --- addresses ---------------------------------------------------------------------

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    @property
    def hub_url(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.hub_url}/webhooks/topi/{ACCOUNT}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "orderhub.toml"

    def process(self, name: str) -> ManagedProcess:
        return self.processes.find(name)

    # --- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, *, attempts: int = 3) -> None:
        """Start everything; a port taken between choosing and binding it is retried."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, attempts + 1):
            self.sim_port, self.hub_port = free_port(), free_port()
            while self.hub_port == self.sim_port:
                self.hub_port = free_port()
            try:
                self._start_once()
                return
            except DemoFailure as exc:
                self.stop()
                if attempt == attempts or "address already in use" not in str(exc).lower():
                    raise
                self.processes.clear()

    def stop(self) -> list[ManagedProcess]:
        """Stop every process: the hub's at once (SIGTERM to each, then wait for each),
        then the simulator. Safe to call twice; never raises. Returns them all."""
        hub_side = [p for p in reversed(list(self.processes)) if p.name != "simulator"]
        simulator = [p for p in self.processes if p.name == "simulator"]
        for group in (hub_side, simulator):
            with contextlib.suppress(Exception):
                stop_all(group)
        return [*hub_side, *simulator]

    @property
    def services(self) -> list[ManagedProcess]:
        """The processes that run until stopped (all but ``migrate``)."""
        return [p for p in self.processes if p.name != "migrate"]

    @property
    def check_alive(self) -> Watch:
        """``check_alive()`` raises DemoFailure, with its log, when a long-running process
        has exited; as ``alive=`` of a wait, a timeout shows all their logs."""
        return Watch(*self.services)

    def _start_once(self) -> None:
        options = self.options
        write_toml(
            self.config_path,
            self.hub_config(),
            comment="written by orderhub_topi.demo; secrets are random for this run",
        )
        # secrets through the environment, not the command line (``ps`` shows that)
        sim = self.processes.add(
            ManagedProcess(
                "simulator",
                [
                    sys.executable,
                    "-m",
                    "orderhub_topi.simulator",
                    "--port",
                    str(self.sim_port),
                    "--no-fixtures",
                    "--static-token",
                    self.observer_token,
                    "--log-level",
                    "info",
                ],
                self.workdir / "simulator.log",
                self.launch.with_env(
                    {
                        "TOPI_SIM_WEBHOOK_URL": self.webhook_url,
                        "TOPI_SIM_WEBHOOK_TOKEN": self.webhook_token,
                        "TOPI_SIM_WEBHOOK_SECRET": self.webhook_secret,
                        "TOPI_SIM_CLIENT_ID": CLIENT_ID,
                        "TOPI_SIM_CLIENT_SECRET": self.client_secret,
                    }
                ),
            )
        ).start()
        hub = HubProcesses(
            self.config_path,
            url=self.hub_url,
            processes=self.processes,
            production=not options.embedded,
            # production: the schema first (``serve`` upgrades only SQLite by itself)
            migrate=not (options.embedded and options.database_url is None),
            launch=self.launch,
            serve_args=["--port", str(self.hub_port)],
            worker_args=["--processes", "1", "--threads", str(options.worker_threads)],
        )
        hub.spawn(timeout=options.startup_timeout)
        wait_for_http(
            f"{self.sim_url}/_sim/faults",
            what="the topi simulator to answer",
            timeout=options.startup_timeout,
            alive=Watch(sim),
        )
        hub.wait_ready(timeout=options.startup_timeout)

    @property
    def launch(self) -> Launch:
        """How its processes start: in the work directory, without ORDERHUB_* / TOPI_SIM_*
        variables (they would override the configuration written here), stopped within
        :data:`STOP_TIMEOUT`, and on Linux ended when the demo dies, even by SIGKILL."""
        return Launch(
            drop_env=("ORDERHUB_", "TOPI_SIM_"),
            cwd=self.workdir,
            stop_seconds=STOP_TIMEOUT,
            die_with_parent=True,
        )

    def hub_config(self) -> dict[str, Any]:
        """The hub's configuration: one topi account pointing at the simulator (OAuth2
        client credentials), webhooks authenticated by the simulator's bearer token or its
        Standard Webhooks signature, short retry delays, a reconcile walk every few
        seconds."""
        o = self.options
        database = o.database_url or f"sqlite+aiosqlite:///{self.workdir / 'orderhub.db'}"
        broker: dict[str, Any] = {"kind": o.broker_kind}
        if o.broker_url is not None:
            broker["url"] = o.broker_url
        broker.update(queue_prefix=o.queue_prefix, concurrency=4)
        api_key = {
            "name": "demo-wms",
            "key": self.api_key,
            "scopes": ["orders:read", "orders:write", "ops"],
        }
        account = {
            "channel": "topi",
            "name": ACCOUNT,
            "settings": {
                "base_url": self.sim_url,
                "client_id": CLIENT_ID,
                "client_secret": self.client_secret,
                "token_url": f"{self.sim_url}/oauth2/token",
                "reconcile_interval_seconds": o.reconcile_interval_seconds,
                "reconcile_lookback_hours": 1,
                "timeout_seconds": o.topi_timeout_seconds,
            },
            "webhook": {
                "hmac_secrets": [self.webhook_secret],
                "bearer_tokens": [self.webhook_token],
            },
        }
        return {
            "database": {"url": database},
            "broker": broker,
            "api": {"host": "127.0.0.1", "port": self.hub_port, "keys": [api_key]},
            "channels": {"enabled": ["topi"], "accounts": [account]},
            "retry": {
                "base_seconds": o.retry_base_seconds,
                "max_seconds": o.retry_max_seconds,
                "max_attempts": o.retry_max_attempts,
                "lease_seconds": 30.0,
            },
            "scheduler": {
                "sweep_interval_seconds": 2.0,
                "grace_seconds": 5.0,
                "first_run_jitter_seconds": 0.5,
            },
            "logging": {"level": o.log_level, "json": True},
        }


# --------------------------------------------------------------------------
# The two sides: the WMS (hub API) and the customer (simulator)
# --------------------------------------------------------------------------


class HubApi(SharedHubApi):
    """The warehouse's view of the hub (see :class:`orderhub.testing.demo.HubApi`), finding
    topi's orders."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 10.0) -> None:
        super().__init__(base_url, api_key, channel="topi", timeout=timeout)


class TopiView:
    """The topi side: the customer through ``/_sim``, and topi's own record of an order
    read with a static (observer) token, as the seller API shows it."""

    def __init__(self, url: str, observer_token: str) -> None:
        self.url = url
        self.control = SimulatorControl(url)
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {observer_token}"}, timeout=10
        )

    def close(self) -> None:
        self.control.close()
        self.http.close()

    def order(self, topi_id: str) -> dict[str, Any]:
        resp = self.http.get(f"/v1/orders/{topi_id}")
        resp.raise_for_status()
        result: dict[str, Any] = resp.json()
        return result


def redeliver_webhook(
    stack: Stack,
    record: Mapping[str, Any],
    *,
    timestamp: int | None = None,
    secret: str | None = None,
) -> httpx.Response:
    """Send a webhook the simulator already delivered once more, as topi does when it
    did not see our 2xx: the same ``webhook-id`` and body, a fresh Standard Webhooks
    signature (with the account's secret unless ``secret`` says otherwise), no bearer
    token."""
    body = str(record["body"]).encode()
    ts = int(time.time()) if timestamp is None else timestamp
    key = stack.webhook_secret if secret is None else secret
    headers = {
        "Content-Type": "application/json",
        "webhook-id": str(record["id"]),
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(key, str(record["id"]), ts, body),
    }
    return httpx.post(stack.webhook_url, content=body, headers=headers, timeout=10)
