"""``/schema`` works offline, and the OpenAPI document says what every feed event's
``data`` holds (docs/feed.md too: ``tests/unit/test_feed_docs.py``)."""

from __future__ import annotations

import re
from typing import Final

from orderhub.domain.events import EventType
from orderhub.entrypoints.web.feed_events import EVENT_DATA

from .support import Harness

LINKS: Final = re.compile(r"""(?:href|src|action)\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)


async def test_the_schema_page_lists_the_operations_and_loads_nothing_from_elsewhere(
    harness: Harness,
) -> None:
    response = await harness.client.get("/schema")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for operation in ("/api/v1/orders/{order_id}/accept", "/api/v1/feed", "/webhooks/"):
        assert operation in page
    assert "FeedEventData.order.received" in page
    assert "<script" not in page.lower()
    assert "url(" not in page
    links = LINKS.findall(page)
    assert links, "the page links to the machine-readable document"
    for link in links:
        assert not re.match(r"^([a-z][a-z0-9+.-]*:|//)", link, re.IGNORECASE), link


async def test_the_machine_readable_documents_are_served(harness: Harness) -> None:
    for path in ("/schema/openapi.json", "/schema/openapi.yaml"):
        assert (await harness.client.get(path)).status_code == 200


async def test_every_event_type_has_its_data_in_the_openapi_document(harness: Harness) -> None:
    schemas = (await harness.client.get("/schema/openapi.json")).json()["components"]["schemas"]

    for event_type in EventType:
        schema = schemas[f"FeedEventData.{event_type.value}"]
        assert schema["properties"], event_type
        assert set(schema["properties"]) == set(EVENT_DATA[event_type.value].fields)


def test_the_catalogue_documents_event_types_that_exist() -> None:
    assert set(EVENT_DATA) == {t.value for t in EventType}
