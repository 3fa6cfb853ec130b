"""Text that came from outside (webhook bodies and headers, paths, API input), made safe
to show in logs, problem documents and the console.

Two things, used by :mod:`orderhub.logging`, the web problems and the console:

* :func:`escape_controls`: control characters as visible escapes (``\\x1b``, ``\\r``,
  ``\\u202e``), so that a value cannot colour or clear a terminal, start a new log line,
  or reverse the text around it.
* :func:`redact_text`: secrets and card numbers masked inside free text, whatever key the
  text sits under.

Card numbers: a run of 13 to 19 digits, in groups separated by single spaces or dashes,
that passes the Luhn check is masked but its last four digits (``************1111``).
Groups are where a number may start or end: within ``4111111111111111 12/25`` the first
group is a card; a run of 25 digits with no separator is not one (no card is that long).
An id or EAN that happens to pass Luhn (about one in ten 13-digit numbers does) is masked
too: a masked id costs a look-up, a logged card number costs the whole log store."""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "CONTROL",
    "escape_controls",
    "luhn_valid",
    "mask_cards",
    "nothing_to_mask",
    "redact_text",
]

MASK: Final = "***"
CONTROL: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
"""C0 and C1 controls, DEL, line and paragraph separators, and bidirectional overrides."""
_SHORT: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

MIN_CARD_DIGITS: Final = 13
MAX_CARD_DIGITS: Final = 19
KEEP_DIGITS: Final = 4
MAX_CARD_GROUPS: Final = 6
# digit groups joined by one space or dash; never glued to a longer run of digits
_DIGIT_RUN: Final = re.compile(r"(?<![0-9])[0-9]+(?:[ -][0-9]+)*(?![0-9])")
_GROUP: Final = re.compile(r"[0-9]+")

# bounded on both sides: an unbounded run before the keyword backtracks quadratically
_SECRET_NAME: Final = (
    r"[\w.-]{0,40}"
    r"(?:secret|token|password|passwd|authorization|api[-_]?key|credential|signature)"
    r"[\w.-]{0,40}"
)
_SCHEME: Final = r"(?:Bearer|Basic|Token|Digest)"
# "Bearer abc.123", "Basic dXNlcjpw0=": a credential has a digit or token punctuation,
# so that prose ("the bearer token is not valid") stays readable
_AUTH_SCHEME: Final = re.compile(
    rf"\b({_SCHEME})(\s+)(?=[^\s\"',;]*[0-9._~+/=-])[^\s\"',;]{{6,}}", re.I
)
# token=abc (query strings), "password": "p w", client_secret: abc, 'token': 'abc',
# Authorization: Bearer abc (the scheme and the credential)
_NAMED_SECRET: Final = re.compile(
    rf"(?P<name>[\"']?\b{_SECRET_NAME}[\"']?\s*[:=]\s*)"
    r"(?:(?P<quote>[\"'])(?P<quoted>[^\"']*)(?P=quote)"
    rf"|(?P<bare>(?:{_SCHEME}\s+)?[^\s\"'&,;}}\]]+))",
    re.I,
)
_QUERY_KEY: Final = re.compile(r"(?P<name>[?&;](?:key|sig|code)=)[^&\s\"'#]+", re.I)
# what any credential rule needs in the text (lower-cased): most log values have none
_CREDENTIAL_WORDS: Final = (
    "whsec_", "eyj", "bearer", "basic", "token", "digest", "secret", "passw",
    "authorization", "apikey", "api_key", "api-key", "credential", "signature",
)  # fmt: skip
_CREDENTIAL_HINT: Final = re.compile("|".join(map(re.escape, _CREDENTIAL_WORDS)))
_MAYBE_CARD: Final = re.compile(r"[0-9](?:[ -]?[0-9]){12}")  # 13 digits, maybe grouped
# quicker, and lets more through: a match of _MAYBE_CARD starts a run like this one
_CARD_HINT: Final = re.compile(r"[0-9][0-9 -]{12}")
# each starts only where a run of its own characters starts, so no two tries overlap and
# a long hostile run is scanned once (``\b`` would let "eyJa-eyJa-..." start everywhere)
_KNOWN_FORMATS: Final = re.compile(
    r"(?<![\w+/=-])whsec_[A-Za-z0-9+/=]{8,}"  # Standard Webhooks secrets
    r"|(?<![\w.-])eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"  # JSON web tokens
)


def escape_controls(text: str, *, keep: str = "") -> str:
    """``text`` with every control character (but those in ``keep``) as a visible escape."""

    def visible(found: re.Match[str]) -> str:
        char = found.group()
        if char in keep:
            return char
        if char in _SHORT:
            return _SHORT[char]
        code = ord(char)
        return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"

    return CONTROL.sub(visible, text)


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def mask_cards(text: str) -> str:
    """``text`` with every Luhn-valid 13-19 digit number masked but its last four digits."""
    if _MAYBE_CARD.search(text) is None:
        return text
    return _DIGIT_RUN.sub(_mask_run, text)


def _mask_run(found: re.Match[str]) -> str:
    """Every card number in the run masked, wherever it starts: the union of all the
    Luhn-valid spans of 13-19 digits over at most :data:`MAX_CARD_GROUPS` groups, each
    but its last four digits (a short number before a card cannot shield the card)."""
    run = found.group()
    groups = [(g.start(), g.end()) for g in _GROUP.finditer(run)]
    masked = list(run)
    for first in range(len(groups)):
        for last in _cards_from(run, groups, first):
            start, stop = groups[first][0], groups[last][1]
            digits = [i for i in range(start, stop) if run[i].isdigit()]
            for i in digits[:-KEEP_DIGITS]:
                masked[i] = "*"
    return "".join(masked)


def _cards_from(run: str, groups: list[tuple[int, int]], first: int) -> list[int]:
    """The last group of every card number that starts at group ``first``. A card is
    printed in at most :data:`MAX_CARD_GROUPS` groups (4-4-4-4-3): a run of one-digit
    groups is no card, and is scanned a bounded number of times per group."""
    digits = ""
    found = []
    for last in range(first, min(first + MAX_CARD_GROUPS, len(groups))):
        start, stop = groups[last]
        digits += run[start:stop]
        if len(digits) > MAX_CARD_DIGITS:
            break
        if len(digits) >= MIN_CARD_DIGITS and luhn_valid(digits):
            found.append(last)
    return found


def nothing_to_mask(text: str) -> bool:
    """True when :func:`redact_text` returns ``text`` as it is: none of its rules' conditions
    holds (cheap scans: most log values, a level, an id, a timestamp, have nothing to mask).
    A new rule in :func:`redact_text` needs its condition here too, and its pieces in the
    property of ``tests/unit/runtime/test_log_fast_path.py``."""
    return (
        "=" not in text
        and (_CARD_HINT.search(text) is None or _MAYBE_CARD.search(text) is None)
        and _CREDENTIAL_HINT.search(text.lower()) is None
    )


def redact_text(text: str) -> str:
    """``text`` with credentials (``Bearer ...``, ``token=...``, ``"password": "..."``,
    webhook secrets, JWTs) and card numbers masked. The rules run only on text that has
    what they look for (:func:`nothing_to_mask`'s conditions, one by one)."""
    lower = text.lower()
    if _CREDENTIAL_HINT.search(lower) is not None:
        text = _KNOWN_FORMATS.sub(MASK, text)
        text = _AUTH_SCHEME.sub(rf"\1\2{MASK}", text)
        text = _NAMED_SECRET.sub(_mask_named, text)
    if "=" in text:
        text = _QUERY_KEY.sub(rf"\g<name>{MASK}", text)
    return mask_cards(text)


def _mask_named(found: re.Match[str]) -> str:
    quote = found.group("quote")
    if quote:
        return f"{found.group('name')}{quote}{MASK}{quote}"
    return f"{found.group('name')}{MASK}"
