"""``orderhub channels setup|check`` hooks against the simulator: webhooks registered once
per event, idempotently; manual mode; a custom registration module."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from spresso_hub import SpressoDriver

from orderhub.channels.spi import CheckItem, CheckStatus, SetupAction, SetupStep
from orderhub_spresso.client import SpressoClient
from orderhub_spresso.plugin import SpressoAccount


def opened(driver: SpressoDriver, **settings: object) -> SpressoAccount:
    config = driver.account_config()
    return SpressoAccount(
        type(config)(channel=config.channel, name="main", settings={**config.settings, **settings})
    )


async def test_setup_registers_both_webhooks_once_and_moves_them(driver: SpressoDriver) -> None:
    acc = opened(driver)
    try:
        first = await acc.setup("https://hub.example")
        assert [(s.what, s.action) for s in first.steps] == [
            ("webhook order_fulfillable", SetupAction.CREATED),
            ("webhook order_cancelled", SetupAction.CREATED),
        ]
        again = await acc.setup("https://hub.example/")
        assert {s.action for s in again.steps} == {SetupAction.UNCHANGED}
        assert not again.changed
        moved = await acc.setup("https://new-hub.example")
        assert {s.action for s in moved.steps} == {SetupAction.UPDATED}
        hooks = await driver.control("GET", "/_sim/calls?method=POST&path=/v1/webhooks")
        assert len(hooks) == 2
        registered = await acc.client.request("GET", "/v1/webhooks")
        assert sorted((h["event"], h["url"]) for h in registered.json()) == [
            (event, f"https://new-hub.example/webhooks/spresso/main/{event}")
            for event in ("order_cancelled", "order_fulfillable")
        ]  # one URL per event: the path names the event
        check = await acc.check()
        assert check.status is CheckStatus.OK
    finally:
        await acc.aclose()


async def test_check_fails_until_the_webhooks_are_registered(driver: SpressoDriver) -> None:
    acc = opened(driver)
    try:
        report = await acc.check()
        assert report.status is CheckStatus.FAILED
        bad = opened(driver, client_secret="wrong")
        report = await bad.check()
        assert report.status is CheckStatus.MISCONFIGURED
        await bad.aclose()
    finally:
        await acc.aclose()


async def test_manual_mode_calls_nothing_and_says_what_to_ask(driver: SpressoDriver) -> None:
    acc = opened(driver, registration="manual")
    try:
        report = await acc.setup("https://hub.example")
        assert {s.action for s in report.steps} == {SetupAction.MANUAL}
        details = [s.detail for s in report.steps]
        assert "https://hub.example/webhooks/spresso/main/order_fulfillable" in details[0]
        assert "https://hub.example/webhooks/spresso/main/order_cancelled" in details[1]
        assert await driver.control("GET", "/_sim/calls?path=/v1/webhooks") == []
    finally:
        await acc.aclose()


class Recording:
    seen: list[Mapping[str, str]] = []

    async def register(self, client: SpressoClient, urls: Mapping[str, str]) -> Sequence[SetupStep]:
        Recording.seen.append(dict(urls))
        return [SetupStep(what="custom", action=SetupAction.CREATED)]

    async def check(self, client: SpressoClient, urls: Mapping[str, str]) -> Sequence[CheckItem]:
        return [CheckItem(what="custom", status=CheckStatus.OK)]


def factory(settings: Mapping[str, object]) -> Recording:
    return Recording()


async def test_the_registration_module_is_swappable(driver: SpressoDriver) -> None:
    acc = opened(driver, registration=f"{__name__}:factory")
    try:
        report = await acc.setup("https://hub.example")
        assert [s.what for s in report.steps] == ["custom"]
        assert Recording.seen[-1] == {
            "order_fulfillable": "https://hub.example/webhooks/spresso/main/order_fulfillable",
            "order_cancelled": "https://hub.example/webhooks/spresso/main/order_cancelled",
        }
    finally:
        await acc.aclose()
