"""The machinery behind ``python -m orderhub_octopia.demo`` and the Octopia end-to-end tests.

* :class:`Stack` starts the Octopia simulator and the hub as real processes on free
  loopback ports: ``orderhub serve`` in embedded mode (SQLite, in-process queue and
  scheduler), or production mode (``orderhub migrate``, then ``serve``, ``worker`` and
  ``scheduler`` on a database and a Redis or RabbitMQ broker), and stops every one of them
  again, also on failure and Ctrl-C. The hub has one Octopia account that polls the
  simulator every :attr:`StackOptions.poll_interval_seconds`.
* :class:`HubApi` is the warehouse (WMS): it talks to the hub only through ``/api/v1``.
* The marketplace and the customer act through the simulator's ``/_sim`` control API
  (:class:`~orderhub_octopia.simulator.SimulatorControl`), which also shows Octopia's own
  record of an order and the log of every Seller API call the hub made.
* :class:`Narrator` prints what happens.

The processes, the waits (:func:`eventually`) and the configuration file are
:mod:`orderhub.testing.processes`: a wait that times out, or finds a process gone, raises
:class:`DemoFailure` (``ProcessFailure``) with each process's name, pid, state or exit code
and the last lines of its log.

Part of the ``simulator`` extra (``orderhub-octopia[simulator]``), never of the runtime
plugin. Nothing here imports the hub's internals: the demo sees the hub as a WMS does.
"""

from __future__ import annotations

import contextlib
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
    stop_all,
    wait_for_http,
    write_toml,
)
from orderhub_octopia.simulator import TOKEN_PATH

__all__ = [
    "ACCOUNT",
    "SALES_CHANNELS",
    "DemoFailure",
    "HubApi",
    "ManagedProcess",
    "Narrator",
    "NotYet",
    "Stack",
    "StackOptions",
    "eventually",
    "temporary_workdir",
]

ACCOUNT: Final = "demo"
"""The hub's Octopia account."""
CLIENT_ID: Final = "orderhub-demo"
SELLER_ID: Final = "98979"
"""The simulator's seller (its ``SellerId``)."""
STOP_TIMEOUT: Final = 20.0
"""How long each process may take to stop after SIGTERM before it is killed."""
#: The simulator's sales channels, as the account declares them (docs/channels/octopia.md).
SALES_CHANNELS: Final[dict[str, dict[str, bool]]] = {
    "CDISFR": {
        "one_parcel_per_order": True,
        "line_cancellation": False,
        "refusal_ships": True,
        "invoices": True,
    },
    "OCTOBE": {"invoices": True},
    "AUTOFR": {"manual_acceptance": False, "invoices": True},
}


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
    queue_prefix: str = "orderhub-octopia-demo"
    poll_interval_seconds: float = 1.0
    poll_overlap_minutes: float = 0.0
    """No overlap: an order changed while Octopia was unreachable is found again only
    because the cursor stayed where it was (what the outage tests check)."""
    retry_base_seconds: float = 0.2
    retry_max_seconds: float = 2.0
    retry_max_attempts: int = 6
    octopia_timeout_seconds: float = 5.0
    invoice_check_seconds: float = 1.0
    """How soon, and how often, the hub reads an invoice import's report again."""
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
    """The Octopia simulator and the hub, as real processes on free loopback ports.

    ``with Stack(workdir, options) as stack:`` starts everything and waits until it is
    ready; leaving the block stops every process (SIGTERM, then SIGKILL). The API key and
    the OAuth client secret are random per stack."""

    workdir: Path
    options: StackOptions = field(default_factory=StackOptions)
    api_key: str = field(default_factory=lambda: "demo-" + secrets.token_urlsafe(24))
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
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
            comment="written by orderhub_octopia.demo; secrets are random for this run",
        )
        # the secret through the environment, not the command line (``ps`` shows that)
        sim = self.processes.add(
            ManagedProcess(
                "simulator",
                [
                    sys.executable,
                    "-m",
                    "orderhub_octopia.simulator",
                    "--port",
                    str(self.sim_port),
                    "--client-id",
                    CLIENT_ID,
                    "--seller-id",
                    SELLER_ID,
                    "--log-level",
                    "info",
                ],
                self.workdir / "simulator.log",
                self.launch.with_env({"OCTOPIA_SIM_CLIENT_SECRET": self.client_secret}),
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
        # the simulator first: the hub's first poll may come at once
        wait_for_http(
            f"{self.sim_url}/_sim/calls",
            what="the Octopia simulator to answer",
            timeout=options.startup_timeout,
            alive=Watch(sim),
        )
        hub.spawn(timeout=options.startup_timeout)
        hub.wait_ready(timeout=options.startup_timeout)

    @property
    def launch(self) -> Launch:
        """How its processes start: in the work directory, without ORDERHUB_* /
        OCTOPIA_SIM_* variables (they would override the configuration written here),
        stopped within :data:`STOP_TIMEOUT`, and on Linux ended when the demo dies."""
        return Launch(
            drop_env=("ORDERHUB_", "OCTOPIA_SIM_"),
            cwd=self.workdir,
            stop_seconds=STOP_TIMEOUT,
            die_with_parent=True,
        )

    def account_settings(self) -> dict[str, Any]:
        """The Octopia account: the simulator's Seller API and token endpoint, its three
        sales channels, a poll every few seconds looking back one hour."""
        o = self.options
        return {
            "base_url": self.sim_url,
            "token_url": f"{self.sim_url}{TOKEN_PATH}",
            "client_id": CLIENT_ID,
            "client_secret": self.client_secret,
            "seller_id": SELLER_ID,
            "timeout_seconds": o.octopia_timeout_seconds,
            "poll_interval_seconds": o.poll_interval_seconds,
            "poll_overlap_minutes": o.poll_overlap_minutes,
            "poll_lookback_hours": 1,
            "poll_page_attempts": 2,
            "sales_channels": SALES_CHANNELS,
        }

    def hub_config(self) -> dict[str, Any]:
        """The hub's configuration: one Octopia account on the simulator, short retry
        delays, the scheduler's first runs soon after the start, invoice reports read
        every :attr:`StackOptions.invoice_check_seconds`."""
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
        account = {"channel": "octopia", "name": ACCOUNT, "settings": self.account_settings()}
        return {
            "database": {"url": database},
            "broker": broker,
            "api": {"host": "127.0.0.1", "port": self.hub_port, "keys": [api_key]},
            "channels": {"enabled": ["octopia"], "accounts": [account]},
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
            "invoices": {
                "check_seconds": o.invoice_check_seconds,
                "job_interval_seconds": o.invoice_check_seconds,
            },
            "logging": {"level": o.log_level, "json": True},
        }


# --------------------------------------------------------------------------
# The warehouse's side: the hub's API
# --------------------------------------------------------------------------


class HubApi(SharedHubApi):
    """The warehouse's view of the hub (see :class:`orderhub.testing.demo.HubApi`), finding
    octopia's orders."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 10.0) -> None:
        super().__init__(base_url, api_key, channel="octopia", timeout=timeout)
