"""The operator console under ``/console``: server-rendered pages, assets in the package.

Sign-in takes an API key with ``ops`` (look and act) or ``console:read`` (look); see
:mod:`.session` for the cookie and :mod:`.actions` for what an operator can do."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar import Litestar, Router
from litestar.datastructures import CacheControlHeader, State
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig
from markupsafe import Markup

from orderhub.application.hub import Hub
from orderhub.entrypoints.web.console.actions import ACTION_HANDLERS
from orderhub.entrypoints.web.console.base import (
    PREFIX,
    SESSIONS_STATE,
    ConsoleState,
    handle_console_error,
    log,
)
from orderhub.entrypoints.web.console.pages import (
    message_page,
    order_messages_page,
    order_page,
    orders_page,
    overview_page,
    unknown_page,
)
from orderhub.entrypoints.web.console.session import Sessions
from orderhub.entrypoints.web.settings import WebSettings
from orderhub.sanitize import CONTROL, escape_controls

__all__ = [
    "console_lifespan",
    "console_router",
    "console_state",
    "handle_console_error",
    "is_console",
    "template_config",
]

HERE: Final = Path(__file__).parent
TEMPLATES: Final = HERE / "templates"
STATIC: Final = HERE / "static"
MAX_BODY_CHARS: Final = 200_000
SECRET_HEADER: Final = re.compile(r"authorization|signature|token|secret|cookie|api-?key", re.I)


def is_console(path: str) -> bool:
    return path == PREFIX or path.startswith(f"{PREFIX}/")


def _age(value: datetime | None, now: datetime) -> str:
    """``3 min``, ``2 h 5 min``, ``4 d 1 h``; ``in 2 h`` for a time still to come."""
    if value is None:
        return "-"
    delta = now - value
    ahead = delta < timedelta(0)
    seconds = int(abs(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        text = f"{days} d {hours} h"
    elif hours:
        text = f"{hours} h {minutes} min"
    elif minutes:
        text = f"{minutes} min"
    else:
        text = f"{seconds} s"
    return f"in {text}" if ahead else text


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _money(amount: int | None, currency: str | None) -> str:
    if amount is None:
        return "-"
    return f"{amount / 100:,.2f} {currency or ''}".strip()


def _web_url(value: str | None) -> str | None:
    """A link only to a web page: a channel's ``javascript:`` URL stays text."""
    if not value:
        return None
    return value if urlsplit(value.strip()).scheme.lower() in ("http", "https") else None


def _body_text(body: bytes) -> str:
    """A raw body as text, shown escaped (JSON indented when it is JSON)."""
    text = body.decode("utf-8", errors="replace")
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)[:MAX_BODY_CHARS]
    except ValueError:
        return text[:MAX_BODY_CHARS]


def _headers(headers: dict[str, str]) -> list[tuple[str, str]]:
    return sorted(
        (name, "***" if SECRET_HEADER.search(name) else value) for name, value in headers.items()
    )


def _visible(value: Any) -> Any:
    """Every value a template prints (before HTML escaping): control characters a channel
    or caller sent (ESC, NUL, bidi overrides...) are shown as escapes such as ``\\x1b``,
    never passed to the page; line breaks and tabs stay (raw bodies are shown as sent)."""
    if not isinstance(value, str) or CONTROL.search(value) is None:
        return value
    shown = escape_controls(value, keep="\n\r\t")
    return Markup(shown) if isinstance(value, Markup) else shown


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        finalize=_visible,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        age=_age, when=_when, money=_money, web_url=_web_url, body_text=_body_text, headers=_headers
    )
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment))


def console_router() -> Router:
    return Router(
        path=PREFIX,
        route_handlers=[
            overview_page,
            orders_page,
            order_page,
            order_messages_page,
            message_page,
            *ACTION_HANDLERS,
            unknown_page,
            create_static_files_router(
                path="/static",
                directories=[STATIC],
                cache_control=CacheControlHeader(max_age=3600),
            ),
        ],
        exception_handlers={Exception: handle_console_error},
        include_in_schema=False,
    )


def console_state(hub: Hub, settings: WebSettings) -> State:
    """What the pages need, for the app's state."""
    return State({SESSIONS_STATE: ConsoleState(hub=hub, sessions=Sessions(settings.api_keys))})


def console_lifespan(settings: WebSettings) -> Any:
    """In development (``console_log_sign_in``), logs at start how to sign in."""

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        if settings.console_log_sign_in:
            for key in settings.api_keys:
                if Sessions.may_look(key):
                    log.warning(
                        "console.sign_in",
                        url=PREFIX,
                        key_name=key.name,
                        sign_in_key=key.key,
                        note="development only: console_log_sign_in is on",
                    )
        yield

    return lifespan
