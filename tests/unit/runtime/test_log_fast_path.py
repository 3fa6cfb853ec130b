"""The quick way through the redaction (and the renderer built once) writes what the full
scan wrote: whatever text is logged, under whatever key, the same masked line."""

from __future__ import annotations

import io
import json
import logging
import uuid
from typing import Any, Final

import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderhub import logging as hub_logging
from orderhub import sanitize
from orderhub.logging import (
    MAX_LOGGED_CHARS,
    MAX_TRACEBACK_CHARS,
    configure_logging,
    get_logger,
    redact_secrets,
)
from orderhub.sanitize import redact_text

PROPERTY: Final = settings(
    max_examples=400, derandomize=True, database=None, deadline=None,
    suppress_health_check=list(HealthCheck),
)  # fmt: skip

# what the rules look for, in pieces: credential words in any case, their schemes and
# shapes, card numbers whole and cut short, digit runs with separators, and the characters
# whose lower case is not one character (or is an ASCII letter: the Kelvin sign, long s)
WORDS: Final = [*sanitize._CREDENTIAL_WORDS, "Bearer ", "BASIC ", "Token ", "api-KEY"]
PIECES: Final = [
    "=", "?key=", "&sig=", ";code=", ": ", '"', "'", " ", "-", "_", ".", "/",
    "4111 1111 1111 1111", "4111-1111-1111-1111", "5555555555554444", "378282246310005",
    "4111 1111 1111", "1234567890123", "12-34-56-78-90-12-3", "2026-11-30T05:18:18.296026Z",
    "eyJhbGciOiJI.eyJzdWIiOiIx.c2ln", "whsec_c2VjcmV0c2VjcmV0", "\u0130", "\u212a", "\u017f",
    "\x1b[31m", "\r\n", "\u202e",
]  # fmt: skip


def _any_case(word: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda upper: "".join(c.upper() if u else c for c, u in zip(word, upper, strict=True))
    )


pieces = st.one_of(
    st.sampled_from(WORDS).flatmap(_any_case),
    st.sampled_from(PIECES),
    st.text("0123456789 -", max_size=24),
    st.text(max_size=12),
    st.uuids().map(str),
)
texts = st.one_of(
    st.lists(pieces, max_size=10).map("".join),
    st.text(max_size=80),
    st.text("0123456789 -=abcdeknostwy_", max_size=60),
)


def slow(key: object, text: str) -> str:
    """What every string went through before the quick path."""
    limit = MAX_TRACEBACK_CHARS if key == "exception" else None
    return redact_text(hub_logging._clipped(text, limit))


@PROPERTY
@given(text=texts)
def test_the_quick_path_gives_what_the_full_scan_gives(text: str) -> None:
    first = hub_logging._redacted_text(text)
    again = hub_logging._redacted_text(text)  # now perhaps from the remembered texts

    assert first == again == slow(None, text)
    if sanitize.nothing_to_mask(text):
        assert redact_text(text) == text  # plain means: nothing the rules would change


@PROPERTY
@given(
    event=st.dictionaries(
        st.one_of(
            st.sampled_from(["event", "exception", "token", "x-api-key", "note", "level"]),
            st.text(max_size=10),
        ),
        st.one_of(texts, st.none(), st.integers(), st.booleans(), st.lists(texts, max_size=3)),
        max_size=8,
    )
)
def test_the_processor_masks_as_it_did(event: dict[str, Any]) -> None:
    def reference(key: object, value: Any) -> Any:
        if isinstance(key, str) and value is not None and hub_logging._secret_key(key):
            return "***"
        if isinstance(value, str):
            return slow(key, value)
        if isinstance(value, list):
            return [reference(None, item) for item in value]
        return value

    expected = {k: reference(k, v) for k, v in event.items() if k != "color_message"}

    assert redact_secrets(None, "info", dict(event)) == expected


def test_the_values_of_a_webhook_line_take_the_quick_path() -> None:
    """Else the quick path would be no quicker: ids, names, a timestamp, an access line."""
    for value in (
        "webhook stored", "orderhub.entrypoints.web.routes.webhooks",
        "bade7cd0209c4053a569865fbd93f5d7", "f376368e-369b-4c63-95e4-8069dc4118ff",
        "2026-11-30T05:18:18.296026Z", "info", "hmac", "octopia",
        '127.0.0.1:53412 - "POST /webhooks/octopia/main HTTP/1.1" 202',
    ):  # fmt: skip
        assert sanitize.nothing_to_mask(value), value
    for value in ("token=abc", "Bearer abc.def", "4111 1111 1111 1111", "x?sig=1"):
        assert not sanitize.nothing_to_mask(value), value


def test_only_texts_with_nothing_to_mask_are_remembered_and_not_too_many() -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", json=True, stream=stream)
    log = get_logger("orderhub.test")
    for index in range(hub_logging._REMEMBERED + 100):
        log.info("stored", message_id=str(uuid.uuid4()), note=f"token=SECRET-{index}")

    remembered = list(hub_logging._PLAIN_SEEN)
    assert 0 < len(remembered) <= hub_logging._REMEMBERED
    assert all(redact_text(text) == text for text in remembered)
    assert not any("SECRET" in text for text in remembered)
    assert "SECRET" not in stream.getvalue()


@PROPERTY
@given(
    event=st.dictionaries(
        st.text(max_size=10),
        st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text()),
            lambda inner: st.one_of(
                st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner)
            ),
            max_leaves=10,
        ),
        max_size=6,
    )
)
def test_the_renderer_writes_what_structlogs_json_renderer_wrote(event: dict[str, Any]) -> None:
    rendered = hub_logging._render_json(None, "info", event)

    assert rendered == structlog.processors.JSONRenderer()(None, "info", event)
    assert rendered.isascii()
    assert "\n" not in rendered
    assert "\r" not in rendered


def test_a_real_line_is_one_ascii_json_object_with_controls_escaped() -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", json=True, stream=stream)
    hostile = "a\x1b[31m\r\nforged\u202e\u2028\x85 token=T0KEN-SECRET 4111 1111 1111 1111"

    get_logger("orderhub.test").info("webhook stored", note=hostile)
    logging.getLogger("uvicorn.access").info('%s - "%s %s" %d', "1.2.3.4:5", "GET", hostile, 200)

    text = stream.getvalue()
    assert text.isascii()
    assert len(text.splitlines()) == 2
    assert "T0KEN-SECRET" not in text
    assert "4111 1111 1111 1111" not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["note"].startswith("a\x1b[31m\r\nforged\u202e\u2028\x85 token=***")
    assert "**** **** **** 1111" in second["event"]
    assert len(first["note"]) <= MAX_LOGGED_CHARS
