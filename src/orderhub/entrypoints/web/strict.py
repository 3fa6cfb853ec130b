"""What the web edge refuses before anything reaches the core or the database.

* Request bodies are decoded strictly, for every route that declares one: Litestar
  converts a decoded body to the handler's type with ``strict=False``, which turns
  ``"1"`` into ``1`` and ``"true"`` into ``True``. :class:`StrictRequest` first decodes
  the raw bytes into the declared type with ``strict=True``, so a string is never a number
  and every wrong type is the same 422 ``validation-error`` naming the field. The handler
  signatures (and so the OpenAPI document) stay as they are.
* NUL characters, which PostgreSQL refuses in text and JSONB, are refused wherever a
  client can put one: a body's strings and keys (:class:`StrictRequest`), path parameters,
  the query string and headers (:class:`RefuseNulMiddleware`). Each is a 422
  ``validation-error`` naming where it was, never a database error.

Both apply to every route, including ones added later."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

import msgspec
from litestar import Request
from litestar.enums import ScopeType
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from orderhub.entrypoints.web.problems import BODY_PARAMETER, invalid_field

NUL: Final = "\x00"
NUL_MESSAGE: Final = "must not contain NUL characters"
# msgspec's "Expected `int`, got `str` - at `$.lines[0].quantity`"
_AT_PATH: Final = re.compile(r"^(?P<message>.*?) - at `\$\.?(?P<path>.*)`$", re.DOTALL)
_UNCHECKED: Final = (Any, bytes, str)


def body_type(handler: HTTPRouteHandler) -> Any | None:
    """The type a handler declares for its JSON body, or ``None`` when there is nothing to
    check strictly (no body, a DTO, or raw bytes/text/Any)."""
    field = handler.parsed_fn_signature.parameters.get(BODY_PARAMETER)
    if field is None or field.annotation in _UNCHECKED:
        return None
    if handler.resolve_data_dto() is not None:
        return None
    return field.annotation


def strict_decode(body: bytes, target: Any) -> None:
    """Decode ``body`` as ``target`` with no coercion; raise Litestar's 422 on a mismatch."""
    try:
        msgspec.json.decode(body, type=target, strict=True)
    except msgspec.ValidationError as exc:
        raise _body_error(*_split(str(exc))) from exc


def _split(error: str) -> tuple[str, str]:
    """(where, message) from a msgspec error; the body itself when it names no path."""
    if found := _AT_PATH.match(error):
        return found.group("path") or BODY_PARAMETER, found.group("message")
    return BODY_PARAMETER, error


def _body_error(key: str, message: str) -> ValidationException:
    # the shape of Litestar's own validation errors, so problems.py renders both alike
    return ValidationException(
        detail="Validation failed for the request body",
        extra=[{"key": key, "message": message, "source": "body"}],
    )


def find_nul(value: Any, path: str = "") -> str | None:
    """Where in a decoded JSON value a string (or object key) holds a NUL, if anywhere."""
    for where, text in _strings(value, path):
        if NUL in text:
            return where or BODY_PARAMETER
    return None


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str):
                yield where, key
            yield from _strings(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


class StrictRequest(Request[Any, Any, Any]):
    """A request whose JSON body is checked strictly against the handler's declared type."""

    async def json(self) -> Any:
        value = await super().json()  # malformed JSON is refused here, as a 400
        target = body_type(self.route_handler)
        if target is not None:
            strict_decode(await self.body() or b"null", target)
        if (where := find_nul(value)) is not None:
            raise _body_error(where, NUL_MESSAGE)
        return value


class RefuseNulMiddleware(ASGIMiddleware):
    """422 for a NUL in a path parameter, the query string or a header."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        for name, value in (scope.get("path_params") or {}).items():
            if isinstance(value, str) and NUL in value:
                raise invalid_field(name, NUL_MESSAGE, source="path")
        if NUL in scope["path"]:
            raise invalid_field("path", NUL_MESSAGE, source="path")
        query: bytes = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:
            raise invalid_field(_query_name(query), NUL_MESSAGE, source="query")
        for raw_name, raw_value in scope.get("headers", ()):
            if b"\x00" in raw_name or b"\x00" in raw_value:
                name = raw_name.decode("latin-1").replace(NUL, "\\0")
                raise invalid_field(name, NUL_MESSAGE, source="header")
        await next_app(scope, receive, send)


def _query_name(query: bytes) -> str:
    """The query parameter that holds a NUL, as the client named it."""
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True, errors="replace")
    for name, value in pairs:
        if NUL in name or NUL in value:
            return name.replace(NUL, "\\0") or "query"
    return "query"
