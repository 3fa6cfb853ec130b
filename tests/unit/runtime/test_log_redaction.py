"""What never reaches a log line: secrets and card numbers (whatever key or text they sit
in), raw control characters (one event is one line, on a console too)."""

from __future__ import annotations

import io
import json
import logging
import re
from typing import Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderhub import sanitize
from orderhub.logging import MAX_LOGGED_CHARS, configure_logging, get_logger
from orderhub.sanitize import (
    CONTROL,
    KEEP_DIGITS,
    escape_controls,
    luhn_valid,
    mask_cards,
    redact_text,
)

PROPERTY: Final = settings(
    max_examples=200, derandomize=True, database=None, deadline=None,
    suppress_health_check=list(HealthCheck),
)  # fmt: skip
NOT_A_DIGIT: Final = st.characters(blacklist_characters="0123456789", codec="utf-8")
HOSTILE: Final = "<script>alert(1)</script>\x1b[31m\r\nERROR forged line\x00\x07\u202e\x9b"


def with_check_digit(body: str) -> str:
    """``body`` and the digit that makes the whole Luhn-valid."""
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


cards = st.integers(min_value=12, max_value=18).flatmap(
    lambda n: st.text("0123456789", min_size=n, max_size=n).map(with_check_digit)
)
separators = st.sampled_from(["", " ", "-"])


def formatted(card: str, separator: str) -> str:
    return separator.join(card[i : i + 4] for i in range(0, len(card), 4))


def masked_form(shown: str) -> str:
    """Every digit a star but the last four; separators kept."""
    keep = [i for i, char in enumerate(shown) if char.isdigit()][-4:]
    return "".join(c if i in keep or not c.isdigit() else "*" for i, c in enumerate(shown))


@PROPERTY
@given(
    card=cards,
    separator=separators,
    before=st.text(max_size=40),
    after=st.text(max_size=40),
    edge=st.tuples(NOT_A_DIGIT, NOT_A_DIGIT),
)
def test_a_luhn_valid_number_in_any_text_is_masked_but_its_last_four(
    card: str, separator: str, before: str, after: str, edge: tuple[str, str]
) -> None:
    shown = formatted(card, separator)
    text = f"{before}{edge[0]}{shown}{edge[1]}{after}"

    masked = mask_cards(text)

    assert shown not in masked
    assert masked_form(shown) in masked
    assert len(masked) == len(text)


@PROPERTY
@given(
    digits=st.text("0123456789", min_size=13, max_size=19),
    text=st.text(NOT_A_DIGIT, max_size=20),
)
def test_numbers_that_fail_luhn_are_left_alone(digits: str, text: str) -> None:
    if luhn_valid(digits):
        digits = digits[:-1] + str((int(digits[-1]) + 1) % 10)  # one off: never valid
    line = f"order {digits} {text}"

    assert mask_cards(line) == line


@PROPERTY
@given(text=st.text(NOT_A_DIGIT, max_size=60))
def test_text_without_digits_is_unchanged_by_card_masking(text: str) -> None:
    assert mask_cards(text) == text


def test_the_rule_on_ids_and_eans_in_examples() -> None:
    assert mask_cards("EAN 4006381333931") == "EAN 4006381333931"  # fails Luhn: kept
    assert mask_cards("id 1234567890123456789012345") == "id 1234567890123456789012345"  # > 19
    assert mask_cards("4111111111111111 12/25") == "************1111 12/25"  # a group ends it
    assert mask_cards("4111 1111 1111 1111") == "**** **** **** 1111"
    assert mask_cards("short 4111 1111") == "short 4111 1111"
    assert mask_cards("ORD-378282246310005") == "ORD-***********0005"  # Luhn-valid id: masked


@PROPERTY
@given(
    name=st.sampled_from(
        ["token", "access_token", "client_secret", "password", "api_key", "Authorization",
         "x-api-key", "webhook-signature", "refresh_token"]
    ),
    secret=st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", min_size=8,
                   max_size=40),
    shape=st.sampled_from(['{name}={secret}', '"{name}": "{secret}"', "'{name}': '{secret}'",
                           "{name}: {secret}", "/x?a=1&{name}={secret}&b=2",
                           "Bearer {secret}", "{name}: Basic {secret}"]),
    before=st.text(max_size=20),
    after=st.text(max_size=20),
)  # fmt: skip
def test_credentials_inside_any_text_are_masked(
    name: str, secret: str, shape: str, before: str, after: str
) -> None:
    text = f"{before} {shape.format(name=name, secret='S3CR3T' + secret)} {after}"

    assert "S3CR3T" not in redact_text(text)


@PROPERTY
@given(text=st.text(max_size=80))
def test_escaped_text_has_no_control_characters_and_reads_back(text: str) -> None:
    escaped = escape_controls(text)

    assert CONTROL.search(escaped) is None
    if CONTROL.search(text) is None:
        assert escaped == text


def captured(*, json_lines: bool) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(level="DEBUG", json=json_lines, stream=stream)
    return stream


def log_everything() -> None:
    log = get_logger("orderhub.test")
    log.info(
        f"webhook from {HOSTILE}",
        customer=HOSTILE,
        headers={"x-note": HOSTILE, "authorization": "Bearer AUTH-SECRET-1"},
        body='{"card": "4111 1111 1111 1111", "password": "PW-SECRET-2"}',
        lines=[HOSTILE, "api_key=KEY-SECRET-3"],
        error=ValueError("client_secret=CS-SECRET-4"),
    )
    log.warning("refused %s", "Bearer POSITIONAL-SECRET-5")
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/1.1" %d', "10.0.0.1", "POST", "/webhooks/x/y?token=PT-SECRET-6", 202,
        extra={"color_message": "\x1b[36m%s\x1b[0m - ..."},  # uvicorn's coloured copy: dropped
    )  # fmt: skip
    try:
        raise RuntimeError(f"card 5555555555554444 {HOSTILE} token=EXC-SECRET-7")
    except RuntimeError:
        log.exception("failed")


SECRETS: Final = (
    "AUTH-SECRET-1", "PW-SECRET-2", "KEY-SECRET-3", "CS-SECRET-4", "POSITIONAL-SECRET-5",
    "PT-SECRET-6", "EXC-SECRET-7", "4111 1111 1111 1111", "5555555555554444",
)  # fmt: skip


def test_json_lines_carry_no_secret_no_card_and_one_event_per_line() -> None:
    stream = captured(json_lines=True)

    log_everything()

    text = stream.getvalue()
    for secret in SECRETS:
        assert secret not in text
    assert "**** **** **** 1111" in text
    assert "color_message" not in text
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", text)  # only the line ends
    records = [json.loads(line) for line in text.splitlines()]
    assert len(records) == 4
    assert records[0]["customer"] == HOSTILE  # escaped by JSON, read back as sent
    assert HOSTILE in records[0]["event"]


def test_console_lines_carry_no_secret_no_card_and_no_raw_control_character() -> None:
    stream = captured(json_lines=False)

    log_everything()

    text = stream.getvalue()
    for secret in SECRETS:
        assert secret not in text
    events, _, traceback = text.partition("Traceback")
    assert len(events.splitlines()) == 4  # the forged line stays inside its event
    assert "ERROR forged line" not in "".join(line[:40] for line in events.splitlines())
    assert CONTROL.search(events.replace("\n", "")) is None
    assert "\\x1b[31m\\r\\nERROR forged line\\x00\\x07\\u202e\\x9b" in events
    assert "<script>" in events  # a log is text, not HTML: shown as sent, escapes aside
    assert "RuntimeError: card ************4444" in traceback


def test_a_huge_hostile_value_is_clipped_with_no_card_cut_in_two() -> None:
    """Quadratic patterns on a megabyte would hold the process for minutes: values are
    clipped before they are scanned (this test would crawl, not fail, if they were not)."""
    stream = captured(json_lines=True)
    card = "4111 1111 1111 1111"
    cut_here = "x" * (MAX_LOGGED_CHARS - 10)  # the card straddles the limit

    get_logger("orderhub.test").info(
        "huge",
        detail=("eyJa-" * 200_000) + "token=SECRET",
        other="a." * 500_000,
        straddling=f"{cut_here} {card} tail",
    )

    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    for name in ("detail", "other", "straddling"):
        assert len(line[name]) <= MAX_LOGGED_CHARS + 50
        assert line[name].endswith("characters, clipped]")
    assert "4111" not in line["straddling"]
    assert "SECRET" not in json.dumps(line)


@PROPERTY
@given(card=cards, prefix=st.text("0123456789", min_size=1, max_size=4))
def test_a_number_just_before_a_card_does_not_shield_it(card: str, prefix: str) -> None:
    shown = formatted(card, " ")
    masked = mask_cards(f"{prefix} {shown}")
    card_part = masked[len(prefix) + 1 :]
    digit_places = [i for i, char in enumerate(shown) if char.isdigit()]
    shown_places = [i for i in digit_places if card_part[i].isdigit()]
    assert set(shown_places) <= set(digit_places[-KEEP_DIGITS:])  # at most its last four


def test_a_run_of_one_digit_groups_costs_a_bounded_number_of_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unauthenticated path like 1-1-1-...-1a in an access log: each group starts at
    most MAX_CARD_GROUPS checks, not one per group of the run."""
    calls = 0
    real = sanitize.luhn_valid

    def counting(digits: str) -> bool:
        nonlocal calls
        calls += 1
        return real(digits)

    monkeypatch.setattr(sanitize, "luhn_valid", counting)
    groups = 2000
    mask_cards("-".join("1" * groups) + "a")
    assert calls <= groups * sanitize.MAX_CARD_GROUPS


def test_values_that_are_not_text_are_masked_as_their_text() -> None:
    """A URL object, bytes, a dataclass, a value nested past the depth limit: whatever a
    renderer would print of them is masked too."""
    import dataclasses

    import httpx

    @dataclasses.dataclass
    class Payment:
        card: str

    card = "4111 1111 1111 1111"
    deep: object = {"card": card}
    for _ in range(12):
        deep = {"x": deep}
    stream = io.StringIO()
    configure_logging(level="INFO", json=True, stream=stream)
    get_logger("t").info(
        "hostile",
        url=httpx.URL("https://shop.example/cb?token=abc123secret&x=1"),
        raw=f"{card}".encode(),
        payment=Payment(card=card),
        deep=deep,
        count=3,
    )
    line = stream.getvalue()
    assert "1111 1111 1111" not in line
    assert "abc123secret" not in line
    assert json.loads(line)["count"] == 3


def test_a_server_started_earlier_cannot_silence_the_access_log() -> None:
    """uvicorn.Config(log_level="warning") (a test server, a simulator) sets the access
    logger's level; configuring the hub's logging afterwards routes its lines again."""
    import uvicorn

    uvicorn.Config(app=lambda *_: None, log_level="warning", access_log=False).configure_logging()
    stream = captured(json_lines=True)
    logging.getLogger("uvicorn.access").info('%s - "%s %s" %d', "10.0.0.1", "GET", "/x", 200)
    assert "GET /x" in stream.getvalue()
    assert '"logger": "uvicorn.access"' in stream.getvalue()
