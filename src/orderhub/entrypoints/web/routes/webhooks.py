"""One route for every webhook channel: authenticate per account, store, then answer.

The raw body is stored in the inbox before the 2xx, whatever it holds: a body that
cannot be parsed is stored too, and the worker marks it failed for an operator. A
failed authentication stores nothing, and whatever the credentials hold, it is a 401.

The adapter decides what its channel expects: its own signature scheme
(``verify_webhook``, else the account's configured methods), the status of the
acknowledgement (``webhook_ack_status``: 202 by default, Spresso 200; a duplicate is
always 200) and the dedupe key (``dedupe_key``: the sender's message id or a natural
key; else a hash of the body). The answer's body is a :class:`WebhookAck` either way.

A channel that says what a message is only by where it is sent (one URL per event, as
Spresso may register them) is given ``/webhooks/{channel}/{account}/{topic}``: the topic
reaches the adapter as the header :data:`TOPIC_HEADER` and is stored with the message's
headers, so that its dedupe key, order key and mapping can read it. Only the path sets
that header: one a sender sends itself is dropped (it is not covered by any signature)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Final

import structlog
from litestar import Request, Response, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, QueryParameter

from orderhub.application.services import intake
from orderhub.channels.spi import WEBHOOK_TOPIC_HEADER, ChannelAccount
from orderhub.entrypoints.web.problems import ProblemError, problem_responses
from orderhub.entrypoints.web.routes._params import HubDep
from orderhub.entrypoints.web.schemas import WebhookAck
from orderhub.entrypoints.web.webhook_auth import Authenticated, WebhookAuthError, authenticate
from orderhub.metrics import WEBHOOK_SIGNATURES, WEBHOOKS_RECEIVED

# Credentials are never stored with a message.
UNSTORED_HEADERS: Final = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
ACK_STATUSES: Final = frozenset({200, 202})
DUPLICATE_STATUS: Final = 200
TOPIC_HEADER: Final = WEBHOOK_TOPIC_HEADER
"""The topic of ``/webhooks/{channel}/{account}/{topic}``, as the adapter and the inbox see it."""
TOPIC_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")

log = structlog.get_logger(__name__)


def stored_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name not in UNSTORED_HEADERS}


def with_topic(headers: Mapping[str, str], topic: str | None) -> dict[str, str]:
    """The request's headers (lower-case names) with :data:`TOPIC_HEADER` set from the
    path, or without it when the path names no topic."""
    found = {name: value for name, value in headers.items() if name != TOPIC_HEADER}
    if topic is None:
        return found
    if not TOPIC_PATTERN.fullmatch(topic):
        raise ProblemError(
            404,
            "unknown-webhook-topic",
            "a webhook topic is 1 to 100 letters, digits, '.', '_', ':' or '-'",
        )
    found[TOPIC_HEADER] = topic
    return found


@post(
    ["/webhooks/{channel:str}/{account:str}", "/webhooks/{channel:str}/{account:str}/{topic:str}"],
    summary="Receive a channel's webhook",
    description="Authenticated per account: the channel's own signature scheme where its "
    "adapter has one (Spresso: `X-Spresso-Hmac-SHA256`), else Standard Webhooks HMAC "
    "signature headers, `Authorization: Bearer <token>`, or `?token=<token>`. Answers once "
    "the message is stored: 202, or 200 for channels that expect it; 200 for a message "
    "already received (not applied twice). A trailing `/{topic}` names the event for channels "
    "that send one event type per URL; the adapter reads it as the header "
    f"`{TOPIC_HEADER}`.",
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
    topic = request.path_params.get("topic")  # only the path sets it, never the query
    headers = with_topic({name.lower(): value for name, value in request.headers.items()}, topic)
    try:
        auth = authenticate(
            configured, headers=headers, query_token=token, body=body, now=hub.clock.now()
        )
    except WebhookAuthError as exc:
        log.warning("webhook refused", reason=exc.reason, exc_info=exc.__cause__)
        WEBHOOKS_RECEIVED.labels(channel=configured.channel, outcome="unauthorized").inc()
        raise ProblemError(401, "unauthorized", f"webhook not authenticated: {exc.reason}") from exc
    _count_signature(configured, auth)
    stored = await intake.store_message(
        hub, channel=channel, account=account, body=body, headers=stored_headers(headers)
    )
    outcome = "duplicate" if stored.duplicate else "stored"
    WEBHOOKS_RECEIVED.labels(channel=configured.channel, outcome=outcome).inc()
    log.info(
        "webhook stored",
        message_id=stored.message_id,
        duplicate=stored.duplicate,
        auth=auth.method,
        variant=auth.variant,
        size=len(body),
    )
    return Response(
        WebhookAck(message_id=stored.message_id, duplicate=stored.duplicate),
        status_code=DUPLICATE_STATUS if stored.duplicate else ack_status(configured),
    )


def ack_status(account: ChannelAccount) -> int:
    """The adapter's acknowledgement of a new message: 200 or 202 (anything else: 202)."""
    status = account.webhook_ack_status
    if status in ACK_STATUSES:
        return status
    log.error(
        "webhook ack status not allowed, 202 sent", status=status, allowed=sorted(ACK_STATUSES)
    )
    return 202


def _count_signature(account: ChannelAccount, auth: Authenticated) -> None:
    if auth.variant is not None:
        WEBHOOK_SIGNATURES.labels(
            channel=account.channel, scheme=auth.method, variant=auth.variant
        ).inc()
