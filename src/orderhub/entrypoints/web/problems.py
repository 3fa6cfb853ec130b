"""Every error as RFC 9457 ``application/problem+json``; the only place that maps errors
to HTTP status codes.

A problem's ``type`` is ``https://orderhub.dev/problems/<rule>``: the rule a domain error
names, or one of the web layer's own (``validation-error``, ``malformed-json``,
``unauthorized``...). The status comes from the error's class, the type from its rule, so
a new rule in the core gets a stable type without touching this module."""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    SerializationException,
    ValidationException,
)
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import Scope
from sqlalchemy import exc as sa_exc

from orderhub.application.services.common import IdempotencyKeyReused
from orderhub.application.services.invoices import DocumentTooLarge, UnsupportedDocumentType
from orderhub.application.services.operations import ChannelUnavailable, NotFound
from orderhub.application.services.queries import FeedCursorExpired
from orderhub.channels.registry import ChannelNotFound
from orderhub.channels.spi import CommandRefused
from orderhub.domain.errors import (
    ConcurrencyConflict,
    DomainError,
    InvalidInput,
    InvalidTransition,
    NotSupportedByChannel,
    OrderNotFound,
)
from orderhub.entrypoints.web.middleware import request_id_of
from orderhub.entrypoints.web.schemas import FieldError, Problem
from orderhub.sanitize import escape_controls

PROBLEM_BASE: Final = "https://orderhub.dev/problems/"
PROBLEM_MEDIA_TYPE: Final = "application/problem+json"

log = structlog.get_logger(__name__)

# First match wins, so subclasses come before their parents.
DOMAIN_STATUS: Final[tuple[tuple[type[DomainError], int], ...]] = (
    (IdempotencyKeyReused, 422),
    (InvalidInput, 422),
    (OrderNotFound, 404),
    (NotFound, 404),
    (ChannelNotFound, 404),
    (InvalidTransition, 409),
    (NotSupportedByChannel, 409),
    (ConcurrencyConflict, 409),
    (ChannelUnavailable, 503),
    (FeedCursorExpired, 410),
    (DocumentTooLarge, 413),
    (UnsupportedDocumentType, 415),
)
DOMAIN_DEFAULT_STATUS: Final = 409

HTTP_RULES: Final[Mapping[int, str]] = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "too-many-requests",
    503: "service-unavailable",
}

URI_PATH_SAFE: Final = "/:@!$&'()*+,;=-._~"  # RFC 3986 pchar, unreserved: kept as they are
BODY_PARAMETER: Final = "data"  # what Litestar calls the body in its validation errors
_NAMED_FIELD: Final = re.compile(r"(?:unknown|required) field `([^`]+)`")

TITLES: Final[Mapping[str, str]] = {
    "malformed-json": "Malformed JSON",
    "internal-error": "Internal error",
}


class ProblemError(Exception):
    """A refusal raised by the web layer itself (authentication, cursors, readiness...)."""

    def __init__(
        self,
        status: int,
        rule: str,
        detail: str,
        *,
        errors: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
        checks: Mapping[str, bool] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.rule = rule
        self.detail = detail
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.checks = dict(checks) if checks is not None else None


def invalid_field(field: str, message: str, *, source: str = "body") -> ProblemError:
    return ProblemError(
        422,
        "validation-error",
        f"{field}: {message}",
        errors=[FieldError(field=field, message=message, source=source)],
    )


def domain_status(error: DomainError) -> int:
    if isinstance(error, CommandRefused):  # the adapter says: 409 (its rules) or 422
        return error.status
    for cls, status in DOMAIN_STATUS:
        if isinstance(error, cls):
            return status
    return DOMAIN_DEFAULT_STATUS


def title_of(rule: str) -> str:
    return TITLES.get(rule) or rule.replace("-", " ").capitalize()


def problem(
    scope: Scope,
    *,
    status: int,
    rule: str,
    detail: str,
    errors: Sequence[FieldError] = (),
    checks: Mapping[str, bool] | None = None,
) -> Problem:
    """A problem document; what it echoes of the request (a field name, a value) has its
    control characters escaped and the path is percent-encoded, so that a terminal showing
    the document shows them instead of obeying them."""
    return Problem(
        type=PROBLEM_BASE + rule,
        title=title_of(rule),
        status=status,
        detail=escape_controls(detail),
        # a URI reference, as the client wrote it; never the query string (it may hold a
        # webhook path token)
        instance=quote(scope["path"], safe=URI_PATH_SAFE),
        rule=rule,
        request_id=request_id_of(scope),
        errors=[_visible_error(error) for error in errors] or None,
        checks=dict(checks) if checks is not None else None,
    )


def _visible_error(error: FieldError) -> FieldError:
    return FieldError(
        field=escape_controls(error.field),
        message=escape_controls(error.message),
        source=error.source,
    )


def problem_response(body: Problem, *, headers: Mapping[str, str] | None = None) -> Response[bytes]:
    return Response(
        content=msgspec.json.encode(body),
        status_code=body.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


UNAVAILABLE_RULE: Final = "service-unavailable"
RETRY_AFTER_SECONDS: Final = 5


def unreachable(exc: BaseException) -> bool:
    """The database or the broker could not be reached (down, restarting, a connection cut
    mid-statement, the pool exhausted): the request may succeed when sent again, so it is
    a 503 with Retry-After, not a 500."""
    if isinstance(exc, sa_exc.DBAPIError) and (
        exc.connection_invalidated or _unavailable_state(getattr(exc.orig, "sqlstate", None))
    ):
        return True
    return isinstance(
        exc,
        sa_exc.OperationalError
        | sa_exc.InterfaceError
        | sa_exc.TimeoutError
        | ConnectionError
        | TimeoutError
        | socket.gaierror,  # the database's host name did not resolve (DNS)
    )


UNAVAILABLE_STATES: Final = ("08", "53300", "57P")
"""SQLSTATEs (prefixes) of a server that cannot take the session now: connection
exceptions, ``too_many_connections``, shutting down or starting up. The pool hands these
over at connect as the driver's error, which SQLAlchemy wraps in a plain ``DBAPIError``.
Not the rest of class 53 (out of memory, too many locks): one oversized request can
cause those, and sending it again would not help."""


def _reason(exc: BaseException) -> str:
    """What the server or the driver said, for the log (a refused connect's cause: a
    missing database or role is a configuration error, not an outage). Never a statement
    or its parameters: SQLAlchemy's own errors are read from the driver's error."""
    said = []
    for error in (exc, exc.__cause__):
        if error is None:
            continue
        text = error.orig if isinstance(error, sa_exc.StatementError) else error
        said.append(f"{type(error).__name__}: {text}")
    return " <- ".join(said)[:500]


def _unavailable_state(sqlstate: object) -> bool:
    return isinstance(sqlstate, str) and sqlstate.startswith(UNAVAILABLE_STATES)


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """The app's one exception handler: every error leaves as a problem document."""
    scope = request.scope
    if isinstance(exc, ProblemError):
        body = problem(
            scope,
            status=exc.status,
            rule=exc.rule,
            detail=exc.detail,
            errors=exc.errors,
            checks=exc.checks,
        )
        _log_refusal(body)
        return problem_response(body, headers=exc.headers)
    if isinstance(exc, DomainError):
        body = problem(scope, status=domain_status(exc), rule=exc.rule, detail=exc.detail)
        _log_refusal(body)
        return problem_response(body)
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        return _http_problem(scope, exc)
    if unreachable(exc):
        log.warning(
            "dependency unavailable",
            path=scope["path"],
            method=scope.get("method"),
            request_id=request_id_of(scope),
            error=type(exc).__name__,
            reason=_reason(exc),
        )
        body = problem(
            scope,
            status=503,
            rule=UNAVAILABLE_RULE,
            detail="The hub's database or broker cannot be reached right now. Try again in "
            "a few seconds; with the same Idempotency-Key a command is carried out once, and "
            "a webhook sent again is a duplicate, not a second order.",
        )
        return problem_response(body, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    log.error(
        "unhandled error",
        path=scope["path"],
        method=scope.get("method"),
        request_id=request_id_of(scope),
        exc_info=exc,
    )
    body = problem(
        scope,
        status=500,
        rule="internal-error",
        detail="The server could not handle this request; quote the request id when reporting it.",
    )
    return problem_response(body)


def _http_problem(scope: Scope, exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if isinstance(exc, ValidationException):
        errors = [_field_error(item) for item in _extra_items(exc.extra)]
        body = problem(
            scope,
            status=422,
            rule="validation-error",
            detail="; ".join(f"{e.field}: {e.message}" for e in errors) or exc.detail,
            errors=errors,
        )
    elif isinstance(exc, ClientException) and isinstance(exc.__cause__, SerializationException):
        body = problem(
            scope,
            status=400,
            rule="malformed-json",
            detail=f"the request body is not valid JSON: {exc.detail}",
        )
    else:
        body = problem(
            scope, status=status, rule=HTTP_RULES.get(status, "http-error"), detail=exc.detail
        )
    _log_refusal(body)
    return problem_response(body, headers=exc.headers)


def _extra_items(extra: Any) -> list[Mapping[str, Any]]:
    if isinstance(extra, Mapping):
        return [extra]
    if isinstance(extra, list):
        return [item for item in extra if isinstance(item, Mapping)]
    return []


def _field_error(item: Mapping[str, Any]) -> FieldError:
    """Name the offending field as the client wrote it: ``lines[0].quantity``, ``carrier``."""
    message = str(item.get("message", "invalid value"))
    raw_source = item.get("source")
    # Litestar gives a ParamType enum for parameters: its value ("query"), not its repr
    source = str(getattr(raw_source, "value", raw_source)) if raw_source else None
    key = str(item.get("key") or "")
    if source == "body" and key == BODY_PARAMETER:
        key = ""
    if named := _NAMED_FIELD.search(message):
        key = f"{key}.{named.group(1)}" if key else named.group(1)
    return FieldError(field=key or "body", message=message, source=source)


def _log_refusal(body: Problem) -> None:
    # request_id explicitly: unrouted requests (404, 405) never pass the context middleware
    log.info(
        "request refused",
        status=body.status,
        rule=body.rule,
        detail=body.detail,
        request_id=body.request_id,
    )


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problems a route can answer."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=f"Problem ({status})",
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
        )
        for status in statuses
    }
