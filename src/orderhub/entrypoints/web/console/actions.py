"""Signing in and out, and what an operator does from the console.

Every action is a POST with the session's CSRF token, by a key with ``ops``; each is
recorded on the feed (``operator.action``, with ``by``) by the service and logged here.
Anything that calls a marketplace (retrying a command, resyncing an order) is asked for
first on a confirmation page (GET), then done by its form (POST)."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

from litestar import Request, get, post
from litestar.datastructures import Cookie
from litestar.params import FromPath
from litestar.response import Redirect, Template

from orderhub.application.ports import CommandState
from orderhub.application.services import operations, overview, queries
from orderhub.entrypoints.web.console.base import (
    CSRF_FIELD,
    PREFIX,
    ConsoleError,
    acting_session,
    current_session,
    form_of,
    is_https,
    key_may_sign_in,
    log,
    page,
    session_cookie,
    state_of,
)
from orderhub.entrypoints.web.console.session import LOGIN_COOKIE, LOGIN_SECONDS, csrf_valid

Req = Request[Any, Any, Any]
KEY_FIELD: Final = "api_key"


def _next(raw: str | None) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    if raw and raw.startswith(f"{PREFIX}/") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return f"{PREFIX}/"


def _login_page(request: Req, *, status: int = 200, error: str | None = None) -> Template:
    state = state_of(request)
    token, cookie = state.sessions.login_token(now=state.hub.clock.now())
    response = page(
        "login.html",
        None,
        status_code=status,
        login_token=token,
        key_field=KEY_FIELD,
        next=_next(request.query_params.get("next")),
        error=error,
    )
    response.cookies.append(
        Cookie(
            key=LOGIN_COOKIE,
            value=cookie,
            path=PREFIX,
            max_age=LOGIN_SECONDS,
            httponly=True,
            secure=is_https(request),
            samesite="strict",
        )
    )
    return response


@get("/login", name="console:login")
async def login_form(request: Req) -> Template:
    return _login_page(request)


@post("/login", name="console:sign_in", status_code=303)
async def sign_in(request: Req) -> Redirect | Template:
    state = state_of(request)
    now = state.hub.clock.now()
    form = await form_of(request)
    if not state.sessions.login_token_valid(
        request.cookies.get(LOGIN_COOKIE), form.get(CSRF_FIELD, ""), now=now
    ):
        raise ConsoleError(403, "Request refused", "the sign-in form expired: load it again")
    presented = form.get(KEY_FIELD, "").strip()
    key = state.sessions.identify(presented) if presented else None
    if key is None:
        log.warning("console.sign_in_refused", reason="unknown key")
        return _login_page(request, status=401, error="That API key is not valid.")
    if key.limit is not None:
        log.warning("console.sign_in_refused", reason="limited", key=key.name)
        return _login_page(
            request,
            status=403,
            error=f"API key {key.name!r} is limited to some channels and accounts: the "
            "console shows every account, so only keys without a limit may sign in.",
        )
    if not key_may_sign_in(key):
        log.warning("console.sign_in_refused", reason="scope", key=key.name)
        return _login_page(
            request,
            status=403,
            error=f"API key {key.name!r} has neither the ops nor the console:read scope.",
        )
    log.info("console.signed_in", by=key.name)
    response = Redirect(_next(form.get("next")), status_code=303)
    response.cookies.append(
        session_cookie(request, state.sessions.issue(key, now=now), max_age=state.sessions.seconds)
    )
    response.cookies.append(Cookie(key=LOGIN_COOKIE, value="", path=PREFIX, max_age=0))
    return response


@post("/logout", name="console:sign_out", status_code=303)
async def sign_out(request: Req) -> Redirect:
    session = current_session(request)
    form = await form_of(request)
    if not csrf_valid(session, form.get(CSRF_FIELD)):
        raise ConsoleError(403, "Request refused", "the form's CSRF token does not match")
    log.info("console.signed_out", by=session.key_name)
    response = Redirect(f"{PREFIX}/login", status_code=303)
    response.cookies.append(session_cookie(request, "", max_age=0))
    return response


def _done(path: str, what: str) -> Redirect:
    return Redirect(f"{path}?done={quote(what)}", status_code=303)


CONFIRM: Final = {
    "retry": (
        "Send this command to the marketplace again",
        "The hub sends it again from attempt one; the commands held behind it follow.",
    ),
    "abandon": (
        "Give this command up for good",
        "It is never sent; the order's later commands go. The order keeps showing what "
        "the marketplace says.",
    ),
}


@get(
    ["/commands/{command_id:str}/retry", "/commands/{command_id:str}/abandon"],
    name="console:confirm_command",
)
async def confirm_command(request: Req, command_id: FromPath[str]) -> Template:
    session = current_session(request)
    action = request.url.path.rsplit("/", 1)[-1]
    command = await overview.find_command(state_of(request).hub, command_id)
    if command.state is not CommandState.FAILED:
        raise ConsoleError(
            409, "Nothing to do", f"command {command_id} is {command.state.value}, not failed"
        )
    title, detail = CONFIRM[action]
    return page(
        "confirm.html",
        session,
        title=title,
        detail=detail,
        action=f"{PREFIX}/commands/{command_id}/{action}",
        back=f"{PREFIX}/orders/{command.order_id}",
        command=command,
        order_id=command.order_id,
        button=f"{action.capitalize()} command",
    )


@post("/commands/{command_id:str}/retry", name="console:retry_command", status_code=303)
async def retry_command(request: Req, command_id: FromPath[str]) -> Redirect:
    session, _ = await acting_session(request)
    hub = state_of(request).hub
    command = await operations.retry_command(hub, command_id, by=session.key_name)
    log.info(
        "console.command_retried",
        by=session.key_name,
        command_id=command_id,
        order_id=command.order_id,
    )
    return _done(f"{PREFIX}/orders/{command.order_id}", "command_retried")


@post("/commands/{command_id:str}/abandon", name="console:abandon_command", status_code=303)
async def abandon_command(request: Req, command_id: FromPath[str]) -> Redirect:
    session, _ = await acting_session(request)
    hub = state_of(request).hub
    command = await operations.abandon_command(hub, command_id, by=session.key_name)
    log.info(
        "console.command_abandoned",
        by=session.key_name,
        command_id=command_id,
        order_id=command.order_id,
    )
    return _done(f"{PREFIX}/orders/{command.order_id}", "command_abandoned")


@post("/messages/{message_id:str}/retry", name="console:retry_message", status_code=303)
async def retry_message(request: Req, message_id: FromPath[str]) -> Redirect:
    session, _ = await acting_session(request)
    hub = state_of(request).hub
    await operations.retry_message(hub, message_id, by=session.key_name)
    log.info("console.message_retried", by=session.key_name, message_id=message_id)
    return _done(f"{PREFIX}/messages/{message_id}", "message_retried")


@get("/orders/{order_id:str}/resync", name="console:confirm_resync")
async def confirm_resync(request: Req, order_id: FromPath[str]) -> Template:
    session = current_session(request)
    order = (await queries.get_order(state_of(request).hub, order_id)).order
    return page(
        "confirm.html",
        session,
        title=f"Read order {order.channel_order_id} again from {order.channel}",
        detail="The hub asks the marketplace for the order and applies what it shows, "
        "like any message from it.",
        action=f"{PREFIX}/orders/{order_id}/resync",
        back=f"{PREFIX}/orders/{order_id}",
        command=None,
        order_id=order_id,
        button="Resync order",
    )


@post("/orders/{order_id:str}/resync", name="console:resync", status_code=303)
async def resync(request: Req, order_id: FromPath[str]) -> Redirect:
    session, _ = await acting_session(request)
    hub = state_of(request).hub
    stored = await operations.resync_order(hub, order_id, by=session.key_name)
    log.info(
        "console.order_resynced",
        by=session.key_name,
        order_id=order_id,
        message_id=stored.message_id,
    )
    return _done(f"{PREFIX}/orders/{order_id}", "order_resynced")


@post("/orders/{order_id:str}/attention/resolve", name="console:resolve", status_code=303)
async def resolve_attention(request: Req, order_id: FromPath[str]) -> Redirect:
    session, _ = await acting_session(request)
    hub = state_of(request).hub
    cleared = await operations.resolve_attention(hub, order_id, code=None, by=session.key_name)
    log.info("console.attention_resolved", by=session.key_name, order_id=order_id, cleared=cleared)
    return _done(f"{PREFIX}/orders/{order_id}", "attention_resolved")


ACTION_HANDLERS: Final = (
    login_form,
    sign_in,
    sign_out,
    confirm_command,
    retry_command,
    abandon_command,
    retry_message,
    confirm_resync,
    resync,
    resolve_attention,
)
