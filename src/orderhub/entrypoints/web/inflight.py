"""Counts the API requests being answered (``orderhub_http_requests_in_progress``): what a
graceful shutdown waits for, and what a load balancer's drain should see fall to 0."""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from orderhub.metrics import HTTP_REQUESTS_IN_PROGRESS


class InFlightMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)
    exclude_path_pattern = ("^/healthz$", "^/readyz$", "^/metrics$")

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        with HTTP_REQUESTS_IN_PROGRESS.track_inprogress():
            await next_app(scope, receive, send)
