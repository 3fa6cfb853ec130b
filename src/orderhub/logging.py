"""structlog everywhere: JSON lines in production, a readable console on a terminal.

Standard-library loggers (uvicorn, dramatiq, sqlalchemy, httpx) go through the same
processors, so every line carries the context bound with :func:`bound` or
:func:`bind_context` (``request_id``, ``order_id``, ``channel``, ``account``,
``command_id``). Values under secret-looking keys are masked before rendering."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import IO, Any, Final

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "CONTEXT_KEYS",
    "bind_context",
    "bound",
    "clear_context",
    "configure_logging",
    "get_logger",
    "redact_secrets",
]

CONTEXT_KEYS: Final = ("request_id", "order_id", "channel", "account", "command_id", "message_id")
_SECRET_KEY = re.compile(r"secret|token|password|passwd|authorization|api_?key|credential", re.I)
_QUERY_SECRET = re.compile(
    r"(?P<name>[?&](?:[\w.-]*(?:token|secret|password|api_?key|signature)[\w.-]*)=)[^&\s\"']+",
    re.I,
)
_QUIET: Final = {"pika": logging.WARNING, "sqlalchemy.engine": logging.WARNING}


def redact_secrets(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Mask values logged under secret-looking keys (also inside nested mappings), and
    secret query parameters in logged strings (``/webhooks/x/y?token=...`` in access logs)."""
    return _mask(event_dict)


def _mask(mapping: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in mapping.items():
        if _SECRET_KEY.search(key):
            mapping[key] = "***"
        elif isinstance(value, Mapping):
            mapping[key] = _mask(dict(value))
        elif isinstance(value, str) and "=" in value:
            mapping[key] = _QUERY_SECRET.sub(r"\g<name>***", value)
    return mapping


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
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
        renderer = structlog.processors.JSONRenderer()
    else:
        # plain tracebacks: rich's would print local variables, secrets included
        renderer = structlog.dev.ConsoleRenderer(
            colors=_isatty(out), exception_formatter=structlog.dev.plain_traceback
        )
    shared = _shared_processors()
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,  # structlog.testing.capture_logs keeps working
    )
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if json:
        # structured tracebacks without local variables (they may hold secrets)
        final.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
    final.append(renderer)
    formatter = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=final)
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name, quiet in _QUIET.items():
        logging.getLogger(name).setLevel(max(quiet, root.level))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "dramatiq"):
        # their own handlers would print a second, unstructured copy
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


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
