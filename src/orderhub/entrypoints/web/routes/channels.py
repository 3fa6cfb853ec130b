"""Which channel adapters are installed, with their accounts and capabilities."""

from __future__ import annotations

from litestar import get

from orderhub.entrypoints.web.auth import requires
from orderhub.entrypoints.web.presenters import channel_list
from orderhub.entrypoints.web.problems import problem_responses
from orderhub.entrypoints.web.routes._params import HubDep
from orderhub.entrypoints.web.schemas import ChannelList
from orderhub.entrypoints.web.settings import READ


@get(
    "/channels",
    opt=requires(READ),
    summary="Installed channel adapters, their accounts and capabilities",
    responses=problem_responses(401, 403),
)
async def list_channels(hub: HubDep) -> ChannelList:
    return channel_list(hub.channels)
