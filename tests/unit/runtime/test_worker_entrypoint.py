"""The worker entry point: the hub's life in a dramatiq worker process, the CLI hand-over."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from dramatiq import Worker
from dramatiq.asyncio import EventLoopThread, get_event_loop_thread
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import MiddlewareError

from orderhub.adapters.queue.dramatiq_queue import (
    DramatiqQueue,
    current_hub,
    declare_actors,
    middleware_stack,
    set_hub,
)
from orderhub.bootstrap import resources
from orderhub.config import Settings, load_settings
from orderhub.entrypoints.cli import EXIT_CONFIG, main
from orderhub.entrypoints.worker import (
    BROKER_SPEC,
    IDLE_POLL_MS,
    EmbeddedBrokerError,
    HubLifecycle,
    build_worker_broker,
    dramatiq_argv,
    idle_poll_ms,
)


def redis_settings(tmp_path: Path, **extra: str) -> Settings:
    env = {
        "ORDERHUB_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        "ORDERHUB_BROKER__KIND": "redis",
        "ORDERHUB_BROKER__URL": "redis://127.0.0.1:6379/15",
        "ORDERHUB_CHANNELS__ENABLED": "[]",
        **extra,
    }
    return load_settings(environ=env)


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if isinstance(t, EventLoopThread) and t.is_alive()]


def stub_broker_with(lifecycle: HubLifecycle) -> StubBroker:
    broker = StubBroker(middleware=middleware_stack(extra=[lifecycle]))
    declare_actors(broker)
    return broker


def test_the_worker_boots_a_hub_on_its_loop_and_closes_it_at_shutdown(tmp_path: Path) -> None:
    lifecycle = HubLifecycle(redis_settings(tmp_path))
    broker = stub_broker_with(lifecycle)
    worker = Worker(broker, worker_threads=1)

    worker.start()
    try:
        hub = current_hub()
        assert hub is lifecycle.hub
        assert isinstance(hub.queue, DramatiqQueue)
        assert hub.queue.broker is broker  # follow-ups and retries go to the same broker
        assert resources(hub).engine is not None
    finally:
        worker.stop()

    with pytest.raises(RuntimeError):
        current_hub()
    with pytest.raises(LookupError):  # aclose ran: the engine is disposed
        resources(hub)
    assert loop_threads() == []


def test_a_worker_that_cannot_bootstrap_stops_instead_of_running_without_a_hub(
    tmp_path: Path,
) -> None:
    set_hub(None)
    lifecycle = HubLifecycle(redis_settings(tmp_path, ORDERHUB_CHANNELS__ENABLED="nowhere"))
    worker = Worker(stub_broker_with(lifecycle), worker_threads=1)

    with pytest.raises(MiddlewareError, match="enabled channels not installed: nowhere"):
        worker.start()

    assert get_event_loop_thread() is None
    assert loop_threads() == []  # nothing keeps the process alive


def test_the_worker_broker_needs_an_external_broker() -> None:
    with pytest.raises(EmbeddedBrokerError, match="embedded"):
        build_worker_broker(load_settings(environ={}))


def test_dramatiq_is_started_on_our_broker_hook_with_the_options() -> None:
    argv = dramatiq_argv(processes=3, threads=5, queues=["orderhub.commands"], shutdown_timeout=7)

    assert argv[0] == BROKER_SPEC == "orderhub.entrypoints.worker:setup"
    assert argv[argv.index("--processes") + 1] == "3"
    assert argv[argv.index("--threads") + 1] == "5"
    assert argv[argv.index("--worker-shutdown-timeout") + 1] == "7000"
    assert argv[argv.index("--queues") + 1 :] == ["orderhub.commands"]
    assert "--skip-logging" in argv  # ours (structlog) is configured in setup()


def test_worker_command_refuses_missing_plugins_before_forking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {
        "ORDERHUB_BROKER__KIND": "redis",
        "ORDERHUB_BROKER__URL": "redis://127.0.0.1:6379/15",
        "ORDERHUB_CHANNELS__ENABLED": "nowhere",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ORDERHUB_CONFIG", raising=False)

    assert main(["worker", "--processes", "1"]) == EXIT_CONFIG

    assert "enabled channels not installed: nowhere" in capsys.readouterr().err


def test_the_consumers_look_at_an_empty_queue_again_within_100_ms(tmp_path: Path) -> None:
    lifecycle = HubLifecycle(redis_settings(tmp_path))
    broker = stub_broker_with(lifecycle)
    worker = Worker(broker, worker_threads=1)  # dramatiq's default: 1000 ms

    worker.start()
    try:
        assert worker.worker_timeout == IDLE_POLL_MS == 100
        assert {c.worker_timeout for c in worker.consumers.values()} == {IDLE_POLL_MS}
    finally:
        worker.stop()
    assert idle_poll_ms({"dramatiq_worker_timeout": "250"}) == 250
