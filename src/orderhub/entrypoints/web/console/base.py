"""What the console's pages share: the session a request signs in with, CSRF checks, the
template context, and errors as plain HTML pages (never a problem document, never a 500
for bad input)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import structlog
from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.response import Redirect, Template

from orderhub.application.hub import Hub
from orderhub.domain.errors import DomainError
from orderhub.entrypoints.web.console.session import (
    COOKIE,
    Session,
    Sessions,
    csrf_valid,
)
from orderhub.entrypoints.web.problems import ProblemError, domain_status
from orderhub.entrypoints.web.settings import ApiKey

PREFIX: Final = "/console"
CSRF_FIELD: Final = "csrf_token"
MAX_FORM_BYTES: Final = 16 * 1024
SESSIONS_STATE: Final = "orderhub_console_sessions"

log = structlog.get_logger("orderhub.console")


class ConsoleError(Exception):
    """An HTML error page: ``status`` with a sentence for a person."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


class SignInRequired(Exception):
    """No valid session: pages send the browser to the sign-in form."""


@dataclass(frozen=True, slots=True)
class ConsoleState:
    hub: Hub
    sessions: Sessions


def state_of(request: Request[Any, Any, Any]) -> ConsoleState:
    found = request.app.state[SESSIONS_STATE]
    assert isinstance(found, ConsoleState)
    return found


def is_https(request: Request[Any, Any, Any]) -> bool:
    return request.url.scheme == "https"


def session_cookie(request: Request[Any, Any, Any], value: str, *, max_age: int) -> Cookie:
    return Cookie(
        key=COOKIE,
        value=value,
        path=PREFIX,
        max_age=max_age,
        httponly=True,
        secure=is_https(request),
        samesite="strict",
    )


def current_session(request: Request[Any, Any, Any]) -> Session:
    state = state_of(request)
    session = state.sessions.read(request.cookies.get(COOKIE), now=state.hub.clock.now())
    if session is None:
        raise SignInRequired
    structlog.contextvars.bind_contextvars(caller=session.key_name)
    return session


async def form_of(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The posted form, its first value per field (urlencoded only, small)."""
    body = await request.body()
    if not body:
        return {}
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise ConsoleError(415, "Unsupported form", "send the page's own form")
    if len(body) > MAX_FORM_BYTES:
        raise ConsoleError(413, "Form too large", "the form is larger than any console form")
    form = await request.form()
    return {name: value for name, value in form.items() if isinstance(value, str)}


async def acting_session(request: Request[Any, Any, Any]) -> tuple[Session, dict[str, str]]:
    """The session of a POST that changes something: signed in, with ``ops``, and the
    session's CSRF token in the form (else 403, and nothing is done)."""
    try:
        session = current_session(request)
    except SignInRequired:
        raise ConsoleError(
            403, "Not signed in", "sign in with an API key that has the ops scope"
        ) from None
    form = await form_of(request)
    if not csrf_valid(session, form.get(CSRF_FIELD)):
        log.warning("console.csrf_refused", path=request.url.path, by=session.key_name)
        raise ConsoleError(
            403, "Request refused", "the form's CSRF token does not match your session: reload"
        )
    if not session.can_act:
        raise ConsoleError(
            403, "Read-only access", f"API key {session.key_name!r} may look but not act (ops)"
        )
    return session, form


def page(
    template: str,
    session: Session | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> Template:
    return Template(
        template_name=template,
        context={"session": session, "csrf_field": CSRF_FIELD, "prefix": PREFIX, **context},
        status_code=status_code,
        headers=SECURITY_HEADERS,
    )


SECURITY_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def key_may_sign_in(key: ApiKey | None) -> bool:
    return key is not None and Sessions.may_look(key)


def handle_console_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Every error under ``/console`` as a page a person reads."""
    if isinstance(exc, SignInRequired):
        if request.method == "GET":
            return Redirect(f"{PREFIX}/login?next={quote(request.url.path)}", status_code=303)
        exc = ConsoleError(403, "Not signed in", "sign in first")
    status, title, detail = _describe(request, exc)
    try:
        session = current_session(request)
    except SignInRequired:
        session = None
    return page("error.html", session, status_code=status, title=title, detail=detail)


def _describe(request: Request[Any, Any, Any], exc: Exception) -> tuple[int, str, str]:
    if isinstance(exc, ConsoleError):
        return exc.status, exc.title, exc.detail
    if isinstance(exc, ProblemError):
        return exc.status, exc.rule.replace("-", " ").capitalize(), exc.detail
    if isinstance(exc, DomainError):
        status = domain_status(exc)
        log.info("console.refused", rule=exc.rule, detail=exc.detail, status=status)
        return status, exc.rule.replace("-", " ").capitalize(), exc.detail
    if isinstance(exc, NotFoundException):
        return 404, "Not found", "there is no such page in the console"
    if isinstance(exc, ValidationException):
        return 400, "Bad request", "the address or form has a value this page cannot read"
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        return exc.status_code, "Request refused", str(exc.detail)
    log.error("console.unhandled", path=request.url.path, exc_info=exc)
    return 500, "Something broke", "the console could not show this; the log has the details"
