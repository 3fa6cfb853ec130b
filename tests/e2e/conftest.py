"""Fixtures of the e2e tier: the channel server and the hub as real processes.

Two kinds of hub:

* ``hub`` (parametrized ``embedded`` / ``production``): one hub per mode for this tier
  (package scope), with its own channel server, shared by the tests that only add orders
  of their own (lifecycles, bad input). Starting the processes is what costs, so they
  start once per mode.
* ``hub_factory``: a hub of the test's own (the crash and concurrency tests, which kill
  processes, inject faults or need a quiet feed), with its own channel server
  (``channel_server``).

``embedded``: one ``orderhub serve`` on SQLite with the in-process queue and scheduler.
``production``: ``orderhub migrate`` on a new PostgreSQL database, then ``orderhub serve``
(API only), ``orderhub worker`` and ``orderhub scheduler`` on Redis. The production cases
are marked ``postgres`` and ``broker``; an unreachable PostgreSQL or Redis fails them
(never skips). PostgreSQL comes from ``postgres_server_url`` (tests/conftest.py). Redis:
``ORDERHUB_TEST_E2E_REDIS_URL`` (default db 12: the other tiers use 14 and 15), flushed
before the tier and after it, every hub with a queue prefix of its own (its keys deleted
when it stops);
``ORDERHUB_TEST_E2E_LOST_REDIS_URL`` (default db 13) is a database no worker reads.

Each hub's process logs are in its directory under the session's basetemp; a failing test
shows their tails."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import redis

from orderhub.testing.processes import ProcessSet

from .databases import new_database
from .support import (
    LOST_REDIS_ENV,
    LOST_REDIS_URL,
    REDIS_ENV,
    REDIS_URL,
    ChannelServer,
    Hub,
    Mode,
)

PROCESSES_KEY: Final = pytest.StashKey[ProcessSet]()

MODES: Final = [
    pytest.param("embedded", id="embedded"),
    pytest.param("production", id="production", marks=[pytest.mark.postgres, pytest.mark.broker]),
]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    processes = item.stash.get(PROCESSES_KEY, None)
    if processes is not None and report.failed and report.when in ("setup", "call"):
        for title, text in processes.report():
            report.sections.append((title, text))
    return report


# --- backends ------------------------------------------------------------------------------


def _redis(url: str, env: str) -> redis.Redis:
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis at {url} cannot be reached ({type(exc).__name__}: {exc}). Start it or set "
            f'{env}; to leave these tests out on purpose, run pytest -m "not broker".',
            pytrace=False,
        )
    return client


@pytest.fixture(scope="package")
def redis_db() -> Iterator[redis.Redis]:
    """The e2e Redis database, flushed before the first test of this tier and after the last."""
    client = _redis(REDIS_URL, REDIS_ENV)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def lost_redis_db() -> Iterator[redis.Redis]:
    """A Redis database that no worker reads, flushed before and after the test."""
    client = _redis(LOST_REDIS_URL, LOST_REDIS_ENV)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


def _delete_queues(client: redis.Redis, prefix: str) -> None:
    for key in client.scan_iter(f"dramatiq:{prefix}.*"):
        client.delete(key)


@pytest.fixture(scope="package")
def shared_postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A new, unmigrated PostgreSQL database for the shared production hub
    (``empty_postgres_url`` of tests/conftest.py is the same, per test)."""
    with new_database(postgres_server_url, "orderhub_e2e") as url:
        yield url


@pytest.fixture
def production_backends(empty_postgres_url: str, redis_db: redis.Redis) -> str:
    """A new, unmigrated PostgreSQL database (its URL) and Redis, for a hub of the test's own.

    Request it before ``hub_factory``: fixtures are torn down in reverse, so the hub's
    processes stop before the database is dropped."""
    return empty_postgres_url


# --- hubs ----------------------------------------------------------------------------------


class HubRun:
    """A hub, its channel server and its processes; :meth:`close` stops them all."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes = ProcessSet()
        self.channel_server = ChannelServer(self.processes, workdir)
        self.hubs: list[Hub] = []
        self.redis: redis.Redis | None = None

    def start_hub(self, mode: Mode, *, database_url: str | None, **options: Any) -> Hub:
        if not self.channel_server.process.running():
            self.channel_server.start()
        if mode == "production":
            assert database_url is not None
            options.setdefault("broker_url", REDIS_URL)
        else:
            database_url = f"sqlite+aiosqlite:///{self.workdir / 'hub.db'}"
        hub = Hub(
            mode=mode,
            processes=self.processes,
            workdir=self.workdir,
            database_url=database_url,
            channel_server=self.channel_server,
            **options,
        )
        self.hubs.append(hub)
        return hub.start()

    def close(self) -> None:
        self.processes.stop_all()
        for hub in self.hubs:
            hub.close()
            if self.redis is not None and hub.mode == "production":
                _delete_queues(self.redis, hub.queue_prefix)
        self.channel_server.close()


@pytest.fixture(scope="package", params=MODES)
def shared_hub(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Hub, ProcessSet]]:
    mode: Mode = request.param
    run = HubRun(tmp_path_factory.mktemp(f"shared-hub-{mode}"))
    database_url = None
    if mode == "production":
        database_url = str(request.getfixturevalue("shared_postgres_url"))
        run.redis = request.getfixturevalue("redis_db")
    try:
        yield run.start_hub(mode, database_url=database_url), run.processes
    finally:
        run.close()


@pytest.fixture
def hub(request: pytest.FixtureRequest, shared_hub: tuple[Hub, ProcessSet]) -> Hub:
    """The tier's hub in each mode (shared: each test uses orders of its own)."""
    the_hub, processes = shared_hub
    request.node.stash[PROCESSES_KEY] = processes
    the_hub.check_alive()
    return the_hub


HubFactory = Callable[..., Hub]


@pytest.fixture
def hub_run(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HubRun]:
    run = HubRun(tmp_path)
    request.node.stash[PROCESSES_KEY] = run.processes
    try:
        yield run
    finally:
        run.close()


@pytest.fixture
def channel_server(hub_run: HubRun) -> ChannelServer:
    """The channel server of this test's own hub."""
    return hub_run.channel_server.start()


@pytest.fixture
def hub_factory(request: pytest.FixtureRequest, hub_run: HubRun) -> HubFactory:
    """Start a hub of this test's own: ``hub_factory("production", **Hub options)``."""

    def start(mode: Mode, **options: Any) -> Hub:
        database_url = None
        if mode == "production":
            database_url = str(request.getfixturevalue("production_backends"))
            hub_run.redis = request.getfixturevalue("redis_db")
        return hub_run.start_hub(mode, database_url=database_url, **options)

    return start
