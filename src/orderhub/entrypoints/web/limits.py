"""API keys limited to channels and accounts: what a route names in its path is checked.

Every route under ``/api/v1`` that names something in its path names an order
(``order_id``, and with it a fulfilment or an invoice *of that order*), a channel command
(``command_id``) or an inbox message (``message_id``). For a limited key the guard looks
each up before the handler runs (so before the body is read) and answers 404, with the
use case's own "not found", when it lies outside the key's limit: the key cannot tell
another account's order from one that does not exist. Lists and the feed take the limit
in their query (see the routes). :func:`check_routes` refuses to build an app with a
route whose path parameters this module does not know, so a new route cannot skip it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from litestar import Litestar
from litestar.routes import HTTPRoute

from orderhub.application.access import AccountLimit
from orderhub.application.hub import Hub
from orderhub.application.services import queries
from orderhub.channels.registry import ChannelRegistry
from orderhub.entrypoints.web.auth import ReachCheck
from orderhub.entrypoints.web.settings import ApiKey

ORDER: Final = "order_id"
COMMAND: Final = "command_id"
MESSAGE: Final = "message_id"
OF_THE_ORDER: Final = frozenset({"fulfilment_id", "invoice_id"})
"""Found only through the order the same path names (the use cases look them up there)."""
KNOWN: Final = frozenset({ORDER, COMMAND, MESSAGE}) | OF_THE_ORDER


def reach_check(hub: Hub) -> ReachCheck:
    async def check(limit: AccountLimit, params: Mapping[str, Any]) -> None:
        def named(name: str) -> str | None:
            value = params.get(name)
            return None if value is None else str(value)

        if any(named(name) is not None for name in (ORDER, COMMAND, MESSAGE)):
            await queries.ensure_within(
                hub,
                limit,
                order_id=named(ORDER),
                command_id=named(COMMAND),
                message_id=named(MESSAGE),
            )

    return check


def check_routes(app: Litestar, *, prefix: str) -> None:
    """Every route under ``prefix`` names only what :func:`reach_check` checks."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or not route.path.startswith(prefix):
            continue
        names = set(route.path_parameters)
        if unknown := names - KNOWN:
            raise RuntimeError(
                f"route {route.path} has path parameters {sorted(unknown)} that the check of "
                "limited API keys does not know: teach orderhub.entrypoints.web.limits"
            )
        if names & OF_THE_ORDER and ORDER not in names:
            raise RuntimeError(f"route {route.path} names a part of an order without the order")


def check_keys(keys: Iterable[ApiKey], registry: ChannelRegistry) -> None:
    """A limit names only channels and accounts the registry has (a typo would otherwise
    be a key that sees nothing)."""
    accounts = {(account.channel, account.name) for account in registry.accounts()}
    channels = {channel for channel, _ in accounts} | set(registry.plugins)
    for key in keys:
        if key.limit is None:
            continue
        if unknown := sorted(key.limit.channels - channels):
            raise ValueError(f"API key {key.name!r} is limited to unknown channels: {unknown}")
        if unknown_accounts := sorted(key.limit.accounts - accounts):
            named = [f"{channel}/{account}" for channel, account in unknown_accounts]
            raise ValueError(f"API key {key.name!r} is limited to unknown accounts: {named}")
