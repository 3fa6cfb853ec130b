"""Reading orders: the filtered, cursor-paginated list and one whole order."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final

from litestar import Request, get
from litestar.params import FromPath, FromQuery, QueryParameter

from orderhub.application.ports import OrderFilter
from orderhub.application.services import queries
from orderhub.domain.values import OrderFulfilledBy, OrderStatus
from orderhub.entrypoints.web.auth import caller_limit, requires
from orderhub.entrypoints.web.pagination import InvalidCursor, decode_cursor, encode_cursor
from orderhub.entrypoints.web.presenters import order_detail_out, order_out
from orderhub.entrypoints.web.problems import ProblemError, invalid_field, problem_responses
from orderhub.entrypoints.web.routes._params import HubDep
from orderhub.entrypoints.web.schemas import FieldError, OrderDetailOut, OrderPage
from orderhub.entrypoints.web.settings import READ

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 500


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise invalid_field(name, "needs a time zone (e.g. Z or +02:00)", source="query")
    if not _in_utc_range(value):
        raise invalid_field(name, "is out of range once converted to UTC", source="query")
    return value


def _in_utc_range(value: datetime) -> bool:
    """Whether ``value`` is a datetime in UTC too: the database compares it in UTC, and
    9999-12-31T23:00:00-14:00 or 0001-01-01T00:00:00+14:00 have no UTC datetime."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        return False
    return True


def _after(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        return decode_cursor(cursor)
    except InvalidCursor as exc:
        raise ProblemError(
            422,
            "invalid-cursor",
            str(exc),
            errors=[FieldError(field="cursor", message=str(exc), source="query")],
        ) from exc


@get(
    "/orders",
    opt=requires(READ),
    summary="List orders",
    description="Orders in the order of their newest change (the feed sequence of their "
    "newest event: an order that changes while you page shows up again, later), filtered; "
    "follow next_cursor until it is null. `attention=true` lists the orders a person must "
    "look at (the hub and the channel disagree); `fulfilled_by=seller` leaves out the "
    "orders the marketplace ships itself.",
    responses=problem_responses(401, 403, 422),
)
async def list_orders(
    hub: HubDep,
    request: Request[Any, Any, Any],
    status: FromQuery[OrderStatus | None] = None,
    channel: FromQuery[str | None] = None,
    account: FromQuery[str | None] = None,
    updated_after: FromQuery[datetime | None] = None,
    ship_by_before: FromQuery[datetime | None] = None,
    attention: FromQuery[bool | None] = None,
    fulfilled_by: FromQuery[OrderFulfilledBy | None] = None,
    cursor: FromQuery[str | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> OrderPage:
    filters = OrderFilter(
        status=status,
        channel=channel,
        account=account,
        updated_after=_aware("updated_after", updated_after),
        ship_by_before=_aware("ship_by_before", ship_by_before),
        attention=attention,
        fulfilled_by=fulfilled_by,
        within=caller_limit(request),
    )
    after = _after(cursor)
    found = await queries.list_orders(hub, filters, after_seq=after, limit=limit + 1)
    page = list(found[:limit])
    more = len(found) > limit
    return OrderPage(
        orders=[order_out(order) for order in page],
        next_cursor=encode_cursor(page[-1].last_seq) if more and page else None,
    )


@get(
    "/orders/{order_id:str}",
    opt=requires(READ),
    summary="One whole order",
    description="Lines with counters, fulfilments, shipments, cancellations, returns and the "
    "channel calls still pending or failed.",
    responses=problem_responses(401, 403, 404),
)
async def get_order(
    hub: HubDep, request: Request[Any, Any, Any], order_id: FromPath[str]
) -> OrderDetailOut:
    view = await queries.get_order(hub, order_id, within=caller_limit(request))
    return order_detail_out(view.order, view.commands)
