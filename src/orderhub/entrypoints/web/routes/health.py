"""Liveness, readiness and metrics: unauthenticated, for the platform."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import prometheus_client
from litestar import Response, Router, get

from orderhub.entrypoints.web.problems import ProblemError, problem_responses
from orderhub.entrypoints.web.schemas import Health, Readiness
from orderhub.entrypoints.web.settings import MetricsRenderer, ReadyCheck


async def _run(check: ReadyCheck, seconds: float) -> tuple[str, bool]:
    name = getattr(check, "__name__", repr(check))
    try:
        async with asyncio.timeout(seconds):
            return await check()
    except Exception:  # a probe that breaks or hangs says "not ready", never 500
        return name, False


def health_router(
    *,
    ready_checks: Sequence[ReadyCheck],
    timeout_seconds: float,
    metrics_renderer: MetricsRenderer | None,
    before_metrics: Callable[[], Awaitable[None]] | None = None,
) -> Router:
    checks = tuple(ready_checks)
    render = metrics_renderer or prometheus_client.generate_latest

    @get("/healthz", summary="The process is alive")
    async def healthz() -> Health:
        return Health(status="ok")

    @get(
        "/readyz",
        summary="The database and broker are reachable",
        responses=problem_responses(503),
    )
    async def readyz() -> Readiness:
        results = await asyncio.gather(*(_run(check, timeout_seconds) for check in checks))
        outcome = dict(results)
        if not all(ok for _, ok in results):
            failing = ", ".join(name for name, ok in results if not ok)
            raise ProblemError(503, "not-ready", f"not reachable: {failing}", checks=outcome)
        return Readiness(status="ready", checks=outcome)

    @get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response[bytes]:
        if before_metrics is not None:  # e.g. read the overview gauges when they are due
            await before_metrics()
        # in a thread: the multi-process collector reads every process's files
        content = await asyncio.to_thread(render)
        return Response(content=content, media_type=prometheus_client.CONTENT_TYPE_LATEST)

    return Router(path="/", route_handlers=[healthz, readyz, metrics])
