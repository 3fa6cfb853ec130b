"""Which channel adapters are installed, with their accounts and capabilities."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from orderhub.entrypoints.web.auth import caller_limit, requires
from orderhub.entrypoints.web.presenters import channel_list
from orderhub.entrypoints.web.problems import problem_responses
from orderhub.entrypoints.web.routes._params import HubDep
from orderhub.entrypoints.web.schemas import ChannelList
from orderhub.entrypoints.web.settings import READ


@get(
    "/channels",
    opt=requires(READ),
    summary="Installed channel adapters, their accounts and capabilities",
    description="A key limited to some channels and accounts sees only those.",
    responses=problem_responses(401, 403),
)
async def list_channels(hub: HubDep, request: Request[Any, Any, Any]) -> ChannelList:
    return channel_list(hub.channels, within=caller_limit(request))
