"""The e2e harness: real processes on loopback, driven over HTTP only.

The processes themselves are :mod:`orderhub.testing.processes` (``ManagedProcess``,
``ProcessSet``, ``Watch``, ``wait_until``, ``HubProcesses``); this module adds the two
programs of this tier and their clients:

* :class:`ChannelServer` is ``python -m orderhub.testing.channel_server``: the marketplace.
* :class:`Hub` is the hub under test: in ``embedded`` mode one ``orderhub serve`` (SQLite,
  in-process queue and scheduler); in ``production`` mode ``orderhub migrate``, then
  ``orderhub serve`` (API only), ``orderhub worker`` and ``orderhub scheduler`` on
  PostgreSQL and Redis.

Every wait is a poll against a deadline (``wait_until``); no sleep asserts anything.
A wait on processes (a ``Watch``, such as ``hub.check_alive``) that times out, or finds
one of them gone, fails with the name, pid, state or exit code and last ``TAIL_LINES``
log lines of each (``ProcessFailure``).
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import httpx

from orderhub.testing.processes import (
    HubProcesses,
    Launch,
    ProcessFailure,
    ProcessSet,
    Watch,
    free_port,
    run_async,
    wait_for_http,
    write_toml,
)

# what the test modules take from here
from orderhub.testing.processes import ManagedProcess as ManagedProcess
from orderhub.testing.processes import wait_until as wait_until

T = TypeVar("T")
Mode = Literal["embedded", "production"]

# --- settings of the tier ----------------------------------------------------------------

STARTUP_SECONDS: Final = 60.0
"""How long a process may take to come up (CI machines are small and busy)."""
SETTLE_SECONDS: Final = 45.0
"""How long an asynchronous effect (a webhook applied, a command sent) may take; the
default deadline of ``wait_until``."""

REDIS_ENV: Final = "ORDERHUB_TEST_E2E_REDIS_URL"
REDIS_URL: Final = os.environ.get(REDIS_ENV, "redis://127.0.0.1:6379/12")
LOST_REDIS_ENV: Final = "ORDERHUB_TEST_E2E_LOST_REDIS_URL"
LOST_REDIS_URL: Final = os.environ.get(LOST_REDIS_ENV, "redis://127.0.0.1:6379/13")
"""A Redis database no worker reads: an enqueue that lands there is as good as lost."""

WMS_KEY: Final = "e2e-wms-key-0123456789abcdef"
READER_KEY: Final = "e2e-reader-key-0123456789abcdef"
OPS_KEY: Final = "e2e-ops-key-0123456789abcdef"
WEBHOOK_TOKEN: Final = "e2e-webhook-token"
HMAC_SECRET: Final = "whsec_ZTJlLWhtYWMtc2VjcmV0LTAxMjM0NTY3ODlhYmNkZWY="
CHANNEL: Final = "testchannel"

PROBLEM_BASE: Final = "https://orderhub.dev/problems/"
PROBLEM_MEDIA_TYPE: Final = "application/problem+json"

RETRY: Final = {"base_seconds": 0.2, "max_seconds": 1.0, "max_attempts": 5, "lease_seconds": 6.0}
"""Short retries, and a lease the crash tests can outwait in seconds. The lease outlasts the
test channel's call timeout (:data:`CHANNEL_TIMEOUT_SECONDS`), as it must in production."""
CHANNEL_TIMEOUT_SECONDS: Final = 4.0
SCHEDULER: Final = {
    "sweep_interval_seconds": 0.5,
    "grace_seconds": 2.0,
    "first_run_jitter_seconds": 0.2,
}

PYCACHE_PREFIX: Final = str(Path(tempfile.gettempdir()) / "orderhub-e2e-pycache")
LAUNCH: Final = Launch(pycache_prefix=PYCACHE_PREFIX)
"""How this tier starts processes: no inherited ORDERHUB_* variables, byte-code caches
outside the tree (without them every process compiles the whole stack again)."""


# --- the marketplace ---------------------------------------------------------------------


class ChannelServer:
    """The test channel server process, and its control endpoints."""

    def __init__(self, processes: ProcessSet, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = processes.add(
            ManagedProcess(
                name="channel-server",
                argv=[
                    sys.executable,
                    "-m",
                    "orderhub.testing.channel_server",
                    "--port",
                    str(self.port),
                    "--state-file",
                    str(workdir / "testchannel-state.json"),
                ],
                log_path=workdir / "channel-server.log",
                # it may be holding a hung call open: no need to wait
                launch=Launch(pycache_prefix=PYCACHE_PREFIX, stop_seconds=2.0),
            )
        )
        self.client = httpx.Client(base_url=self.url, timeout=15.0)

    def start(self) -> ChannelServer:
        if self.process.running():
            return self
        self.process.start()
        wait_for_http(
            f"{self.url}/healthz",
            what="the channel server to answer",
            timeout=STARTUP_SECONDS,
            request_timeout=1.0,
            alive=Watch(self.process),
        )
        return self

    def close(self) -> None:
        self.client.close()

    def calls(self) -> list[dict[str, Any]]:
        response = self.client.get("/calls")
        response.raise_for_status()
        calls: list[dict[str, Any]] = response.json()["calls"]
        return calls

    def calls_for(self, channel_order_id: str) -> list[dict[str, Any]]:
        return [c for c in self.calls() if c["order"] == channel_order_id]

    def call(self, command_id: str) -> dict[str, Any] | None:
        return next((c for c in self.calls() if c["key"] == command_id), None)

    def add_fault(self, **fault: Any) -> None:
        response = self.client.post("/_faults", json=fault)
        assert response.status_code == 200, response.text

    def faults(self) -> list[dict[str, Any]]:
        faults: list[dict[str, Any]] = self.client.get("/_faults").json()["faults"]
        return faults

    def send_order(
        self,
        hub: Hub,
        account: str,
        document: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        webhook_id: str | None = None,
        token: str = WEBHOOK_TOKEN,
    ) -> dict[str, Any]:
        """The marketplace pushes an order document to the hub's webhook."""
        body: dict[str, Any] = {
            "order": document,
            "webhook_url": hub.webhook_url(account),
            "token": token,
        }
        if webhook_id is not None:
            body["webhook_id"] = webhook_id
        response = self.client.post("/_send_order", json=body)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer


# --- the hub -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    name: str
    profile: str
    hmac: bool = False
    settings: Mapping[str, Any] = field(default_factory=dict)


SPRESSO_CLIENT_SECRETS: Final = ("e2e-spresso-old-secret", "e2e-spresso-new-secret")
"""The spresso account's client secrets (a rotation: both sign valid webhooks)."""
OCTOPIA_CARRIERS: Final = ("Colissimo", "Chronopost", "DHL")
OCTOPIA_SALES_CHANNELS: Final = {
    "CDISFR": {"line_level": True, "manual_acceptance": True, "one_parcel_per_order": True},
    "OCTOBE": {"line_level": False, "manual_acceptance": False},
}

ACCOUNTS: Final = (
    Account("topi", "topi"),
    Account("octopia", "octopia"),
    Account("spresso", "spresso", settings={"client_secrets": list(SPRESSO_CLIENT_SECRETS)}),
    Account("signed", "topi", hmac=True),
    Account(
        "octopia-sc",
        "octopia",
        settings={"sales_channels": OCTOPIA_SALES_CHANNELS, "carriers": list(OCTOPIA_CARRIERS)},
    ),
)


def hub_config(
    *,
    database_url: str,
    port: int,
    channel_url: str,
    broker_url: str | None,
    queue_prefix: str,
) -> dict[str, Any]:
    """The hub's configuration: the test channel's :data:`ACCOUNTS` on ``channel_url``,
    the tier's API keys, short retries and sweeps, JSON logs."""
    broker: dict[str, Any] = (
        {"kind": "embedded", "concurrency": 4}
        if broker_url is None
        else {"kind": "redis", "url": broker_url}
    )
    keys = [
        {"name": "wms", "key": WMS_KEY, "scopes": ["orders:read", "orders:write"]},
        {"name": "reader", "key": READER_KEY, "scopes": ["orders:read"]},
        {"name": "operator", "key": OPS_KEY, "scopes": ["orders:read", "ops"]},
    ]
    accounts = [
        {
            "channel": CHANNEL,
            "name": account.name,
            "settings": {
                "profile": account.profile,
                "base_url": channel_url,
                "timeout": CHANNEL_TIMEOUT_SECONDS,
                **account.settings,
            },
            "webhook": (
                {"hmac_secrets": [HMAC_SECRET]}
                if account.hmac
                else {"bearer_tokens": [WEBHOOK_TOKEN]}
            ),
        }
        for account in ACCOUNTS
    ]
    return {
        "database": {"url": database_url},
        "broker": {**broker, "queue_prefix": queue_prefix},
        "api": {"host": "127.0.0.1", "port": port, "keys": keys},
        "channels": {"enabled": [CHANNEL], "accounts": accounts},
        "retry": dict(RETRY),
        "scheduler": dict(SCHEDULER),
        "logging": {"level": "INFO", "json": True},
    }


class Hub:
    """The hub under test and a WMS-side HTTP client for it."""

    def __init__(
        self,
        *,
        mode: Mode,
        processes: ProcessSet,
        workdir: Path,
        database_url: str,
        channel_server: ChannelServer,
        broker_url: str | None = None,
        serve_broker_url: str | None = None,
        worker_processes: int = 1,
        worker_threads: int = 4,
        worker_args: Sequence[str] = (),
        scheduler_args: Sequence[str] = (),
    ) -> None:
        self.mode = mode
        self.processes = processes
        self.workdir = workdir
        self.database_url = database_url
        self.channel_server = channel_server
        self.broker_url = broker_url
        self.queue_prefix = f"e2e-{secrets.token_hex(4)}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = write_toml(
            workdir / "orderhub.toml",
            hub_config(
                database_url=database_url,
                port=self.port,
                channel_url=channel_server.url,
                broker_url=broker_url if mode == "production" else None,
                queue_prefix=self.queue_prefix,
            ),
        )
        # serve may be pointed at another broker (a lost enqueue); everything else reads
        # the configuration file only
        self.hub_processes = HubProcesses(
            self.config_path,
            url=self.url,
            processes=processes,
            production=mode == "production",
            launch=LAUNCH,
            serve_env={"ORDERHUB_BROKER__URL": serve_broker_url} if serve_broker_url else {},
            worker_args=[
                "--processes",
                str(worker_processes),
                "--threads",
                str(worker_threads),
                "--shutdown-timeout",
                "5",
                *worker_args,
            ],
            scheduler_args=scheduler_args,
        )
        self.api = httpx.Client(base_url=self.url, timeout=30.0, headers=auth(WMS_KEY))

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Hub:
        try:
            self.hub_processes.start(timeout=STARTUP_SECONDS)
        except AssertionError as exc:
            # the logs the failure does not show yet
            shown = exc.processes if isinstance(exc, ProcessFailure) else ()
            others = [p for p in self.processes if p not in shown]
            raise ProcessFailure(f"the {self.mode} hub did not start: {exc}", others) from exc
        return self

    def start_worker(self, *, wait: bool = True) -> ManagedProcess:
        return self.hub_processes.start_worker(wait=wait, timeout=STARTUP_SECONDS)

    @property
    def serve(self) -> ManagedProcess:
        return self.hub_processes.serve

    @property
    def workers(self) -> list[ManagedProcess]:
        return self.hub_processes.workers

    @property
    def worker(self) -> ManagedProcess:
        return self.hub_processes.worker

    @property
    def scheduler(self) -> ManagedProcess | None:
        return self.hub_processes.scheduler

    @property
    def check_alive(self) -> Watch:
        """``hub.check_alive()`` raises when one of the hub's processes or its channel
        server has exited; as ``wait_until(alive=hub.check_alive)`` a timeout shows their
        logs too."""
        return Watch(*self.hub_processes.services, self.channel_server.process)

    def close(self) -> None:
        self.api.close()

    # --- HTTP --------------------------------------------------------------------------

    def webhook_url(self, account: str) -> str:
        return f"{self.url}/webhooks/{CHANNEL}/{account}"

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.api.get(f"/api/v1{path}", **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """POST as a WMS does: with a fresh Idempotency-Key unless the test gives one."""
        headers = {"Idempotency-Key": f"e2e-{uuid.uuid4()}", **kwargs.pop("headers", {})}
        return self.api.post(f"/api/v1{path}", headers=headers, **kwargs)

    def command(self, order_id: str, action: str, body: Mapping[str, Any] | None) -> str:
        """POST a warehouse command that must be accepted; its command id."""
        response = self.post(f"/orders/{order_id}/{action}", json=body)
        assert response.status_code == 202, f"{action}: {response.status_code} {response.text}"
        receipt = response.json()
        assert receipt["state"] == "pending", receipt
        return str(receipt["command_id"])

    def order(self, order_id: str) -> dict[str, Any]:
        response = self.get(f"/orders/{order_id}")
        assert response.status_code == 200, response.text
        order: dict[str, Any] = response.json()
        return order

    def find_order(self, account: str, channel_order_id: str) -> dict[str, Any] | None:
        response = self.get("/orders", params={"channel": CHANNEL, "account": account})
        assert response.status_code == 200, response.text
        for order in response.json()["orders"]:
            if order["channel_order_id"] == channel_order_id:
                return self.order(order["id"])
        return None

    def wait_for_order(
        self,
        account: str,
        channel_order_id: str,
        *,
        until: Callable[[dict[str, Any]], bool] = lambda _: True,
        what: str = "",
        timeout: float = SETTLE_SECONDS,
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            order = self.find_order(account, channel_order_id)
            return order if order is not None and until(order) else None

        return wait_until(
            probe,
            f"order {account}/{channel_order_id} {what}".strip(),
            timeout=timeout,
            alive=self.check_alive,
        )

    def wait_for_status(self, order_id: str, status: str) -> dict[str, Any]:
        return wait_until(
            lambda: (order := self.order(order_id))["status"] == status and order,
            f"order {order_id} to be {status}",
            alive=self.check_alive,
        )

    def feed(self, after: int = 0, *, limit: int = 1000) -> list[dict[str, Any]]:
        """Every event after ``after``, following ``next_cursor`` to the end."""
        events: list[dict[str, Any]] = []
        while True:
            response = self.get("/feed", params={"after": after, "limit": limit})
            assert response.status_code == 200, response.text
            page = response.json()
            events += page["events"]
            if not page["events"]:
                return events
            after = page["next_cursor"]

    def last_seq(self) -> int:
        events = self.feed()
        return int(events[-1]["seq"]) if events else 0

    def wait_for_event(
        self, type_: str, *, timeout: float = SETTLE_SECONDS, **data: Any
    ) -> dict[str, Any]:
        """The first feed event of ``type_`` whose order id / data match."""
        order_id = data.pop("order_id", None)

        def probe() -> dict[str, Any] | None:
            for event in self.feed():
                if event["type"] != type_:
                    continue
                if order_id is not None and event["order_id"] != order_id:
                    continue
                if all(event["data"].get(k) == v for k, v in data.items()):
                    return event
            return None

        return wait_until(
            probe, f"feed event {type_} {data}", timeout=timeout, alive=self.check_alive
        )

    def wait_for_command(
        self, command_id: str, *, timeout: float = SETTLE_SECONDS
    ) -> dict[str, Any]:
        """Until the command finished; fails if it failed."""

        def probe() -> dict[str, Any] | None:
            for event in self.feed():
                if event["type"].startswith("command.") and event["data"].get("command_id") == (
                    command_id
                ):
                    return event
            return None

        event = wait_until(
            probe, f"command {command_id} to finish", timeout=timeout, alive=self.check_alive
        )
        assert event["type"] == "command.succeeded", f"command failed: {event}"
        return event

    def wait_for_message(self, message_id: str, state: str = "processed") -> None:
        """Until the inbox message is in ``state`` (the API shows only failed ones)."""
        wait_until(
            lambda: self.count("inbox_messages", f"id = '{message_id}' AND state = '{state}'"),
            f"inbox message {message_id} to be {state}",
            alive=self.check_alive,
        )

    # --- a look at the database (what the API cannot show: nothing stored) ------------------

    def count(self, table: str, where: str = "") -> int:
        sql = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
        return int(run_async(lambda: _scalar(self.database_url, sql)))


async def _scalar(url: str, sql: str) -> Any:
    from sqlalchemy import text

    from orderhub.adapters.persistence import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(text(sql))).scalar_one()
    finally:
        await engine.dispose()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- order documents and feed helpers ------------------------------------------------------


def order_document(
    channel_order_id: str,
    status: str,
    lines: Iterable[tuple[str, int] | tuple[str, int, str]],
    **extra: Any,
) -> dict[str, Any]:
    """A test channel order document (see ``orderhub.testing.channel``)."""
    doc_lines = []
    for line in lines:
        entry: dict[str, Any] = {
            "id": line[0],
            "title": f"Item {line[0]}",
            "quantity": line[1],
            "sku": f"SKU-{line[0]}",
            "price": 1990,
        }
        if len(line) > 2:
            entry["fulfilment"] = line[2]
        doc_lines.append(entry)
    doc: dict[str, Any] = {
        "id": channel_order_id,
        "status": status,
        "lines": doc_lines,
        "number": channel_order_id.removeprefix("CO-"),
        "currency": "EUR",
        "placed_at": "2026-01-05T10:00:00Z",
        "customer": {"name": "Erika Mustermann", "email": "erika@example.org"},
        "shipping_address": {
            "name": "Erika Mustermann",
            "line1": "Heidestrasse 17",
            "postal_code": "51147",
            "city": "Koeln",
            "country_code": "DE",
        },
    }
    doc.update(extra)
    return doc


def line_ids(order: Mapping[str, Any]) -> dict[str, str]:
    """channel line id -> hub line id."""
    return {line["channel_line_id"]: line["id"] for line in order["lines"]}


def fulfilment_ids(order: Mapping[str, Any]) -> dict[str, str]:
    return {f["channel_fulfilment_id"]: f["id"] for f in order["fulfilments"]}


def types_for(events: Iterable[Mapping[str, Any]], order_id: str) -> list[str]:
    return [e["type"] for e in events if e["order_id"] == order_id]


def assert_gapless(events: Sequence[Mapping[str, Any]], *, start: int = 1) -> None:
    seqs = [int(e["seq"]) for e in events]
    assert seqs == list(range(start, start + len(seqs))), f"feed has gaps or repeats: {seqs}"


def succeeded_commands(events: Iterable[Mapping[str, Any]]) -> list[str]:
    return [e["data"]["command_id"] for e in events if e["type"] == "command.succeeded"]


def is_problem(response: httpx.Response, status: int, rule: str) -> dict[str, Any]:
    """Assert an RFC 9457 problem with this status and type; return its body."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE), response.headers
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM_BASE + rule, body
    assert body["status"] == status, body
    return body


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
