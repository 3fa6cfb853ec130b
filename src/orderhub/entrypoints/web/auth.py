"""Warehouse API keys: ``Authorization: Bearer <key>``, each key with scopes, and maybe
limited to some channels and accounts (see :mod:`orderhub.entrypoints.web.limits`).

Keys are compared as SHA-256 digests with :func:`hmac.compare_digest`, against every
configured key (no early exit), so neither the length nor the prefix of a key leaks
through timing. Keys are never logged: only a key's ``name`` is, bound as ``api_key``."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final

import structlog
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from orderhub.application.access import AccountLimit
from orderhub.entrypoints.web.problems import ProblemError
from orderhub.entrypoints.web.settings import ApiKey
from orderhub.entrypoints.web.webhook_auth import bearer_token

SCOPE_OPT: Final = "required_scope"
"""The ``opt`` key a route handler sets to the scope it needs."""
REALM: Final = 'Bearer realm="orderhub"'
CALLER_STATE: Final = "orderhub_api_key"
LIMIT_STATE: Final = "orderhub_api_key_limit"

ReachCheck = Callable[[AccountLimit, Mapping[str, Any]], Awaitable[None]]
"""Refuses (404, as if unknown) a request of a limited key whose path names an order,
command or message outside its limit; given the request's path parameters."""


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


class ApiKeyRing:
    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._keys = [(_digest(key.key), key) for key in keys]

    def identify(self, presented: str) -> ApiKey | None:
        digest = _digest(presented)
        found = None
        for known, key in self._keys:
            if hmac.compare_digest(known, digest):
                found = key
        return found


def api_key_guard(ring: ApiKeyRing, *, reach: ReachCheck | None = None) -> Guard:
    """A guard that admits a request whose key holds the scope its route handler names
    and, for a limited key, whose path names nothing outside its limit (``reach``: before
    the body is read, so another account's order is 404 whatever the request carries)."""

    async def guard(
        connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        required = handler.opt.get(SCOPE_OPT)
        token = bearer_token(connection.headers.get("authorization"))
        if token is None:
            raise ProblemError(
                401,
                "unauthorized",
                "an API key is required: Authorization: Bearer <key>",
                headers={"WWW-Authenticate": REALM},
            )
        key = ring.identify(token)
        if key is None:
            raise ProblemError(
                401,
                "unauthorized",
                "the API key is not valid",
                headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
            )
        structlog.contextvars.bind_contextvars(caller=key.name)  # its name: "api_key" is masked
        state = connection.scope.setdefault("state", {})
        state[CALLER_STATE] = key.name
        state[LIMIT_STATE] = key.limit
        if required is None or required not in key.scopes:
            raise ProblemError(
                403,
                "forbidden",
                f"API key {key.name!r} lacks the scope {required!r}",
                headers={
                    "WWW-Authenticate": (
                        f'{REALM}, error="insufficient_scope", scope="{required or ""}"'
                    )
                },
            )
        if key.limit is not None and reach is not None:
            await reach(key.limit, connection.path_params)

    return guard


def caller(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The name of the API key the guard admitted (idempotency keys are scoped by it)."""
    name = connection.scope.get("state", {}).get(CALLER_STATE)
    if not isinstance(name, str):
        raise RuntimeError("no API key on this request: is the route guarded?")
    return name


def caller_limit(connection: ASGIConnection[Any, Any, Any, Any]) -> AccountLimit | None:
    """The channels and accounts the admitted key is limited to (None: unlimited)."""
    state = connection.scope.get("state", {})
    if not isinstance(state.get(CALLER_STATE), str):
        raise RuntimeError("no API key on this request: is the route guarded?")
    limit = state.get(LIMIT_STATE)
    return limit if isinstance(limit, AccountLimit) else None


def requires(scope: str) -> dict[str, str]:
    """``opt`` for a route handler: ``@get(..., opt=requires(READ))``."""
    return {SCOPE_OPT: scope}
