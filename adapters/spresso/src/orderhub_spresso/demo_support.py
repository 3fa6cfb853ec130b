"""The machinery behind ``python -m orderhub_spresso.demo`` and the Spresso end-to-end tests.

* :class:`Stack` starts the Spresso simulator and the hub as real processes on free
  loopback ports: ``orderhub serve`` in embedded mode (SQLite, in-process queue and
  scheduler), or production mode (``orderhub migrate``, then ``serve``, ``worker`` and
  ``scheduler`` on a database and a Redis or RabbitMQ broker); then ``orderhub channels
  setup spresso`` registers the two webhooks at the simulator, one URL per event. It
  stops every process again, also on failure and Ctrl-C, and can kill and restart the
  process that runs the commands (a crash mid-call).
* :class:`HubApi` is the warehouse (WMS): it talks to the hub only through ``/api/v1``.
* :class:`SpressoView` is the customer and Foxtrot (the simulator's ``/_sim`` control API).
* :class:`Narrator` prints what happens.

The processes and the waits are :mod:`orderhub.testing.processes`; a step that does not
happen in time raises :class:`DemoFailure` with the logs of the processes it waited for.
Part of the ``simulator`` extra, never of the runtime plugin; nothing here imports the
hub's internals: the demo sees the hub as a WMS and Spresso do.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from orderhub.testing.demo import DemoFailure, Narrator, temporary_workdir
from orderhub.testing.demo import HubApi as SharedHubApi
from orderhub.testing.processes import (
    HubProcesses,
    Launch,
    ManagedProcess,
    NotYet,
    ProcessSet,
    Watch,
    eventually,
    free_port,
    orderhub_command,
    stop_all,
    wait_for_http,
    write_toml,
)
from orderhub_spresso import wire
from orderhub_spresso.simulator.control import SimulatorControl

__all__ = [
    "ACCOUNT",
    "DemoFailure",
    "HubApi",
    "Narrator",
    "NotYet",
    "SpressoView",
    "Stack",
    "StackOptions",
    "eventually",
    "temporary_workdir",
]

ACCOUNT: Final = "demo"
"""The hub's Spresso account: webhooks go to ``/webhooks/spresso/demo/<event>``."""
CLIENT_ID: Final = "orderhub-demo"
STOP_TIMEOUT: Final = 20.0
"""How long each process may take to stop after SIGTERM before it is killed."""


# --------------------------------------------------------------------------
# The stack: simulator + hub
# --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StackOptions:
    """How to run the hub. The defaults are the demo: embedded mode on SQLite."""

    database_url: str | None = None
    """None: a SQLite file in the work directory."""
    broker_url: str | None = None
    """None: embedded; ``redis://`` or ``amqp://``: production mode (worker, scheduler)."""
    queue_prefix: str = "orderhub-spresso-demo"
    grace_seconds: float = 0.3
    """Spresso's grace period between payment and ``order_fulfillable`` (10 min in life)."""
    retry_base_seconds: float = 0.2
    retry_max_seconds: float = 2.0
    retry_max_attempts: int = 6
    lease_seconds: float = 10.0
    """How long a worker holds a command: a killed worker's command is swept back after."""
    spresso_timeout_seconds: float = 60.0
    """The adapter's HTTP timeout: longer than any held call of a test."""
    worker_threads: int = 4
    startup_timeout: float = 90.0
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
        broker = "embedded" if self.broker_url is None else _redact(self.broker_url)
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
    """The Spresso simulator and the hub, as real processes on free loopback ports.
    Secrets (API key, OAuth client secret, which also signs the webhooks) are random."""

    workdir: Path
    options: StackOptions = field(default_factory=StackOptions)
    api_key: str = field(default_factory=lambda: "demo-" + secrets.token_urlsafe(24))
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    sim_port: int = 0
    hub_port: int = 0
    processes: ProcessSet = field(default_factory=ProcessSet)
    hub: HubProcesses | None = None
    crashed: list[ManagedProcess] = field(default_factory=list)
    """Processes killed on purpose (:meth:`kill_command_runner`)."""

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    @property
    def hub_url(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}"

    def webhook_url(self, event: str | None = None) -> str:
        base = f"{self.hub_url}/webhooks/spresso/{ACCOUNT}"
        return base if event is None else f"{base}/{event}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "orderhub.toml"

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
        """Stop every process, the hub's first, then the simulator; never raises."""
        hub_side = [p for p in reversed(list(self.processes)) if p.name != "simulator"]
        simulator = [p for p in self.processes if p.name == "simulator"]
        for group in (hub_side, simulator):
            with contextlib.suppress(Exception):
                stop_all(group)
        return [*hub_side, *simulator]

    @property
    def services(self) -> list[ManagedProcess]:
        """The processes that run until stopped (not ``migrate`` nor ``setup``), alive or
        stopped on purpose."""
        return [p for p in self.processes if p.name not in ("migrate", "setup")]

    @property
    def check_alive(self) -> Watch:
        return Watch(*self.services)

    def unclean(self, stopped: list[ManagedProcess]) -> list[ManagedProcess]:
        """Of the processes :meth:`stop` returned, the services that did not stop cleanly
        on SIGTERM, but for one killed on purpose and not started again."""
        return [
            p
            for p in stopped
            if p in self.services and not p.stopped_cleanly and not (p in self.crashed and p.killed)
        ]

    def _start_once(self) -> None:
        options = self.options
        write_toml(
            self.config_path,
            self.hub_config(),
            comment="written by orderhub_spresso.demo; secrets are random for this run",
        )
        sim = self.processes.add(
            ManagedProcess(
                "simulator",
                [
                    sys.executable,
                    "-m",
                    "orderhub_spresso.simulator",
                    "--port",
                    str(self.sim_port),
                    "--client-id",
                    CLIENT_ID,
                    "--grace-seconds",
                    str(options.grace_seconds),
                    "--log-level",
                    "info",
                ],
                self.workdir / "simulator.log",
                # the secret through the environment, not the command line (``ps``)
                self.launch.with_env({"SPRESSO_SIM_CLIENT_SECRET": self.client_secret}),
            )
        ).start()
        self.hub = HubProcesses(
            self.config_path,
            url=self.hub_url,
            processes=self.processes,
            production=not options.embedded,
            migrate=not (options.embedded and options.database_url is None),
            launch=self.launch,
            serve_args=["--port", str(self.hub_port)],
            worker_args=["--processes", "1", "--threads", str(options.worker_threads)],
        )
        self.hub.spawn(timeout=options.startup_timeout)
        wait_for_http(
            f"{self.sim_url}/_sim/faults",
            what="the Spresso simulator to answer",
            timeout=options.startup_timeout,
            alive=Watch(sim),
        )
        self.hub.wait_ready(timeout=options.startup_timeout)
        self.register_webhooks()

    def register_webhooks(self) -> str:
        """``orderhub channels setup spresso demo --public-url <hub>``: the two webhooks,
        one URL per event, registered at the simulator; its report."""
        setup = self.processes.add(
            ManagedProcess(
                "setup",
                orderhub_command(
                    "--config",
                    str(self.config_path),
                    "channels",
                    "setup",
                    "spresso",
                    ACCOUNT,
                    "--public-url",
                    self.hub_url,
                ),
                self.workdir / "setup.log",
                self.launch,
            )
        )
        code = setup.run_to_end(self.options.startup_timeout)
        if code != 0:
            raise DemoFailure(f"orderhub channels setup failed (exit {code})", [setup])
        return setup.text()

    @property
    def launch(self) -> Launch:
        """In the work directory, without ORDERHUB_* / SPRESSO_SIM_* variables, stopped
        within :data:`STOP_TIMEOUT`, and on Linux ended when the demo dies."""
        return Launch(
            drop_env=("ORDERHUB_", "SPRESSO_SIM_"),
            cwd=self.workdir,
            stop_seconds=STOP_TIMEOUT,
            die_with_parent=True,
        )

    # --- the process that runs the commands -------------------------------------------

    @property
    def command_runner(self) -> ManagedProcess:
        """Who calls Spresso: ``orderhub worker`` in production mode, ``serve`` embedded."""
        assert self.hub is not None, "the stack was never started"
        return self.hub.worker if self.hub.production else self.hub.serve

    def kill_command_runner(self) -> ManagedProcess:
        """SIGKILL it (its whole process group) at once, as a crash: no handler runs."""
        runner = self.command_runner
        self.crashed.append(runner)
        runner.kill()
        return runner

    def restart_command_runner(self) -> ManagedProcess:
        """A new worker (production), or ``serve`` again (embedded), ready."""
        assert self.hub is not None, "the stack was never started"
        if self.hub.production:
            return self.hub.start_worker(timeout=self.options.startup_timeout)
        self.hub.serve.start()
        self.hub.wait_ready(timeout=self.options.startup_timeout)
        return self.hub.serve

    def hub_config(self) -> dict[str, Any]:
        """One Spresso account pointing at the simulator (OAuth2 client credentials; the
        client secret also signs webhooks), short retry delays and lease."""
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
            "channel": "spresso",
            "name": ACCOUNT,
            "settings": {
                "base_url": self.sim_url,
                "client_id": CLIENT_ID,
                "client_secret": self.client_secret,
                "carriers": {"UPS": "ups", "DHL": "dhl", "FEDEX": "fedex"},
                "timeout_seconds": o.spresso_timeout_seconds,
            },
        }
        return {
            "database": {"url": database},
            "broker": broker,
            "api": {"host": "127.0.0.1", "port": self.hub_port, "keys": [api_key]},
            "channels": {"enabled": ["spresso"], "accounts": [account]},
            "retry": {
                "base_seconds": o.retry_base_seconds,
                "max_seconds": o.retry_max_seconds,
                "max_attempts": o.retry_max_attempts,
                "lease_seconds": o.lease_seconds,
            },
            "scheduler": {
                "sweep_interval_seconds": 1.0,
                "grace_seconds": 2.0,
                "first_run_jitter_seconds": 0.2,
            },
            "logging": {"level": o.log_level, "json": True},
        }


# --------------------------------------------------------------------------
# The two sides: the WMS (hub API) and Spresso (simulator)
# --------------------------------------------------------------------------


class HubApi(SharedHubApi):
    """The warehouse's view of the hub (see :class:`orderhub.testing.demo.HubApi`), finding
    spresso's orders."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 10.0) -> None:
        super().__init__(base_url, api_key, channel="spresso", timeout=timeout)


class SpressoView:
    """Spresso's side: the customer and Foxtrot through ``/_sim``, and Spresso's own
    record of an order (its fulfilments, parcels and settlement)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.control = SimulatorControl(url)

    def close(self) -> None:
        self.control.close()

    def order(self, spresso_id: str) -> dict[str, Any]:
        return self.control.order(spresso_id)

    def fulfilment_ids(self, spresso_id: str) -> list[str]:
        return [f["id"] for f in self.order(spresso_id)["fulfillments"]]

    def status_calls(self, fulfilment_id: str, status: str | None = None) -> list[dict[str, Any]]:
        """The hub's ``PUT /v1/fulfillments/{id}`` calls (status updates), oldest first."""
        path = wire.FULFILLMENT_PATH.format(fulfillment_id=fulfilment_id)
        calls = self.control.calls(method="PUT", path=path)
        return [c for c in calls if status is None or json.loads(c["body"])["status"] == status]

    def shipment_calls(self, fulfilment_id: str) -> list[dict[str, Any]]:
        path = wire.SHIPMENTS_PATH.format(fulfillment_id=fulfilment_id)
        return self.control.calls(method="PUT", path=path)
