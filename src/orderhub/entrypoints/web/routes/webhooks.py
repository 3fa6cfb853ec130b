"""One route for every webhook channel: authenticate per account, store, then answer.

The raw body is stored in the inbox before the 2xx, whatever it holds: a body that
cannot be parsed is stored too, and the worker marks it failed for an operator. A
failed authentication stores nothing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final

import structlog
from litestar import Request, Response, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, QueryParameter

from orderhub.application.services import intake
from orderhub.entrypoints.web.problems import ProblemError, problem_responses
from orderhub.entrypoints.web.routes._params import HubDep
from orderhub.entrypoints.web.schemas import WebhookAck
from orderhub.entrypoints.web.webhook_auth import WebhookAuthError, verify_webhook
from orderhub.metrics import WEBHOOKS_RECEIVED

# Credentials are never stored with a message.
UNSTORED_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})

log = structlog.get_logger(__name__)


def stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name not in UNSTORED_HEADERS}


@post(
    "/webhooks/{channel:str}/{account:str}",
    summary="Receive a channel's webhook",
    description="Authenticated per account: Standard Webhooks HMAC signature headers, "
    "`Authorization: Bearer <token>`, or `?token=<token>`. Answers 202 once the message is "
    "stored, 200 for a message already received (not applied twice).",
    responses={
        200: ResponseSpec(
            WebhookAck, description="Already received: acknowledged, not applied twice"
        ),
        **problem_responses(401, 404, 413),
    },
    status_code=202,
)
async def receive_webhook(
    hub: HubDep,
    request: Request[Any, Any, Any],
    channel: FromPath[str],
    account: FromPath[str],
    token: Annotated[str | None, QueryParameter(description="Secret path token, if used.")] = None,
) -> Response[WebhookAck]:
    configured = hub.channels.account(channel, account)
    body = await request.body()
    headers = {name.lower(): value for name, value in request.headers.items()}
    try:
        method = verify_webhook(
            configured.config.webhook,
            headers=headers,
            query_token=token,
            body=body,
            now=hub.clock.now(),
        )
    except WebhookAuthError as exc:
        log.warning("webhook refused", reason=exc.reason)
        WEBHOOKS_RECEIVED.labels(channel=configured.channel, outcome="unauthorized").inc()
        raise ProblemError(401, "unauthorized", f"webhook not authenticated: {exc.reason}") from exc
    stored = await intake.store_message(
        hub, channel=channel, account=account, body=body, headers=stored_headers(headers)
    )
    outcome = "duplicate" if stored.duplicate else "stored"
    WEBHOOKS_RECEIVED.labels(channel=configured.channel, outcome=outcome).inc()
    log.info(
        "webhook stored",
        message_id=stored.message_id,
        duplicate=stored.duplicate,
        auth=method.value,
        size=len(body),
    )
    return Response(
        WebhookAck(message_id=stored.message_id, duplicate=stored.duplicate),
        status_code=200 if stored.duplicate else 202,
    )
