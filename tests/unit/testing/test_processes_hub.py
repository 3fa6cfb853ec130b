"""``orderhub.testing.processes``: an orderhub configuration written as TOML is the one the
hub reads; ``orderhub_command`` runs the hub's CLI; a hub that cannot start says why."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

import pytest

from orderhub.config import load_settings
from orderhub.testing.processes import (
    HubProcesses,
    ManagedProcess,
    ProcessFailure,
    ProcessSet,
    dumps_toml,
    orderhub_command,
    toml_value,
    write_toml,
)

CONFIG: dict[str, Any] = {
    "database": {"url": "sqlite+aiosqlite:///var/hub.db"},
    "broker": {"kind": "redis", "url": "redis://127.0.0.1:6379/3", "queue_prefix": "e2e-1"},
    "api": {
        "host": "127.0.0.1",
        "port": 8123,
        "keys": [
            {"name": "wms", "key": "wms-key-0123456789abcdef", "scopes": ["orders:read"]},
            {"name": "ops", "key": "ops-key-0123456789abcdef", "scopes": ["ops"]},
        ],
    },
    "channels": {
        "enabled": ["testchannel"],
        "accounts": [
            {
                "channel": "testchannel",
                "name": "a",
                "settings": {"profile": "topi", "timeout": 4.0},
                "webhook": {"bearer_tokens": ["token"]},
            },
            {
                "channel": "testchannel",
                "name": "b",
                "settings": {"profile": "octopia"},
                "webhook": {"hmac_secrets": ["whsec_c2VjcmV0"]},
            },
        ],
    },
    "retry": {"base_seconds": 0.2, "max_attempts": 5},
    "logging": {"level": "INFO", "json": True},
}


def test_a_configuration_reads_back_as_written_and_as_the_hub_reads_it(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "orderhub.toml", CONFIG, comment="written by a test\nline 2")

    text = path.read_text()
    assert text.startswith("# written by a test\n# line 2\n\n[database]\n")
    assert tomllib.loads(text) == CONFIG

    settings = load_settings(path, environ={})
    assert settings.broker.kind == "redis"
    assert [key.name for key in settings.api.keys] == ["wms", "ops"]
    accounts = settings.channels.accounts
    assert [(a.name, a.settings["profile"]) for a in accounts] == [("a", "topi"), ("b", "octopia")]
    assert accounts[1].webhook.hmac_secrets == ("whsec_c2VjcmV0",)


@pytest.mark.parametrize(
    "value",
    ['quote " backslash \\ newline \n tab \t', "ünïcode ☃ 𝄞", "del \x7f nul \x00", "", "a'b"],
)
def test_strings_survive_toml(value: str) -> None:
    document = {"t": {value or "empty": value, "list": [value, 1, 2.5, True]}}
    assert tomllib.loads(dumps_toml(document)) == document


def test_what_toml_cannot_say_is_refused() -> None:
    for value in (None, math.inf, {"a": 1}, object()):
        with pytest.raises(TypeError):
            toml_value(value)


def test_empty_tables_and_parents_without_values(tmp_path: Path) -> None:
    document: dict[str, Any] = {"top": 1, "a": {"b": {"c": {}}}, "empty": [], "d": {}}
    assert tomllib.loads(dumps_toml(document)) == document


def test_orderhub_command_runs_the_hubs_cli(tmp_path: Path) -> None:
    cli = ManagedProcess("help", orderhub_command("--help"), tmp_path / "help.log")
    assert cli.run_to_end(timeout=60) == 0, cli.text()
    assert "serve" in cli.text()


def test_a_migration_that_fails_fails_the_start_with_its_log(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "orderhub.toml", {"database": {"url": "nonsense://"}})
    processes = ProcessSet()
    hub = HubProcesses(config, url="http://127.0.0.1:9", processes=processes, production=True)
    try:
        with pytest.raises(ProcessFailure) as failure:
            hub.start(timeout=60)
    finally:
        processes.stop_all()

    message = str(failure.value)
    assert message.startswith("orderhub migrate failed (exit code ")
    assert f"--- migrate (pid {processes.find('migrate').pid}, exit code" in message
    assert not hub.serve.running()
    assert [p.name for p in processes] == ["serve", "migrate"]
