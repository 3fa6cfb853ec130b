"""What an operator sees and does: failed and held channel commands, retried or abandoned;
failed inbox messages, retried; an order read again from its channel; attention resolved."""

from __future__ import annotations

from typing import Annotated, Any, Final

from litestar import Request, get, post
from litestar.params import FromPath, JSONBody, QueryParameter

from orderhub.application.services import operations
from orderhub.entrypoints.web.auth import caller_limit, requires
from orderhub.entrypoints.web.presenters import inbox_message_out, ops_command_out
from orderhub.entrypoints.web.problems import problem_responses
from orderhub.entrypoints.web.routes._params import HubDep
from orderhub.entrypoints.web.schemas import (
    AttentionResolved,
    AttentionResolveRequest,
    InboxMessageList,
    InboxMessageOut,
    OpsCommandList,
    OpsCommandOut,
    ResyncOut,
)
from orderhub.entrypoints.web.settings import OPS

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 500

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)]


@get(
    "/ops/failed-commands",
    opt=requires(OPS),
    summary="Channel commands that failed for good",
    responses=problem_responses(401, 403, 422),
)
async def failed_commands(
    hub: HubDep, request: Request[Any, Any, Any], limit: Limit = DEFAULT_LIMIT
) -> OpsCommandList:
    found = await operations.failed_commands(hub, limit=limit, within=caller_limit(request))
    return OpsCommandList(commands=[ops_command_out(c) for c in found])


@post(
    "/ops/commands/{command_id:str}/retry",
    status_code=202,
    opt=requires(OPS),
    summary="Send a failed channel command again",
    responses=problem_responses(401, 403, 404, 409),
)
async def retry_command(hub: HubDep, command_id: FromPath[str]) -> OpsCommandOut:
    return ops_command_out(await operations.retry_command(hub, command_id))


@get(
    "/ops/held-commands",
    opt=requires(OPS),
    summary="Commands waiting behind a failed command of their order",
    description="Each names the failed command it waits for (held_by): retry or abandon "
    "that one and the chain goes on, in order.",
    responses=problem_responses(401, 403, 422),
)
async def held_commands(
    hub: HubDep, request: Request[Any, Any, Any], limit: Limit = DEFAULT_LIMIT
) -> OpsCommandList:
    found = await operations.held_commands(hub, limit=limit, within=caller_limit(request))
    return OpsCommandList(commands=[ops_command_out(c) for c in found])


@post(
    "/ops/commands/{command_id:str}/abandon",
    status_code=202,
    opt=requires(OPS),
    summary="Give a failed channel command up for good",
    description="It is never sent; the order's later commands go. The order keeps showing "
    "what the channel says.",
    responses=problem_responses(401, 403, 404, 409),
)
async def abandon_command(hub: HubDep, command_id: FromPath[str]) -> OpsCommandOut:
    return ops_command_out(await operations.abandon_command(hub, command_id))


@post(
    "/ops/orders/{order_id:str}/resync",
    status_code=202,
    opt=requires(OPS),
    summary="Read the order again from its channel",
    description="What the channel shows is stored in the inbox and applied like any "
    "channel message (a lost webhook is healed). 503 when the channel does not answer, "
    "409 when its adapter cannot read one order.",
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def resync_order(hub: HubDep, order_id: FromPath[str]) -> ResyncOut:
    stored = await operations.resync_order(hub, order_id)
    return ResyncOut(message_id=stored.message_id, duplicate=stored.duplicate)


@post(
    "/ops/orders/{order_id:str}/attention/resolve",
    status_code=200,
    opt=requires(OPS),
    summary="A person looked: clear the order's attention reasons",
    description="Every reason, or one `code`. A reason about a failed command clears when "
    "the command is retried or abandoned.",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def resolve_attention(
    hub: HubDep, order_id: FromPath[str], data: JSONBody[AttentionResolveRequest | None] = None
) -> AttentionResolved:
    code = data.code if data is not None else None
    cleared = await operations.resolve_attention(hub, order_id, code=code)
    return AttentionResolved(cleared=cleared)


@get(
    "/ops/failed-messages",
    opt=requires(OPS),
    summary="Inbox messages that could not be applied",
    responses=problem_responses(401, 403, 422),
)
async def failed_messages(
    hub: HubDep, request: Request[Any, Any, Any], limit: Limit = DEFAULT_LIMIT
) -> InboxMessageList:
    found = await operations.failed_messages(hub, limit=limit, within=caller_limit(request))
    return InboxMessageList(messages=[inbox_message_out(m) for m in found])


@post(
    "/ops/messages/{message_id:str}/retry",
    status_code=202,
    opt=requires(OPS),
    summary="Apply a failed inbox message again",
    responses=problem_responses(401, 403, 404, 409),
)
async def retry_message(hub: HubDep, message_id: FromPath[str]) -> InboxMessageOut:
    return inbox_message_out(await operations.retry_message(hub, message_id))


OPS_HANDLERS: Final = (
    failed_commands,
    retry_command,
    held_commands,
    abandon_command,
    failed_messages,
    retry_message,
    resync_order,
    resolve_attention,
)
