"""End to end: the Spresso simulator and the hub as real processes, driven over HTTP only.

Two ways to run the hub, one session-scoped :class:`Stack` each (the tests are grouped by
mode, so each stack starts once):

* ``embedded``: ``orderhub serve`` on SQLite with the in-process queue and scheduler;
* ``production``: ``orderhub migrate``, then ``orderhub serve``, ``orderhub worker`` and
  ``orderhub scheduler`` on a fresh PostgreSQL database and a Redis broker.

Either way ``orderhub channels setup spresso`` registers the webhooks at the simulator,
which then sends signed ``order_fulfillable`` / ``order_cancelled`` webhooks to the hub.

Services (a missing one FAILS the production tests, in CI and locally; it never skips
them; ``pytest -m "not postgres and not broker"`` leaves them out on purpose):

* PostgreSQL: ``ORDERHUB_TEST_POSTGRES_URL``, else
  ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``; the user must be allowed to
  create databases. The session creates ``orderhub_spresso_e2e_<random>`` and drops it.
* Redis: ``ORDERHUB_TEST_REDIS_URL``, else ``redis://127.0.0.1:6379/14``; the queues get
  a random prefix and their keys are deleted at the end.

Every test makes orders of its own and looks only at those; faults and holds injected
into the simulator are cleared after each test. When a test fails, the tail of every
process log is added to its report. Fixture names start with ``spresso_`` (the topi
end-to-end tests have their own).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Final

import pytest
from spresso_e2e_support import LEASE_SECONDS, STEP_TIMEOUT
from sqlalchemy.engine import make_url

from orderhub.testing.processes import run_async
from orderhub_spresso.demo import Demo
from orderhub_spresso.demo_support import Narrator, Stack, StackOptions

POSTGRES_ENV: Final = "ORDERHUB_TEST_POSTGRES_URL"
LOCAL_POSTGRES_URL: Final = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
REDIS_ENV: Final = "ORDERHUB_TEST_REDIS_URL"
LOCAL_REDIS_URL: Final = "redis://127.0.0.1:6379/14"
CONNECT_TIMEOUT: Final = 5.0

MODES: Final = [
    "embedded",
    pytest.param("production", marks=[pytest.mark.postgres, pytest.mark.broker]),
]


def _fail_unreachable(what: str, url: str, env: str, problem: str) -> None:
    where = "CI must provide it" if os.environ.get("CI") else "start it"
    pytest.fail(
        f"{what} at {url} cannot be reached ({problem}). Set {env} or {where}; to leave "
        'these tests out on purpose, run pytest -m "not postgres and not broker".',
        pytrace=False,
    )


def _postgres_server_url() -> str:
    raw = os.environ.get(POSTGRES_ENV) or LOCAL_POSTGRES_URL
    parsed = make_url(raw)
    if parsed.get_backend_name() != "postgresql":
        pytest.fail(f"{POSTGRES_ENV} must be a postgresql:// URL, not {raw!r}", pytrace=False)
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


async def _execute(server_url: str, statement: str) -> None:
    import asyncpg

    libpq = make_url(server_url).set(drivername="postgresql")
    connection = await asyncpg.connect(
        libpq.render_as_string(hide_password=False), timeout=CONNECT_TIMEOUT
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def spresso_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for this session (``orderhub migrate`` fills it)."""
    server = _postgres_server_url()
    name = f"orderhub_spresso_e2e_{secrets.token_hex(4)}"
    try:
        run_async(lambda: _execute(server, f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        safe = make_url(server).render_as_string(hide_password=True)
        _fail_unreachable("PostgreSQL", safe, POSTGRES_ENV, f"{type(exc).__name__}: {exc}")
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        run_async(lambda: _execute(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def spresso_redis_url() -> str:
    import redis

    url = os.environ.get(REDIS_ENV) or LOCAL_REDIS_URL
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        _fail_unreachable("Redis", url, REDIS_ENV, f"{type(exc).__name__}: {exc}")
    return url


def _delete_queues(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT)
    try:
        for key in client.scan_iter(f"*{prefix}*"):
            client.delete(key)
    finally:
        client.close()


_running: list[Stack] = []


@pytest.fixture(scope="session", params=MODES)
def spresso_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """The simulator and the hub, running, in one mode; stopped (and checked to have
    stopped cleanly, but for what a test killed) when the mode's tests are done."""
    mode: str = request.param
    workdir: Path = tmp_path_factory.mktemp(f"spresso-e2e-{mode}")
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    if mode == "embedded":
        options = StackOptions(lease_seconds=LEASE_SECONDS)
    else:
        database = request.getfixturevalue("spresso_postgres_database")
        broker = request.getfixturevalue("spresso_redis_url")
        prefix = f"orderhub-spresso-e2e-{secrets.token_hex(4)}"
        options = StackOptions(
            database_url=database,
            broker_url=broker,
            queue_prefix=prefix,
            lease_seconds=LEASE_SECONDS,
        )

        def cleanup() -> None:
            _delete_queues(broker, prefix)

    running = Stack(workdir, options)
    _running.append(running)
    try:
        running.start()
        yield running
    finally:
        stopped = running.stop()
        _running.remove(running)
        cleanup()
    unclean = [
        f"{p.name} ({p.describe_exit()})\n{p.log_report()}" for p in running.unclean(stopped)
    ]
    assert not unclean, "did not stop cleanly on SIGTERM:\n" + "\n".join(unclean)


@pytest.fixture
def spresso_demo(spresso_stack: Stack) -> Iterator[Demo]:
    """The demo's driver on the running stack; narration goes to the captured output.
    Afterwards the simulator's faults are cleared and held calls released."""
    driver = Demo.attach(spresso_stack, say=Narrator(), timeout=STEP_TIMEOUT)
    try:
        yield driver
    finally:
        try:
            driver.spresso.control.clear_faults()
        finally:
            driver.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, add the tail of every process log to the report."""
    report = yield
    if report.failed and call.when in ("setup", "call"):
        for running in _running:
            report.sections.extend(running.processes.report(40))
    return report
