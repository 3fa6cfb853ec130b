"""The ``orderhub`` command line: parsing, exit codes, check-config, migrate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orderhub.config import load_settings
from orderhub.entrypoints.cli import EXIT_CONFIG, build_parser, main, web_settings

SECRET_KEY = "wms-key-SECRET-0123456789"
SECRET_TOKEN = "hook-SECRET-token"

CONFIG = f"""
[database]
url = "sqlite+aiosqlite:///{{db}}"

[[api.keys]]
name = "wms"
key = "{SECRET_KEY}"
scopes = ["orders:read", "ops"]

[channels]
enabled = []
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "orderhub.toml"
    path.write_text(CONFIG.format(db=tmp_path / "data" / "hub.db"))
    return path


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORDERHUB_CONFIG", raising=False)


def test_config_is_accepted_before_and_after_the_command(config: Path) -> None:
    parser = build_parser()

    assert parser.parse_args(["--config", str(config), "migrate"]).config == str(config)
    assert parser.parse_args(["migrate", "-c", str(config)]).config == str(config)
    assert not hasattr(parser.parse_args(["migrate"]), "config")


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])

    assert exited.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_check_config_prints_the_settings_without_secrets(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERHUB_CHANNELS__ACCOUNTS", "[]")  # environment overrides are applied too
    monkeypatch.setenv("ORDERHUB_API__PORT", "9123")

    assert main(["check-config", "--config", str(config)]) == 0

    out = capsys.readouterr().out
    printed = json.loads(out)
    assert printed["api"]["port"] == 9123
    assert printed["api"]["keys"] == [
        {"name": "wms", "key": "***", "scopes": ["orders:read", "ops"]}
    ]
    assert SECRET_KEY not in out


def test_invalid_configuration_exits_with_ex_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORDERHUB_BROKER__KIND", "kafka")

    assert main(["check-config"]) == EXIT_CONFIG

    err = capsys.readouterr().err
    assert "invalid configuration" in err
    assert "$.broker.kind" in err


def test_check_config_refuses_accounts_of_channels_not_installed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        "[channels]\nenabled = ['nowhere']\n"
        "[[channels.accounts]]\nchannel = 'nowhere'\nname = 'main'\n"
        f"[channels.accounts.webhook]\nbearer_tokens = ['{SECRET_TOKEN}']\n"
    )

    assert main(["check-config", "-c", str(path)]) == EXIT_CONFIG

    captured = capsys.readouterr()
    assert "enabled channels not installed: nowhere" in captured.err
    assert SECRET_TOKEN not in captured.out + captured.err


@pytest.mark.parametrize("command", ["worker", "scheduler"])
def test_worker_and_scheduler_need_an_external_broker(
    config: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "-c", str(config)]) == EXIT_CONFIG

    assert "broker.kind is 'embedded'" in capsys.readouterr().err


def test_migrate_creates_the_sqlite_directory_and_the_schema(config: Path) -> None:
    database = config.parent / "data" / "hub.db"

    assert main(["migrate", "-c", str(config)]) == 0

    assert database.exists()
    import sqlite3

    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {"orders", "channel_commands", "alembic_version"} <= tables


def test_web_settings_carry_the_api_keys_and_our_metrics(config: Path) -> None:
    web = web_settings(load_settings(config, environ={}))

    (key,) = web.api_keys
    assert (key.name, key.key, key.scopes) == ("wms", SECRET_KEY, frozenset({"orders:read", "ops"}))
    assert web.metrics_renderer is not None
    assert b"orderhub_commands_dispatched" in web.metrics_renderer()
