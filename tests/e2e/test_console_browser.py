"""The operator console in a real headless Chromium (Debian's ``chromium``, driven by
Playwright's Python API; no browser is ever downloaded): against the hub as a real
process, an operator signs in, sees a failed command on the overview, opens its order,
retries it after the confirmation and watches it succeed; a missing or wrong key and a
forged CSRF token are refused. A missing browser fails these tests, never skips them."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from .conftest import HubFactory
from .support import OPS_KEY, WMS_KEY, Hub, order_document, wait_until

CHROMIUM: Final = os.environ.get("ORDERHUB_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS_ENV: Final = "ORDERHUB_CONSOLE_SCREENSHOTS"  # a directory: save the main pages


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), (
        f"no Chromium at {CHROMIUM}: apt-get install -y chromium (the console tests need it)"
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def failed_command(hub: Hub, channel_order_id: str) -> tuple[str, str]:
    """An order whose accept the channel refused for good (a 400): (order id, command id)."""
    answer = hub.channel_server.send_order(
        hub, "topi", order_document(channel_order_id, "created", [("L1", 1)])
    )
    assert answer["status"] == 202, answer
    order_id = str(hub.wait_for_order("topi", channel_order_id)["id"])
    hub.channel_server.add_fault(kind="status", status=400, count=1, message="stock mismatch")
    command_id = hub.command(order_id, "accept", None)
    wait_until(
        lambda: hub.order(order_id)["failed_commands"],
        "the accept to fail",
        alive=hub.check_alive,
    )
    return order_id, command_id


def sign_in(page: Page, hub: Hub, key: str) -> None:
    page.goto(f"{hub.url}/console/")
    expect(page).to_have_url(re.compile(r"/console/login"))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()


def shoot(page: Page, name: str) -> None:
    directory = os.environ.get(SCREENSHOTS_ENV)
    if directory:
        page.screenshot(path=str(Path(directory) / f"console-{name}.png"), full_page=True)


def test_an_operator_retries_a_failed_command_and_watches_it_succeed(
    hub_factory: HubFactory, page: Page
) -> None:
    hub = hub_factory("embedded")
    order_id, command_id = failed_command(hub, "CONSOLE-1")

    sign_in(page, hub, OPS_KEY)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_text("Failed commands (1)")).to_be_visible()
    row = page.locator("tr.failed-command")
    expect(row).to_contain_text("stock mismatch")
    shoot(page, "overview")

    row.get_by_role("link", name=order_id).click()
    expect(page.get_by_role("heading", name="Order CONSOLE-1")).to_be_visible()
    command = page.locator(f"#command-{command_id}")
    expect(command.locator(".command-state")).to_have_text("failed")
    shoot(page, "order")

    command.get_by_role("link", name="Retry").click()
    expect(
        page.get_by_role("heading", name="Send this command to the marketplace again")
    ).to_be_visible()
    shoot(page, "confirm")
    page.get_by_role("button", name="Retry command").click()
    expect(page.get_by_role("status")).to_contain_text("command retried")
    # the page refreshes itself while the command is on its way
    expect(page.locator(f"#command-{command_id} .command-state")).to_have_text(
        "succeeded", timeout=30_000
    )
    expect(page.get_by_text("by operator")).to_be_visible()  # the timeline names who
    succeeded = [
        e
        for e in hub.feed()
        if e["type"] == "command.succeeded" and e["data"]["command_id"] == command_id
    ]
    assert len(succeeded) == 1
    assert hub.order(order_id)["failed_commands"] == []

    page.get_by_role("link", name="Orders").click()
    page.get_by_label("Search: channel order id, order number, customer or SKU").fill("console-1")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("link", name="CONSOLE-1")).to_be_visible()
    shoot(page, "orders")


def test_missing_and_wrong_keys_and_forged_csrf_are_refused(
    hub_factory: HubFactory, page: Page
) -> None:
    hub = hub_factory("embedded")
    _, command_id = failed_command(hub, "CONSOLE-2")

    sign_in(page, hub, "")  # the field is required: the browser does not even send it
    expect(page).to_have_url(re.compile(r"/console/login"))
    sign_in(page, hub, "not-a-key-0000000000000000")
    expect(page.get_by_role("alert")).to_have_text("That API key is not valid.")
    sign_in(page, hub, WMS_KEY)
    expect(page.get_by_role("alert")).to_contain_text("neither the ops nor the console:read")
    shoot(page, "sign-in-refused")
    page.goto(f"{hub.url}/console/")
    expect(page).to_have_url(re.compile(r"/console/login"))

    sign_in(page, hub, OPS_KEY)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    page.goto(f"{hub.url}/console/commands/{command_id}/retry")
    page.locator("input[name=csrf_token]").last.evaluate("(input) => { input.value = 'forged'; }")
    page.get_by_role("button", name="Retry command").click()
    expect(page.get_by_role("heading", name="Request refused")).to_be_visible()
    assert hub.order(hub_order_id(hub, "CONSOLE-2"))["failed_commands"][0]["id"] == command_id


def hub_order_id(hub: Hub, channel_order_id: str) -> str:
    found = hub.find_order("topi", channel_order_id)
    assert found is not None
    return str(found["id"])
