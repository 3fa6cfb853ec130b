"""What an operator sees and does: failed channel commands and inbox messages, retried."""

from __future__ import annotations

from typing import Annotated, Final

from litestar import get, post
from litestar.params import FromPath, QueryParameter

from orderhub.application.services import operations
from orderhub.entrypoints.web.auth import requires
from orderhub.entrypoints.web.presenters import inbox_message_out, ops_command_out
from orderhub.entrypoints.web.problems import problem_responses
from orderhub.entrypoints.web.routes._params import HubDep
from orderhub.entrypoints.web.schemas import (
    InboxMessageList,
    InboxMessageOut,
    OpsCommandList,
    OpsCommandOut,
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
async def failed_commands(hub: HubDep, limit: Limit = DEFAULT_LIMIT) -> OpsCommandList:
    found = await operations.failed_commands(hub, limit=limit)
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
    "/ops/failed-messages",
    opt=requires(OPS),
    summary="Inbox messages that could not be applied",
    responses=problem_responses(401, 403, 422),
)
async def failed_messages(hub: HubDep, limit: Limit = DEFAULT_LIMIT) -> InboxMessageList:
    found = await operations.failed_messages(hub, limit=limit)
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


OPS_HANDLERS: Final = (failed_commands, retry_command, failed_messages, retry_message)
