"""The Litestar app: the warehouse API under ``/api/v1``, webhooks, health, ``/schema``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import prometheus_client
from litestar import Litestar, Request, Response, Router
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Tag

from orderhub.application.hub import Hub
from orderhub.entrypoints.web.auth import ApiKeyRing, api_key_guard
from orderhub.entrypoints.web.console import (
    console_lifespan,
    console_router,
    console_state,
    handle_console_error,
    is_console,
    template_config,
)
from orderhub.entrypoints.web.feed_events import document_event_data
from orderhub.entrypoints.web.inflight import InFlightMiddleware
from orderhub.entrypoints.web.limits import check_keys, check_routes, reach_check
from orderhub.entrypoints.web.long_polls import LONG_POLLS_STATE, LongPolls
from orderhub.entrypoints.web.middleware import RequestContextMiddleware, add_request_id_header
from orderhub.entrypoints.web.openapi_document import document_contract
from orderhub.entrypoints.web.overview_metrics import OverviewMetrics
from orderhub.entrypoints.web.problems import handle_exception
from orderhub.entrypoints.web.routes.channels import list_channels
from orderhub.entrypoints.web.routes.commands import COMMAND_HANDLERS
from orderhub.entrypoints.web.routes.feed import read_feed
from orderhub.entrypoints.web.routes.health import health_router
from orderhub.entrypoints.web.routes.invoices import invoice_handlers
from orderhub.entrypoints.web.routes.ops import OPS_HANDLERS
from orderhub.entrypoints.web.routes.orders import get_order, list_orders
from orderhub.entrypoints.web.routes.webhooks import receive_webhook
from orderhub.entrypoints.web.schema_page import OperationsPage
from orderhub.entrypoints.web.settings import MetricsRenderer, ReadyCheck, WebSettings
from orderhub.entrypoints.web.strict import RefuseNulMiddleware, StrictRequest

Lifespan = Callable[[Litestar], AbstractAsyncContextManager[Any]] | AbstractAsyncContextManager[Any]

API_SECURITY_SCHEME = "apiKey"
API_PREFIX = "/api/v1"


def _handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Problem documents, except under ``/console``: pages for a person (an unknown
    console path never reaches the console router's own handler)."""
    if is_console(request.url.path):
        return handle_console_error(request, exc)
    return handle_exception(request, exc)


def _with_overview(render: MetricsRenderer | None, gauges: OverviewMetrics) -> MetricsRenderer:
    """The process's metrics (summed across processes by ``render``), then the overview
    gauges of this process once: read from the database, they are never added up."""
    base = render or prometheus_client.generate_latest

    def both() -> bytes:
        return base() + gauges.render()

    return both


def create_app(
    hub: Hub,
    settings: WebSettings,
    *,
    lifespan: Sequence[Lifespan] = (),
    ready_checks: Sequence[ReadyCheck] = (),
) -> Litestar:
    def provide_hub() -> Hub:
        return hub

    check_keys(settings.api_keys, hub.channels)
    api = Router(
        path=API_PREFIX,
        route_handlers=[
            list_orders,
            get_order,
            *COMMAND_HANDLERS,
            *invoice_handlers(max_document_bytes=settings.max_document_bytes),
            read_feed,
            list_channels,
            *OPS_HANDLERS,
        ],
        guards=[api_key_guard(ApiKeyRing(settings.api_keys), reach=reach_check(hub))],
        security=[{API_SECURITY_SCHEME: []}],
        tags=["warehouse"],
    )
    webhooks = Router(path="/", route_handlers=[receive_webhook], tags=["intake"])
    metrics_renderer = settings.metrics_renderer
    before_metrics = None
    if settings.overview_metrics_seconds is not None:
        gauges = OverviewMetrics(hub, interval_seconds=settings.overview_metrics_seconds)
        before_metrics = gauges.fresh
        metrics_renderer = _with_overview(metrics_renderer, gauges)
    health = health_router(
        ready_checks=ready_checks,
        timeout_seconds=settings.ready_check_timeout_seconds,
        metrics_renderer=metrics_renderer,
        before_metrics=before_metrics,
    )
    app = Litestar(
        route_handlers=[api, webhooks, health, console_router()],
        template_config=template_config(),
        dependencies={"hub": Provide(provide_hub, sync_to_thread=False)},
        exception_handlers={Exception: _handle_exception},
        middleware=[InFlightMiddleware(), RequestContextMiddleware(), RefuseNulMiddleware()],
        request_class=StrictRequest,
        before_send=[add_request_id_header],
        lifespan=[console_lifespan(settings), *lifespan],
        state=console_state(hub, settings),
        request_max_body_size=settings.max_body_bytes,
        logging_config=None,
        debug=False,
        openapi_config=OpenAPIConfig(
            title=settings.title,
            version=settings.version,
            path="/schema",
            render_plugins=[OperationsPage(), YamlRenderPlugin()],  # offline: no CDN
            components=Components(
                security_schemes={
                    API_SECURITY_SCHEME: SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="An API key from configuration, with scopes "
                        "orders:read, orders:write and/or ops, maybe limited to some "
                        "channels and accounts: it then sees only their orders and "
                        "events, and anything else it names is 404.",
                    )
                }
            ),
            tags=[
                Tag(name="warehouse", description="The WMS API: orders, commands, feed."),
                Tag(name="intake", description="Channel webhooks."),
            ],
        ),
    )
    app.state[LONG_POLLS_STATE] = LongPolls(per_key=settings.max_long_polls_per_key)
    check_routes(app, prefix=API_PREFIX)
    return document_contract(document_event_data(app))
