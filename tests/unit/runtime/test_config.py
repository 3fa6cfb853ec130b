"""Settings: TOML, environment overrides, validation messages, redaction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orderhub.application.hub import RetryPolicy
from orderhub.channels.spi import AccountConfig, WebhookAuth
from orderhub.config import ConfigError, Settings, load_settings

REPO = Path(__file__).resolve().parents[3]

SECRETS = {
    "api": "wms-api-key-0123456789-SECRET1",
    "hmac": "whsec_SECRET2c2VjcmV0",
    "bearer": "bearer-SECRET3",
    "path": "path-SECRET4",
    "client_secret": "SECRET5-client",
    "password": "SECRET6-pw",
    "db_password": "SECRET7db",
    "nested_token": "SECRET8-nested",
}

FULL_TOML = f"""
[database]
url = "postgresql+asyncpg://hub:{SECRETS["db_password"]}@db:5432/orderhub"

[broker]
kind = "rabbitmq"
url = "amqp://guest:guest@mq:5672/"

[api]
port = 9000

[[api.keys]]
name = "wms"
key = "{SECRETS["api"]}"
scopes = ["orders:read", "orders:write"]

[channels]
enabled = ["topi", "octopia"]

[[channels.accounts]]
channel = "topi"
name = "main"

[channels.accounts.settings]
base_url = "https://topi.example"
client_id = "visible-client-id"
client_secret = "{SECRETS["client_secret"]}"
Password = "{SECRETS["password"]}"
oauth = {{ refresh_token = "{SECRETS["nested_token"]}", scope = "orders" }}

[channels.accounts.webhook]
hmac_secrets = ["{SECRETS["hmac"]}"]
bearer_tokens = ["{SECRETS["bearer"]}"]
path_tokens = ["{SECRETS["path"]}"]
tolerance_seconds = 120

[[channels.accounts]]
channel = "octopia"
name = "fr"

[retry]
base_seconds = 1.5
max_attempts = 4

[scheduler]
sweep_interval_seconds = 15

[logging]
level = "DEBUG"
json = true
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "orderhub.toml"
    path.write_text(text)
    return path


def test_defaults_without_file_or_environment() -> None:
    settings = load_settings(environ={})

    assert settings == Settings()
    assert settings.database.url == "sqlite+aiosqlite:///./var/orderhub.db"
    assert settings.broker.kind == "embedded"
    assert settings.channels.enabled_names is None  # every installed plugin
    assert settings.logging.json is None


def test_file_is_parsed_into_typed_sections(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, FULL_TOML), environ={})

    assert settings.broker.kind == "rabbitmq"
    assert settings.api.port == 9000
    assert settings.api.keys[0].scopes == ("orders:read", "orders:write")
    assert settings.channels.enabled_names == ("topi", "octopia")
    assert settings.scheduler.sweep_interval_seconds == 15.0
    assert settings.logging.level == "DEBUG"
    assert settings.logging.json is True


def test_config_path_comes_from_the_environment_when_not_given(tmp_path: Path) -> None:
    path = write(tmp_path, "[api]\nport = 8123\n")

    assert load_settings(environ={"ORDERHUB_CONFIG": str(path)}).api.port == 8123


def test_environment_overrides_the_file_and_is_typed(tmp_path: Path) -> None:
    path = write(tmp_path, FULL_TOML)
    env = {
        "ORDERHUB_DATABASE__URL": "sqlite+aiosqlite:///other.db",
        "ORDERHUB_API__PORT": "9100",
        "ORDERHUB_LOGGING__JSON": "no",
        "ORDERHUB_RETRY__MAX_SECONDS": "30.5",
        "ORDERHUB_CHANNELS__ENABLED": "topi, octopia ,spresso",
        "ORDERHUB_SCHEDULER__GRACE_SECONDS": "0",
        "ORDERHUB_UNRELATED": "ignored: no section separator",
        "ORDERHUB_CONFIG": "ignored too: the path was given",
    }

    settings = load_settings(path, environ=env)

    assert settings.database.url == "sqlite+aiosqlite:///other.db"
    assert settings.api.port == 9100
    assert settings.logging.json is False
    assert settings.retry.max_seconds == 30.5
    assert settings.channels.enabled == ("topi", "octopia", "spresso")
    assert settings.scheduler.grace_seconds == 0
    assert settings.broker.kind == "rabbitmq"  # untouched values stay


def test_environment_takes_json_for_lists_of_tables() -> None:
    keys = [{"name": "wms", "key": "k" * 20, "scopes": ["ops"]}]
    accounts = [{"channel": "topi", "name": "main", "settings": {"client_id": "x"}}]
    settings = load_settings(
        environ={
            "ORDERHUB_API__KEYS": json.dumps(keys),
            "ORDERHUB_CHANNELS__ACCOUNTS": json.dumps(accounts),
            "ORDERHUB_CHANNELS__ENABLED": "all",
        }
    )

    assert settings.api.keys[0].name == "wms"
    assert settings.api.keys[0].scopes == ("ops",)
    assert settings.channels.accounts[0].settings == {"client_id": "x"}
    assert settings.channels.enabled_names is None


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ("[api]\nport = 70000\n", {}, "$.api.port"),
        ("[api]\nprot = 1\n", {}, "unknown field `prot`"),
        ("[broker]\nkind = 'kafka'\n", {}, "$.broker.kind"),
        ("[broker]\nkind = 'redis'\n", {}, "broker.kind 'redis' needs broker.url"),
        ("[broker]\nkind = 'rabbitmq'\nurl = 'redis://x'\n", {}, "needs broker.url = 'amqp://"),
        ("[broker]\nurl = 'redis://x'\n", {}, "broker.kind is 'embedded'"),
        ("[logging]\nlevel = 'LOUD'\n", {}, "$.logging.level"),
        ("[retry]\nbase_seconds = 0\n", {}, "$.retry.base_seconds"),
        ("[retry]\nbase_seconds = 90\nmax_seconds = 60\n", {}, "must not exceed"),
        ("[[api.keys]]\nname = 'w'\nkey = 'short'\n", {}, "$.api.keys[0].key"),
        (
            "[[api.keys]]\nname = 'w'\nkey = '0123456789abcdef'\nscopes = ['admin']\n",
            {},
            "$.api.keys[0].scopes[0]",
        ),
        (
            "[[api.keys]]\nname = 'w'\nkey = '0123456789abcdef'\n"
            "[[api.keys]]\nname = 'w'\nkey = 'fedcba9876543210'\n",
            {},
            "the name 'w' is used twice",
        ),
        (
            "[channels]\nenabled = ['topi']\n[[channels.accounts]]\nchannel = 'spresso'\n"
            "name = 'x'\n",
            {},
            "not in channels.enabled",
        ),
        (
            "[[channels.accounts]]\nchannel = 'topi'\nname = 'a'\n"
            "[[channels.accounts]]\nchannel = 'topi'\nname = 'a'\n",
            {},
            "topi/a appears twice",
        ),
        ("", {"ORDERHUB_API__PORT": "eighty"}, "$.api.port"),
        ("", {"ORDERHUB_LOGGING__JSON": "maybe"}, "ORDERHUB_LOGGING__JSON: expected true"),
        ("", {"ORDERHUB_DATABSE__URL": "x"}, "ORDERHUB_DATABSE__URL: there is no setting"),
        ("", {"ORDERHUB_API__KEYS": "[{broken"}, "ORDERHUB_API__KEYS: not valid JSON"),
        ("[api\n", {}, "is not valid TOML"),
    ],
)
def test_invalid_configuration_says_what_and_where(
    tmp_path: Path, toml: str, env: dict[str, str], message: str
) -> None:
    path = write(tmp_path, toml)

    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=env)

    assert message in str(caught.value)


def test_error_names_the_file_and_the_environment_variables(tmp_path: Path) -> None:
    path = write(tmp_path, "")

    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={"ORDERHUB_API__PORT": "0"})

    assert str(path) in str(caught.value)
    assert "ORDERHUB_API__PORT" in str(caught.value)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_redacted_settings_contain_no_secret(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, FULL_TOML), environ={})

    redacted = settings.redacted()
    dumped = json.dumps(redacted)

    for secret in SECRETS.values():
        assert secret not in dumped
    # ... while what an operator needs to see is still there
    account = redacted["channels"]["accounts"][0]
    assert account["settings"]["client_id"] == "visible-client-id"
    assert account["settings"]["base_url"] == "https://topi.example"
    assert account["settings"]["oauth"]["scope"] == "orders"
    assert account["webhook"]["hmac_secrets"] == ["***"]
    assert redacted["api"]["keys"][0]["name"] == "wms"
    assert redacted["database"]["url"] == "postgresql+asyncpg://hub:***@db:5432/orderhub"
    assert redacted["broker"]["url"] == "amqp://guest:***@mq:5672/"


def test_repr_of_settings_shows_no_secret(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, FULL_TOML), environ={})

    text = repr(settings)

    for secret in SECRETS.values():
        assert secret not in text
    assert "visible-client-id" not in text  # account settings are hidden whole in repr


def test_account_configs_for_the_registry(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, FULL_TOML), environ={})

    configs = settings.channels.account_configs()

    assert configs[0] == AccountConfig(
        channel="topi",
        name="main",
        settings={
            "base_url": "https://topi.example",
            "client_id": "visible-client-id",
            "client_secret": SECRETS["client_secret"],
            "Password": SECRETS["password"],
            "oauth": {"refresh_token": SECRETS["nested_token"], "scope": "orders"},
        },
        webhook=WebhookAuth(
            hmac_secrets=(SECRETS["hmac"],),
            bearer_tokens=(SECRETS["bearer"],),
            path_tokens=(SECRETS["path"],),
            tolerance_seconds=120,
        ),
    )
    assert configs[1].webhook == WebhookAuth()
    assert not configs[1].webhook.configured


def test_retry_policy_from_settings(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, FULL_TOML), environ={})

    assert settings.retry.policy() == RetryPolicy(
        base_seconds=1.5, max_seconds=600.0, max_attempts=4, lease_seconds=120.0
    )


def test_settings_are_frozen() -> None:
    settings = load_settings(environ={})

    with pytest.raises(AttributeError):
        settings.api.port = 1  # type: ignore[misc]


@pytest.mark.parametrize("name", ["embedded.toml", "orderhub.example.toml"])
def test_shipped_configurations_are_valid(name: str) -> None:
    settings = load_settings(REPO / "deploy" / name, environ={})

    assert settings.channels.accounts


def test_embedded_configuration_is_what_make_run_needs() -> None:
    settings = load_settings(REPO / "deploy" / "embedded.toml", environ={})

    assert settings.broker.kind == "embedded"
    assert settings.database.is_sqlite
    assert settings.channels.enabled_names == ("testchannel",)
    (account,) = settings.channels.accounts
    assert (account.channel, account.name) == ("testchannel", "demo")
    assert account.webhook.auth().configured
    (key,) = settings.api.keys
    assert set(key.scopes) == {"orders:read", "orders:write", "ops"}
