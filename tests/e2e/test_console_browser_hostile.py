"""A channel's order carrying HTML and JavaScript, in a real headless Chromium: the
console shows it as text on every page that names it, and no script runs (no dialog, no
injected element: the Content-Security-Policy would stop an inline handler anyway, so the
elements are what shows the escaping). The HTML-level checks of every page are in
``tests/unit/web/test_web_hostile_input.py``; this is the browser's word on it."""

from __future__ import annotations

from typing import Final

from playwright.sync_api import Dialog, Page, expect

from .conftest import HubFactory
from .support import OPS_KEY, order_document
from .test_console_browser import browser, page, sign_in

__all__ = ["browser", "page"]  # the fixtures, shared with the console's other browser tests

SCRIPT: Final = "<script>alert(1)</script>"
IMG: Final = '"><img src=x onerror=alert(2)>'
SVG: Final = "<svg onload=alert(3)>"


def test_a_hostile_order_runs_no_script_in_the_browser(hub_factory: HubFactory, page: Page) -> None:
    hub = hub_factory("embedded")
    document = order_document("XSS-1", "created", [("L1", 1)], number=f"N-{SCRIPT}")
    document["customer"] = {"name": f"{SCRIPT}{IMG}", "email": "c@example.com"}
    document["shipping_address"] = {
        "name": IMG, "line1": SVG, "city": "\x1b[31mParis", "country_code": "FR",
    }  # fmt: skip
    document["lines"][0].update(title=IMG, sku=SCRIPT)
    answer = hub.channel_server.send_order(hub, "topi", document)
    assert answer["status"] == 202, answer
    order_id = str(hub.wait_for_order("topi", "XSS-1")["id"])
    dialogs: list[str] = []

    def refuse(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", refuse)

    sign_in(page, hub, OPS_KEY)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    page.goto(f"{hub.url}/console/orders/{order_id}")
    expect(page.get_by_role("heading", name="Order XSS-1")).to_be_visible()
    for shown in (f"{SCRIPT}{IMG}", f"N-{SCRIPT}", SVG, "\\x1b[31mParis"):
        expect(page.get_by_text(shown, exact=False).first).to_be_visible()
    assert page.locator("main img, main svg, main script").count() == 0
    page.goto(f"{hub.url}/console/orders/{order_id}/messages")
    expect(page.get_by_text(SVG, exact=False).first).to_be_visible()  # the raw body
    page.goto(f"{hub.url}/console/orders?q=XSS")
    expect(page.get_by_role("link", name="XSS-1")).to_be_visible()
    assert page.locator("main img, main script").count() == 0
    assert dialogs == []
