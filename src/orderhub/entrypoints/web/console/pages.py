"""The console's pages (GET): overview, orders, one order, its raw messages."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, TypeVar

from litestar import Request, get
from litestar.params import FromPath
from litestar.response import Template

from orderhub.application.ports import CommandState, OrderFilter
from orderhub.application.services import overview as overview_service
from orderhub.application.services import queries
from orderhub.application.services.operations import NotFound
from orderhub.domain.values import OrderFulfilledBy, OrderStatus
from orderhub.entrypoints.web.console.base import ConsoleError, current_session, page, state_of
from orderhub.entrypoints.web.console.chart import build_chart
from orderhub.entrypoints.web.pagination import InvalidCursor, decode_cursor, encode_cursor

PAGE_SIZE: Final = 50
FILTERS: Final = ("status", "channel", "account", "attention", "fulfilled_by", "ship_by_before")
E = TypeVar("E", bound=StrEnum)

Req = Request[Any, Any, Any]


@get("/", name="console:overview")
async def overview_page(request: Req) -> Template:
    session = current_session(request)
    hub = state_of(request).hub
    view = await overview_service.overview(hub)
    table: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for item in view.status_counts:
        table[(item.channel, item.account)][item.status.value] = item.count
    accounts = sorted({(a.channel, a.name) for a in hub.channels.accounts()} | set(table), key=str)
    activity: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for seen in view.activity:
        activity[(seen.channel, seen.account)].append(seen)
    health: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for checked in view.health:
        health[(checked.channel, checked.account)].append(checked)
    chart = build_chart(
        view.received_per_hour, since=view.chart_since, hours=overview_service.CHART_HOURS
    )
    return page(
        "overview.html",
        session,
        view=view,
        now=view.now,
        statuses=list(OrderStatus),
        table=table,
        accounts=accounts,
        activity=activity,
        health=health,
        chart=chart,
    )


def _enum(kind: type[E], name: str, raw: str | None) -> E | None:
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        allowed = ", ".join(item.value for item in kind)
        raise ConsoleError(400, "Bad filter", f"{name} must be one of: {allowed}") from None


def _when(name: str, raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ConsoleError(400, "Bad filter", f"{name} is not a date and time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ConsoleError(400, "Bad filter", f"{name} is out of range") from None
    return value


@get("/orders", name="console:orders")
async def orders_page(request: Req) -> Template:
    session = current_session(request)
    hub = state_of(request).hub
    params = {name: request.query_params.get(name) or "" for name in ("q", "cursor", *FILTERS)}
    if any(len(value) > 200 or "\x00" in value for value in params.values()):
        raise ConsoleError(400, "Bad search", "a search or filter value is too long")
    next_cursor = None
    if params["q"].strip():
        found = await overview_service.search_orders(hub, params["q"], limit=PAGE_SIZE)
    else:
        attention = params["attention"]
        if attention not in ("", "true", "false"):
            raise ConsoleError(400, "Bad filter", "attention must be true or false")
        filters = OrderFilter(
            status=_enum(OrderStatus, "status", params["status"]),
            channel=params["channel"] or None,
            account=params["account"] or None,
            ship_by_before=_when("ship_by_before", params["ship_by_before"]),
            attention=None if not attention else attention == "true",
            fulfilled_by=_enum(OrderFulfilledBy, "fulfilled_by", params["fulfilled_by"]),
        )
        try:
            after = decode_cursor(params["cursor"]) if params["cursor"] else None
        except InvalidCursor:
            raise ConsoleError(
                400, "Bad page", "the page link is not one the console made"
            ) from None
        more = await queries.list_orders(hub, filters, after_seq=after, limit=PAGE_SIZE + 1)
        found = list(more[:PAGE_SIZE])
        if len(more) > PAGE_SIZE and found:
            next_cursor = encode_cursor(found[-1].last_seq)
    channels = sorted({a.channel for a in hub.channels.accounts()})
    return page(
        "orders.html",
        session,
        now=hub.clock.now(),
        orders=found,
        params=params,
        next_cursor=next_cursor,
        statuses=list(OrderStatus),
        fulfilled=list(OrderFulfilledBy),
        channels=channels,
    )


@get("/orders/{order_id:str}", name="console:order")
async def order_page(request: Req, order_id: FromPath[str]) -> Template:
    session = current_session(request)
    hub = state_of(request).hub
    found = await overview_service.order_file(hub, order_id)
    commands = {c.id: c for c in found.commands}
    working = any(c.state is CommandState.PENDING and c.held_by is None for c in found.commands)
    return page(
        "order.html",
        session,
        now=hub.clock.now(),
        order=found.order,
        commands=found.commands,
        command_by_id=commands,
        events=found.events,
        working=working,
        done=request.query_params.get("done"),
    )


@get("/orders/{order_id:str}/messages", name="console:order_messages")
async def order_messages_page(request: Req, order_id: FromPath[str]) -> Template:
    session = current_session(request)
    hub = state_of(request).hub
    found = await overview_service.order_file(hub, order_id, events=0)
    messages = await overview_service.order_messages(hub, order_id)
    return page("messages.html", session, now=hub.clock.now(), order=found.order, messages=messages)


@get("/messages/{message_id:str}", name="console:message")
async def message_page(request: Req, message_id: FromPath[str]) -> Template:
    session = current_session(request)
    hub = state_of(request).hub
    message = await overview_service.inbox_message(hub, message_id)
    if message is None:
        raise NotFound(f"no inbox message {message_id}")
    return page(
        "message.html",
        session,
        now=hub.clock.now(),
        message=message,
        done=request.query_params.get("done"),
    )


@get("/{rest:path}", name="console:unknown")
async def unknown_page(request: Req, rest: FromPath[str]) -> Template:
    raise ConsoleError(404, "Not found", "there is no such page in the console")
