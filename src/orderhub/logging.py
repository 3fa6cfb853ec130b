"""structlog everywhere: JSON lines in production, a readable console on a terminal.

Standard-library loggers (uvicorn, dramatiq, sqlalchemy, httpx) go through the same
processors, so every line carries the context bound with :func:`bound` or
:func:`bind_context` (``request_id``, ``order_id``, ``channel``, ``account``,
``command_id``). Before a line is rendered, values under secret-looking keys, credentials
and card numbers inside any text are masked (:mod:`orderhub.sanitize`), and on a console
control characters are escaped: one event is one line, whatever a sender put in a value."""

from __future__ import annotations

import functools
import json as jsonlib
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any, Final

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from orderhub.sanitize import escape_controls, nothing_to_mask, redact_text

__all__ = [
    "CONTEXT_KEYS",
    "bind_context",
    "bound",
    "clear_context",
    "configure_logging",
    "escape_control_characters",
    "get_logger",
    "redact_secrets",
]

CONTEXT_KEYS: Final = ("request_id", "order_id", "channel", "account", "command_id", "message_id")
_SECRET_KEY = re.compile(
    r"secret|token|password|passwd|authorization|api[-_]?key|credential|signature|cookie", re.I
)
_QUIET: Final = {"pika": logging.WARNING, "sqlalchemy.engine": logging.WARNING}
_TRACEBACK: Final = "exception"  # a rendered traceback: its lines stay lines on a console
_DROPPED: Final = frozenset({"color_message"})  # uvicorn's copy of the event, with ANSI colours
_MAX_DEPTH: Final = 8
MAX_LOGGED_CHARS: Final = 8192
MAX_TRACEBACK_CHARS: Final = 65536
_REMEMBERED_CHARS: Final = 256
_REMEMBERED: Final = 4096
_PLAIN_SEEN: set[str] = set()  # short texts known to have nothing to mask


def redact_secrets(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Mask every value under a secret-looking key (at any depth), and credentials and card
    numbers inside any logged string (:func:`orderhub.sanitize.redact_text`): the event,
    an access log's ``?token=...``, an exception's message, a body's text."""
    redacted = {}
    for key, value in event_dict.items():
        if key in _DROPPED:
            continue
        # the common case first: a string under an ordinary key (the checks of _redacted)
        if type(value) is str and type(key) is str and key != _TRACEBACK and not _secret_key(key):
            redacted[key] = _redacted_text(value)
        else:
            redacted[key] = _redacted(key, value, 0)
    return redacted


@functools.lru_cache(maxsize=1024)
def _secret_key(key: str) -> bool:
    return _SECRET_KEY.search(key) is not None


def _redacted(key: object, value: Any, depth: int) -> Any:
    if isinstance(key, str) and value is not None and _secret_key(key):
        return "***"
    if isinstance(value, str):
        return _redacted_text(value, MAX_TRACEBACK_CHARS if key == _TRACEBACK else None)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth < _MAX_DEPTH and isinstance(value, Mapping):
        return {k: _redacted(k, v, depth + 1) for k, v in value.items()}
    if depth < _MAX_DEPTH and isinstance(value, list | tuple):
        return [_redacted(None, item, depth + 1) for item in value]
    if isinstance(value, BaseException):
        return redact_text(_clipped(f"{type(value).__name__}: {value}"))
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode(errors="replace")
    # anything else (a URL, a struct, a dataclass, what lies deeper than _MAX_DEPTH) is
    # shown as its text: masked like any text, never rendered raw by the renderer
    return redact_text(_clipped(str(value)))


def _redacted_text(text: str, limit: int | None = None) -> str:
    """``redact_text(_clipped(text, limit))``, the same string, sooner for the text of
    most lines (a level, a logger's name, an id, a timestamp), which has nothing to mask:
    :func:`~orderhub.sanitize.nothing_to_mask` tells so with three quick scans, and a short
    plain text is remembered (only plain ones: no secret is kept in memory for it)."""
    if text in _PLAIN_SEEN:
        return text
    if len(text) > (limit or MAX_LOGGED_CHARS):
        return redact_text(_clipped(text, limit))
    if not nothing_to_mask(text):
        return redact_text(text)
    if len(text) <= _REMEMBERED_CHARS:
        if len(_PLAIN_SEEN) >= _REMEMBERED:
            _PLAIN_SEEN.clear()  # unique values (ids, timestamps) fill it: start again
        _PLAIN_SEEN.add(text)
    return text


def _clipped(text: str, limit: int | None = None) -> str:
    """At most ``limit`` (:data:`MAX_LOGGED_CHARS`) characters of a value: a sender's
    megabyte does not become a log line, nor a long scan for secrets. No card number is
    cut in two (its first digits would be shown, unmasked)."""
    limit = limit or MAX_LOGGED_CHARS
    if len(text) <= limit:
        return text
    kept = text[:limit].rstrip("0123456789 -")
    return f"{kept}... [{len(text)} characters, clipped]"


def escape_control_characters(
    _logger: WrappedLogger, _name: str, event_dict: EventDict
) -> EventDict:
    """One event, one line, no terminal escapes: control characters in keys and string
    values (CR/LF, ESC, NUL, bidi overrides...) become visible escapes such as ``\\x1b``.
    The JSON renderer escapes them itself; the console renderer prints strings as they are."""
    return {
        _escaped(key): value if key == _TRACEBACK else _escaped_value(value, 0)
        for key, value in event_dict.items()
    }


def _escaped(text: str) -> str:
    return escape_controls(text) if isinstance(text, str) else text


def _escaped_value(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return escape_controls(value)
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {_escaped(k): _escaped_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escaped_value(item, depth + 1) for item in value]
    return value


# json.dumps(event_dict, default=...), as structlog's JSONRenderer calls it, builds a new
# encoder for every line; this one is built once and writes the same text (ensure_ascii:
# every control and non-ASCII character escaped, so one event is one line of ASCII)
_JSON: Final = jsonlib.JSONEncoder(default=repr)


def _render_json(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> str:
    return _JSON.encode(event_dict)


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(
    *, level: str = "INFO", json: bool | None = None, stream: IO[str] | None = None
) -> None:
    """Configure structlog and route the standard library's logging through it.

    ``json=None`` picks the console renderer when ``stream`` is a terminal, JSON otherwise."""
    out = stream if stream is not None else sys.stderr
    if json is None:
        json = not _isatty(out)
    renderer: Processor
    if json:
        renderer = _render_json
    else:
        # plain tracebacks: rich's would print local variables, secrets included
        renderer = structlog.dev.ConsoleRenderer(
            colors=_isatty(out), exception_formatter=structlog.dev.plain_traceback
        )
    shared = _shared_processors()
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,  # structlog.testing.capture_logs keeps working
    )
    # Redaction comes last before rendering, once everything is text: what a positional
    # argument, an exception's message or a standard-library record put in is masked too.
    final: list[Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        structlog.stdlib.PositionalArgumentsFormatter(),
    ]
    if json:
        # structured tracebacks without local variables (they may hold secrets)
        final.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
        final += [redact_secrets, renderer]  # the encoder escapes every control character
    else:
        final += [
            structlog.processors.ExceptionRenderer(),  # plain text, so that it is redacted
            redact_secrets,
            escape_control_characters,
            renderer,
        ]
    formatter = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=final)
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # What no line shows is not gathered for each record either: the caller's file, line
    # and function (a walk up the stack: the logging HOWTO's "Optimization"), the thread's
    # and the process's name and id. A few microseconds of every line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    for name, quiet in _QUIET.items():
        logging.getLogger(name).setLevel(max(quiet, root.level))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "dramatiq"):
        # their own handlers would print a second, unstructured copy; and what an earlier
        # uvicorn.Config (its log_level) or dictConfig set on them no longer holds
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
        logger.disabled = False


def _isatty(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except ValueError:  # closed stream
        return False


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


def bind_context(**values: str | None) -> None:
    """Bind values (``None`` skipped) to every log line of the current task or request."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in values.items() if v is not None})


def clear_context() -> None:
    """Start a request or job with no context left over from the previous one."""
    structlog.contextvars.clear_contextvars()


@contextmanager
def bound(
    *,
    request_id: str | None = None,
    order_id: str | None = None,
    channel: str | None = None,
    account: str | None = None,
    command_id: str | None = None,
    message_id: str | None = None,
    **extra: str | None,
) -> Iterator[None]:
    """Bind the given context for the duration of a ``with`` block, then restore it."""
    values = {
        "request_id": request_id,
        "order_id": order_id,
        "channel": channel,
        "account": account,
        "command_id": command_id,
        "message_id": message_id,
        **extra,
    }
    with structlog.contextvars.bound_contextvars(
        **{k: v for k, v in values.items() if v is not None}
    ):
        yield
