"""A channel's order with text PostgreSQL cannot store (JSON's ``\\u0000``, a lone
surrogate) in its id, customer, address and lines: applied with U+FFFD in their place, the
same way each time, instead of failing the worker on a database error; the raw message
keeps what the channel sent."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orderhub.application.services.intake import Processed, process_message
from tests.integration.web.test_long_poll_flood import Stack, stack
from tests.unit.web.support import PATH_TOKEN

pytestmark = pytest.mark.postgres
__all__ = ["stack"]  # the fixture, shared with the long-poll flood test

BAD = "a\u0000b\ud800c"
SHOWN = "a\ufffdb\ufffdc"


def order(status: str) -> dict[str, Any]:
    return {
        "id": f"NUL-{BAD}",
        "status": status,
        "order_number": BAD,
        "customer": {"name": BAD, "email": f"{BAD}@example.com"},
        "address": {"line1": BAD, "city": BAD},
        "lines": [{"id": BAD, "sku": BAD, "title": BAD, "quantity": 1, "units": [BAD]}],
    }


async def deliver(stack: Stack, data: dict[str, Any]) -> str:
    body = json.dumps(data).encode()  # ASCII: \u0000 and \ud800 as JSON escapes
    stored = await stack.client.post(f"/webhooks/stub/pathtoken?token={PATH_TOKEN}", content=body)
    assert stored.status_code == 202, stored.text
    message_id: str = stored.json()["message_id"]
    assert await process_message(stack.hub, message_id) is Processed.PROCESSED
    async with stack.hub.uow() as uow:
        message = await uow.inbox.get(message_id)
    assert message is not None
    assert message.body == body  # the channel's word, as sent
    return message_id


async def test_unstorable_characters_become_u_fffd_and_the_order_is_kept(stack: Stack) -> None:
    await deliver(stack, order("created"))
    await deliver(stack, order("updated"))  # the same order: its id maps the same way

    async with stack.hub.uow() as uow:
        found = await uow.orders.get_by_channel_id("stub", "pathtoken", f"NUL-{SHOWN}")
    assert found is not None
    assert found.channel_status == "updated"
    assert found.order_number == SHOWN
    assert found.customer is not None
    assert found.customer.name == SHOWN
    assert found.shipping_address is not None
    assert found.shipping_address.city == SHOWN
    (line,) = found.lines
    assert (line.channel_line_id, line.sku, line.title) == (SHOWN, SHOWN, SHOWN)
    assert [unit.channel_unit_id for unit in line.units] == [SHOWN]
