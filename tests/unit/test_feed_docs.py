"""docs/feed.md documents every feed event type, with each field of its ``data`` as the
OpenAPI document has it (one catalogue: ``orderhub.entrypoints.web.feed_events``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from orderhub.domain.events import EventType
from orderhub.entrypoints.web.feed_events import EVENT_DATA

FEED_DOC: Final = Path(__file__).parents[2] / "docs" / "feed.md"


def _sections() -> dict[str, str]:
    """The text under each ``### `type` `` heading of docs/feed.md."""
    text = FEED_DOC.read_text(encoding="utf-8")
    parts = re.split(r"^### `([a-z_.]+)`\s*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1].split("\n## ")[0] for i in range(1, len(parts), 2)}


def test_every_event_type_has_a_section_naming_each_field_of_its_data() -> None:
    sections = _sections()

    missing = [t.value for t in EventType if t.value not in sections]
    assert not missing, f"docs/feed.md lacks a '### `type`' section for {missing}"
    for event_type in EventType:
        section = sections[event_type.value]
        for field in EVENT_DATA[event_type.value].fields:
            assert f"`{field}`" in section, f"{event_type.value}: `{field}` is not documented"


def test_the_doc_names_no_event_type_that_does_not_exist() -> None:
    assert set(_sections()) <= {t.value for t in EventType}
