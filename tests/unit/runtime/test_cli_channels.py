"""``orderhub channels setup|check``, run through :func:`main` with the stub channel of
:mod:`.setup_channel` installed as a real ``orderhub.channels`` entry point."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from orderhub.entrypoints.cli import main

from .setup_channel import ALLOW_LIST, REMOTE, TOPICS

PUBLIC_URL = "https://hub.example.com"
PATH_TOKEN = "path-SECRET-token/+"

CONFIG = """
[database]
url = "sqlite+aiosqlite:///{db}"

[channels]
enabled = ["setupstub", "testchannel"]

[[channels.accounts]]
channel = "setupstub"
name = "main"

[[channels.accounts]]
channel = "setupstub"
name = "refused"
settings = {{ refused_topic = "order_cancelled", credentials = "bad" }}

[[channels.accounts]]
channel = "setupstub"
name = "exploding"
settings = {{ explode = true }}

[[channels.accounts]]
channel = "setupstub"
name = "tokened"
webhook = {{ path_tokens = ["{token}"] }}

[[channels.accounts]]
channel = "testchannel"
name = "demo"
"""


@pytest.fixture(autouse=True)
def _installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The stub channel as an installed distribution with an entry point, like any plugin."""
    monkeypatch.delenv("ORDERHUB_CONFIG", raising=False)
    site = tmp_path / "site"
    dist = site / "orderhub_setupstub-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: orderhub-setupstub\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text(
        "[orderhub.channels]\nsetupstub = tests.unit.runtime.setup_channel:plugin\n"
    )
    monkeypatch.syspath_prepend(str(site))
    REMOTE.reset()
    yield
    REMOTE.reset()


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "orderhub.toml"
    path.write_text(CONFIG.format(db=tmp_path / "hub.db", token=PATH_TOKEN))
    return str(path)


def setup(config: str, account: str, *extra: str) -> int:
    return main(
        [
            "channels",
            "setup",
            "setupstub",
            account,
            "--public-url",
            PUBLIC_URL,
            *extra,
            "-c",
            config,
        ]
    )


def test_setup_registers_the_webhooks_and_a_second_run_changes_nothing(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup(config, "main") == 0
    first = capsys.readouterr().out
    url = f"{PUBLIC_URL}/webhooks/setupstub/main"
    assert REMOTE.webhooks == {"main": dict.fromkeys(TOPICS, url)}
    assert setup(config, "main") == 0
    second = capsys.readouterr().out

    assert first.splitlines() == [
        f"setupstub/main: webhooks to {url}",
        "  created  webhook order_fulfillable",
        "  created  webhook order_cancelled",
        "  manual   ip allow-list              Ask the channel's support to allow the hub's "
        "outbound address.",
        "2 created, 1 manual: changed at the channel; 1 step(s) for an operator, see above",
    ]
    assert "  unchanged  webhook order_fulfillable" in second.splitlines()
    assert "created" not in second
    assert second.splitlines()[-1] == (
        "2 unchanged, 1 manual: nothing changed at the channel; 1 step(s) for an operator, "
        "see above"
    )
    assert REMOTE.webhooks == {"main": dict.fromkeys(TOPICS, url)}
    assert REMOTE.opened == ["main", "main"]  # only the account asked for
    assert REMOTE.closed == ["main", "main"]


def test_setup_updates_a_webhook_that_points_elsewhere(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    REMOTE.webhooks["main"] = {"order_fulfillable": "https://old.example.com/hook"}

    assert setup(config, "main") == 0

    lines = capsys.readouterr().out.splitlines()
    assert "  updated  webhook order_fulfillable" in lines
    assert "  created  webhook order_cancelled" in lines


def test_setup_as_json(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert setup(config, "main", "--json") == 0
    first = json.loads(capsys.readouterr().out)
    assert setup(config, "main", "--json") == 0
    second = json.loads(capsys.readouterr().out)

    assert first == {
        "channel": "setupstub",
        "account": "main",
        "public_url": PUBLIC_URL,
        "webhook_url": f"{PUBLIC_URL}/webhooks/setupstub/main",
        "changed": True,
        "failed": False,
        "steps": [
            {"what": "webhook order_fulfillable", "action": "created", "detail": ""},
            {"what": "webhook order_cancelled", "action": "created", "detail": ""},
            {"what": "ip allow-list", "action": "manual", "detail": ALLOW_LIST},
        ],
    }
    assert (second["changed"], [s["action"] for s in second["steps"]]) == (
        False,
        ["unchanged", "unchanged", "manual"],
    )


def test_a_failed_step_exits_1_after_the_report(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup(config, "refused") == 1

    lines = capsys.readouterr().out.splitlines()
    assert "  failed   webhook order_cancelled    422: bad url" in lines
    assert (
        lines[-1] == "1 created, 1 manual, 1 failed: FAILED: run it again once the cause is fixed"
    )
    assert REMOTE.closed == ["refused"]


def test_a_failed_step_in_json(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert setup(config, "refused", "--json") == 1

    report = json.loads(capsys.readouterr().out)
    assert (report["changed"], report["failed"]) == (True, True)


@pytest.mark.parametrize("action", ["setup", "check"])
def test_a_hook_that_raises_exits_1_with_its_message_and_no_traceback(
    config: str, capsys: pytest.CaptureFixture[str], action: str
) -> None:
    extra = ["--public-url", PUBLIC_URL] if action == "setup" else []

    assert main(["channels", action, "setupstub", "exploding", *extra, "-c", config]) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        f"orderhub channels {action}: setupstub/exploding: ChannelConfigurationError (HTTP 401): "
        "the client secret was refused"
    ) in captured.err
    assert "Traceback" not in captured.err
    assert REMOTE.closed == ["exploding"]  # closed all the same


@pytest.mark.parametrize(
    ("channel", "account", "message"),
    [
        ("nowhere", "main", "channel 'nowhere' is not installed or not enabled (known: "),
        ("setupstub", "nobody", "no account 'nobody' is configured for channel 'setupstub' "),
    ],
)
@pytest.mark.parametrize("action", ["setup", "check"])
def test_an_unknown_channel_or_account_exits_2(
    config: str,
    capsys: pytest.CaptureFixture[str],
    action: str,
    channel: str,
    account: str,
    message: str,
) -> None:
    extra = ["--public-url", PUBLIC_URL] if action == "setup" else []

    assert main(["channels", action, channel, account, *extra, "-c", config]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"orderhub channels {action}: {message}" in captured.err
    assert "Traceback" not in captured.err
    assert "orderhub.start" not in captured.err  # the message is not buried under a log
    assert REMOTE.opened == []


def test_the_known_names_are_listed(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["channels", "check", "setupstub", "nobody", "-c", config]) == 2

    assert "(known: exploding, main, refused, tokened)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "url", ["hub.example.com", "ftp://hub.example.com", "https://", "https://h.example?x=1"]
)
def test_a_bad_public_url_is_a_usage_error(
    config: str, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["channels", "setup", "setupstub", "main", "--public-url", url, "-c", config])

    assert exited.value.code == 2
    assert "--public-url" in capsys.readouterr().err
    assert REMOTE.opened == []


def test_the_public_url_may_have_a_path_and_the_path_token_is_masked(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    public = "https://hub.example.com/orderhub/"

    code = main(["channels", "setup", "setupstub", "tokened", "--public-url", public, "-c", config])

    assert code == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        "setupstub/tokened: webhooks to https://hub.example.com/orderhub/webhooks/setupstub/"
        "tokened?token=***"
    )
    assert "SECRET" not in out
    # the adapter got the real URL, token included
    (registered,) = set(REMOTE.webhooks["tokened"].values())
    assert registered.endswith("?token=path-SECRET-token%2F%2B")


def test_check_prints_each_item_and_changes_nothing(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert setup(config, "main") == 0
    capsys.readouterr()
    before = json.dumps(REMOTE.webhooks, sort_keys=True)

    assert main(["channels", "check", "setupstub", "main", "-c", config]) == 0

    url = f"{PUBLIC_URL}/webhooks/setupstub/main"
    assert capsys.readouterr().out.splitlines() == [
        "setupstub/main: ok",
        "  ok  credentials",
        f"  ok  webhook order_fulfillable  {url}",
        f"  ok  webhook order_cancelled    {url}",
    ]
    assert json.dumps(REMOTE.webhooks, sort_keys=True) == before
    assert REMOTE.closed == ["main", "main"]


def test_a_failed_or_misconfigured_check_exits_1(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["channels", "check", "setupstub", "main", "--json", "-c", config]) == 1
    not_set_up = json.loads(capsys.readouterr().out)
    assert main(["channels", "check", "setupstub", "refused", "--json", "-c", config]) == 1
    misconfigured = json.loads(capsys.readouterr().out)

    assert not_set_up["status"] == "failed"
    assert not_set_up["items"][1] == {
        "what": "webhook order_fulfillable",
        "status": "failed",
        "detail": "not registered",
    }
    assert misconfigured["status"] == "misconfigured"  # the worst item
    assert misconfigured["items"][0]["detail"] == "401 from /token"
    assert REMOTE.webhooks == {}


def test_a_channel_without_hooks_has_nothing_to_set_up_and_skips_its_check(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_code = main(
        ["channels", "setup", "testchannel", "demo", "--public-url", PUBLIC_URL, "-c", config]
    )
    setup_out = capsys.readouterr().out
    check_code = main(["channels", "check", "testchannel", "demo", "-c", config])
    check_out = capsys.readouterr().out

    assert (setup_code, check_code) == (0, 0)
    assert setup_out.splitlines() == [
        f"testchannel/demo: webhooks to {PUBLIC_URL}/webhooks/testchannel/demo",
        "nothing to set up for this channel",
    ]
    assert check_out.splitlines() == [
        "testchannel/demo: skipped",
        "  skipped  account  the testchannel adapter does not check its accounts",
    ]
