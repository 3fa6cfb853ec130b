"""API keys limited to channels and accounts: the TOML shape, and its checks at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from orderhub.application.access import AccountLimit
from orderhub.config import ConfigError, Settings, load_settings
from orderhub.entrypoints.cli import web_settings

ACCOUNTS = """
[[channels.accounts]]
channel = "topi"
name = "shop-de"

[[channels.accounts]]
channel = "octopia"
name = "shop-fr"

[[channels.accounts]]
channel = "octopia"
name = "shop-be"
"""


def keys(*limits: str) -> str:
    return ACCOUNTS + "".join(
        f"""
[[api.keys]]
name = "key-{n}"
key = "secret-{n}-0123456789abcdef"
scopes = ["orders:read", "orders:write"]
{limit}
"""
        for n, limit in enumerate(limits)
    )


def load(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "orderhub.toml"
    path.write_text(text)
    return load_settings(path, environ={})


def test_a_key_names_channels_and_accounts(tmp_path: Path) -> None:
    both = 'channels = ["topi"]\naccounts = ["octopia/shop-fr"]'
    settings = load(tmp_path, keys(both, 'accounts = ["topi/shop-de"]', ""))
    limited, account_only, unlimited = settings.api.keys
    assert limited.account_limit() == AccountLimit(
        channels=frozenset({"topi"}), accounts=frozenset({("octopia", "shop-fr")})
    )
    assert account_only.account_limit() == AccountLimit(accounts=frozenset({("topi", "shop-de")}))
    assert unlimited.account_limit() is None
    assert "accounts=('octopia/shop-fr',)" in repr(limited)
    assert "secret" not in repr(limited)
    # the web app gets the limit with the key
    web = {key.name: key.limit for key in web_settings(settings).api_keys}
    assert web == {
        "key-0": limited.account_limit(),
        "key-1": account_only.account_limit(),
        "key-2": None,
    }


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        ('channels = ["topii"]', "'key-0' is limited to channel 'topii', which has no account"),
        (
            'accounts = ["topi/shop-fr"]',
            "'key-0' is limited to account 'topi/shop-fr', which is not in channels.accounts",
        ),
        ('accounts = ["topi"]', "Expected `str` matching regex"),
        ('accounts = ["topi/shop/de"]', "Expected `str` matching regex"),
        ('channels = ["to pi"]', "Expected `str` matching regex"),
    ],
)
def test_an_unknown_or_malformed_limit_is_a_config_error(
    tmp_path: Path, limit: str, message: str
) -> None:
    with pytest.raises(ConfigError, match="invalid configuration") as error:
        load(tmp_path, keys(limit))
    assert message in str(error.value)


def test_the_environment_can_limit_a_key(tmp_path: Path) -> None:
    path = tmp_path / "orderhub.toml"
    path.write_text(ACCOUNTS)
    settings = load_settings(
        path,
        environ={
            "ORDERHUB_API__KEYS": '[{"name": "agency", "key": "agency-key-0123456789",'
            ' "accounts": ["octopia/shop-be"]}]'
        },
    )
    (key,) = settings.api.keys
    assert key.account_limit() == AccountLimit(accounts=frozenset({("octopia", "shop-be")}))
