"""The test channel server as a process on loopback: the CLI, restarts, real HTTP calls."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from orderhub.channels.spi import AccountConfig, ChannelCommand, CommandKind, TransientChannelError
from orderhub.domain.model import Order
from orderhub.testing.channel import decode_orders, plugin, to_snapshot

STARTUP_SECONDS = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, port: int, state_file: Path) -> None:
        self.port = port
        self.state_file = state_file
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "orderhub.testing.channel_server",
                "--port",
                str(self.port),
                "--state-file",
                str(self.state_file),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode() if self.process.stdout else ""
                pytest.fail(f"the channel server exited: {output}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        pytest.fail("the channel server did not come up")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(free_port(), tmp_path / "testchannel.json")
    running.start()
    try:
        yield running
    finally:
        running.kill()


def order() -> Order:
    body = json.dumps(
        {"id": "CO-1", "status": "created", "lines": [{"id": "L1", "title": "t", "quantity": 1}]}
    ).encode()
    [doc] = decode_orders(body)
    return Order.receive(
        to_snapshot(doc),
        order_id="O-1",
        channel="testchannel",
        account="main",
        caps=plugin.capabilities(AccountConfig(channel="testchannel", name="main")),
        now=datetime(2026, 1, 1, tzinfo=UTC),
        new_id=iter(f"h{n}" for n in range(10)).__next__,
    )


def command(command_id: str) -> ChannelCommand:
    return ChannelCommand(
        id=command_id,
        order_id="O-1",
        channel="testchannel",
        account="main",
        kind=CommandKind.ACCEPT,
        payload={"whole_order": True},
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_records_survive_a_killed_server(server: Server) -> None:
    headers = {"Idempotency-Key": "c1"}
    body = {"command_id": "c1", "kind": "ship", "order": "CO-1", "payload": {}}
    first = httpx.post(f"{server.url}/calls", json=body, headers=headers)
    assert first.status_code == 200

    server.kill()
    server.start()

    replay = httpx.post(f"{server.url}/calls", json=body, headers=headers)
    assert replay.json() == first.json()
    calls = httpx.get(f"{server.url}/calls").json()["calls"]
    assert [(c["key"], c["replays"]) for c in calls] == [("c1", 1)]


async def test_an_account_over_loopback_times_out_then_replays(server: Server) -> None:
    account = plugin.open_account(
        AccountConfig(
            channel="testchannel",
            name="main",
            settings={"base_url": server.url, "timeout": 0.3},
        )
    )
    async with httpx.AsyncClient(base_url=server.url) as control:
        await control.post("/_faults", json={"kind": "hang", "seconds": 1.5})
        with pytest.raises(TransientChannelError, match="timed out"):
            await account.execute(command("c1"), order())
        # the channel took the call although the answer never came; the retry is a replay
        outcome = await account.execute(command("c1"), order())
        assert outcome.data == {"ok": True, "call": 1, "command_id": "c1"}
        calls = (await control.get("/calls")).json()["calls"]
        assert [(c["command_id"], c["replays"]) for c in calls] == [("c1", 1)]

        await control.post("/_faults", json={"kind": "status", "status": 429, "retry_after": 3})
        with pytest.raises(TransientChannelError) as caught:
            await account.execute(command("c2"), order())
        assert caught.value.retry_after == 3.0
    await account.aclose()
