"""The e2e harness itself (``support.py``), without services: the hub's configuration is
one the hub reads, and a wait on the hub shows the logs of all its processes and of its
channel server. The processes underneath (``orderhub.testing.processes``: failures with
name, state and log tail, default signal handling, stopping) are tested in
``tests/unit/testing``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orderhub.config import load_settings
from orderhub.testing.processes import ProcessSet, WaitTimedOut, wait_until

from .support import (
    ACCOUNTS,
    CHANNEL_TIMEOUT_SECONDS,
    HMAC_SECRET,
    RETRY,
    WEBHOOK_TOKEN,
    ChannelServer,
    Hub,
    Mode,
)


@pytest.fixture
def processes() -> Iterator[ProcessSet]:
    started = ProcessSet()
    yield started
    started.stop_all()


def make_hub(mode: Mode, processes: ProcessSet, workdir: Path) -> tuple[Hub, ChannelServer]:
    server = ChannelServer(processes, workdir)
    hub = Hub(
        mode=mode,
        processes=processes,
        workdir=workdir,
        database_url=f"sqlite+aiosqlite:///{workdir / 'hub.db'}",
        channel_server=server,
        broker_url="redis://127.0.0.1:6379/12" if mode == "production" else None,
    )
    return hub, server


@pytest.mark.parametrize("mode", ["embedded", "production"])
def test_the_hubs_configuration_is_one_the_hub_reads(
    processes: ProcessSet, tmp_path: Path, mode: Mode
) -> None:
    hub, server = make_hub(mode, processes, tmp_path)
    hub.close()
    server.close()

    settings = load_settings(hub.config_path, environ={})

    assert settings.api.port == hub.port
    assert settings.broker.kind == ("redis" if mode == "production" else "embedded")
    assert settings.broker.queue_prefix == hub.queue_prefix
    assert settings.retry.lease_seconds == RETRY["lease_seconds"]
    assert settings.logging.json is True
    accounts = {a.name: a for a in settings.channels.accounts}
    assert list(accounts) == [a.name for a in ACCOUNTS]
    assert accounts["signed"].webhook.hmac_secrets == (HMAC_SECRET,)
    assert accounts["topi"].webhook.bearer_tokens == (WEBHOOK_TOKEN,)
    assert accounts["octopia"].settings == {
        "profile": "octopia",
        "base_url": server.url,
        "timeout": CHANNEL_TIMEOUT_SECONDS,
    }


def test_waits_on_the_hub_show_the_logs_of_all_its_processes(
    processes: ProcessSet, tmp_path: Path
) -> None:
    """``alive=hub.check_alive`` (as the e2e tests write it) is enough: nothing started
    here, so the timeout lists the processes as not started."""
    hub, server = make_hub("embedded", processes, tmp_path)
    try:
        with pytest.raises(WaitTimedOut) as failure:
            wait_until(lambda: None, "an order", timeout=0.2, alive=hub.check_alive)
    finally:
        hub.close()
        server.close()

    message = str(failure.value)
    assert f"--- serve (not started): last lines of {tmp_path / 'serve.log'}" in message
    assert "--- channel-server (not started)" in message
