"""Request ids and log context.

Every response carries ``X-Request-ID``: the caller's, when it is a sane token, else a new
one. While a routed request runs, structlog's context holds ``request_id`` and the ids
the path names (``order_id``, ``channel``, ``account``, ``command_id``, ``message_id``);
it is cleared as the request starts and ends, so nothing leaks into the next request.
Unrouted requests (404, 405) never reach route middleware, so the header is set by a
``before_send`` hook that reads the same id from the scope."""

from __future__ import annotations

import re
from typing import Final

import structlog
import uuid_utils
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER: Final = "X-Request-ID"
_STATE_KEY: Final = "orderhub.request_id"
_ACCEPTED_ID: Final = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
_BOUND_PATH_PARAMS: Final = ("order_id", "channel", "account", "command_id", "message_id")


def request_id_of(scope: Scope) -> str:
    """The request's id, chosen once per request and kept in the scope's state."""
    state = scope.setdefault("state", {})
    found = state.get(_STATE_KEY)
    if isinstance(found, str):
        return found
    # uuid_utils: no system call per id (the standard library's uuid4 reads the random
    # source each time, letting go of the GIL and taking it back); a new id per process
    # after a fork all the same
    chosen = _incoming(scope) or uuid_utils.uuid4().hex
    state[_STATE_KEY] = chosen
    return chosen


def _incoming(scope: Scope) -> str | None:
    wanted = REQUEST_ID_HEADER.lower().encode("latin-1")
    for name, value in scope.get("headers", ()):
        if name.lower() == wanted:
            text = value.decode("latin-1").strip()
            return text if _ACCEPTED_ID.fullmatch(text) else None
    return None


class RequestContextMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        context: dict[str, object] = {"request_id": request_id_of(scope)}
        params = scope.get("path_params") or {}
        context.update({name: params[name] for name in _BOUND_PATH_PARAMS if name in params})
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**context)
        try:
            await next_app(scope, receive, send)
        finally:
            structlog.contextvars.clear_contextvars()


async def add_request_id_header(message: Message, scope: Scope) -> None:
    """``before_send`` hook: answer every HTTP request with its id."""
    if message["type"] == "http.response.start":
        message.setdefault("headers", [])
        headers = MutableScopeHeaders.from_message(message)
        headers[REQUEST_ID_HEADER] = request_id_of(scope)
