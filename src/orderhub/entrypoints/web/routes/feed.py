"""The feed: every event, gapless, in order; optionally held open until one arrives."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Annotated, Any, Final

from litestar import Request, get
from litestar.params import QueryParameter

from orderhub.application.services import queries
from orderhub.entrypoints.web.auth import caller, caller_limit, requires
from orderhub.entrypoints.web.long_polls import long_polls_of, unless_gone
from orderhub.entrypoints.web.presenters import feed_event_out
from orderhub.entrypoints.web.problems import problem_responses
from orderhub.entrypoints.web.routes._params import HubDep
from orderhub.entrypoints.web.schemas import FeedPage
from orderhub.entrypoints.web.settings import READ

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
MAX_WAIT_SECONDS: Final = 30
MAX_SEQ: Final = 2**63 - 1  # feed_events.seq is a BIGINT: a larger cursor is refused, not sent


@get(
    "/feed",
    opt=requires(READ),
    summary="Events after a cursor",
    description="Pass the previous answer's next_cursor as `after`. With `wait`, the call "
    "is held up to that many seconds until an event arrives. A key limited to some "
    "channels and accounts reads only their events; the cursor is the feed's own sequence, "
    "the others' events skipped. One API key may hold a few long-polls open at once "
    "(`[api] max_long_polls_per_key`, 4 by default): one more is a 429 with Retry-After. "
    "A cursor older than the feed keeps (retention) is 410 feed-cursor-expired: read the "
    "orders again and follow the feed from its head.",
    responses=problem_responses(401, 403, 410, 422, 429),
)
async def read_feed(
    hub: HubDep,
    request: Request[Any, Any, Any],
    # Litestar documents a bound as a float, 2**63 here: the document gets the exact one
    after: Annotated[int, QueryParameter(ge=0, le=MAX_SEQ, schema_extra={"maximum": MAX_SEQ})] = 0,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    wait: Annotated[float, QueryParameter(ge=0, le=MAX_WAIT_SECONDS)] = 0,
) -> FeedPage:
    # a long-poll counts against its key's share (429 over it); a plain read never does
    held = long_polls_of(request).hold(caller(request)) if wait > 0 else nullcontext()
    with held:
        reading = queries.read_feed_page(
            hub, after=after, limit=limit, wait_seconds=wait, within=caller_limit(request)
        )
        # a long-poll whose client left ends now, giving its place back (no one reads this)
        page = await unless_gone(request, reading) if wait > 0 else await reading
    if page is None:
        return FeedPage(events=[], next_cursor=after)
    return FeedPage(
        events=[feed_event_out(entry) for entry in page.entries], next_cursor=page.next_cursor
    )
