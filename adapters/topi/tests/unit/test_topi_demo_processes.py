"""The demo's stack (``orderhub_topi.demo_support``) on ``orderhub.testing.processes``, with
small real processes and no services: a wait on the stack fails at once, with the
process's name, exit code and log, when one of its processes exits; its configuration is
one the hub reads; its processes start as the demo needs them. The process harness itself
is tested in the core's ``tests/unit/testing``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orderhub.config import load_settings
from orderhub.testing.processes import ManagedProcess, NotYet, ProcessFailure, write_toml
from orderhub_topi.demo_support import ACCOUNT, DemoFailure, Stack, StackOptions, eventually


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    the_stack = Stack(tmp_path)
    yield the_stack
    the_stack.stop()


def never() -> None:
    raise NotYet("not listening")


def test_a_process_that_exits_while_waited_for_fails_the_wait_with_its_exit_code_and_log(
    stack: Stack, tmp_path: Path
) -> None:
    crash = stack.processes.add(
        ManagedProcess(
            "serve",
            [sys.executable, "-c", "print('cannot bind: address in use', flush=True); exit(3)"],
            tmp_path / "serve.log",
            stack.launch,
        )
    ).start()
    assert crash.wait(timeout=20) == 3

    with pytest.raises(DemoFailure) as failure:
        eventually("the hub's /readyz", never, timeout=10, alive=stack.check_alive)

    message = str(failure.value)
    assert message.startswith("serve exited unexpectedly (exit code 3)\n")
    assert f"--- serve (pid {crash.pid}, exit code 3): last lines of" in message
    assert "cannot bind: address in use" in message


def test_a_demo_failure_is_the_harness_failure() -> None:
    """What the demo catches (exit 1) is what every wait of the harness raises."""
    assert DemoFailure is ProcessFailure
    with pytest.raises(DemoFailure, match=r"\(seen: not listening\)$"):
        eventually("the simulator", never, timeout=0.1)


@pytest.mark.parametrize(
    "options",
    [
        StackOptions(),
        StackOptions(
            database_url="postgresql+asyncpg://postgres@127.0.0.1:5432/x",
            broker_url="amqp://guest:guest@127.0.0.1:5672/",
            queue_prefix="demo-x",
        ),
    ],
    ids=["embedded", "production"],
)
def test_the_hubs_configuration_is_one_the_hub_reads(tmp_path: Path, options: StackOptions) -> None:
    stack = Stack(tmp_path, options, sim_port=8701, hub_port=8702)

    settings = load_settings(write_toml(stack.config_path, stack.hub_config()), environ={})

    assert settings.api.port == 8702
    assert settings.broker.kind == options.broker_kind
    assert [key.key for key in settings.api.keys] == [stack.api_key]
    [account] = settings.channels.accounts
    assert (account.channel, account.name) == ("topi", ACCOUNT)
    assert account.settings["token_url"] == "http://127.0.0.1:8701/oauth2/token"
    assert account.settings["client_secret"] == stack.client_secret
    assert account.webhook.hmac_secrets == (stack.webhook_secret,)
    assert account.webhook.bearer_tokens == (stack.webhook_token,)


def test_its_processes_start_in_the_work_directory_and_die_with_the_demo(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOPI_SIM_WEBHOOK_URL", "http://elsewhere")
    monkeypatch.setenv("ORDERHUB_API__PORT", "1")
    launch = stack.launch

    assert launch.cwd == tmp_path
    assert launch.die_with_parent
    assert launch.stop_seconds == 20.0
    environ = launch.environ()
    assert "TOPI_SIM_WEBHOOK_URL" not in environ
    assert "ORDERHUB_API__PORT" not in environ
