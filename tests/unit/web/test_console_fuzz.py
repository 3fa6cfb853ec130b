"""Raw garbage at every console route, signed in (with a valid CSRF token or not) and
not: never a 5xx, never a change the database would refuse, every refusal a page."""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orderhub.entrypoints.web.console.session import COOKIE, Sessions

from .fuzz_world import assert_no_server_error, send, shared_world
from .support import API_KEYS

WORLD: Final = shared_world()
FUZZ: Final = settings(
    max_examples=20,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
PARAMETER: Final = re.compile(r"{(\w+):\w+}")
ROUTES: Final = sorted(
    (method, route.path)
    for route in WORLD.app.routes
    if route.path.startswith("/console")
    for method in getattr(route, "methods", ())
    if method not in ("HEAD", "OPTIONS")
)
SESSIONS: Final = Sessions(API_KEYS)
OPERATOR: Final = next(key for key in API_KEYS if key.name == "operator")

text = st.one_of(
    st.text(max_size=30),
    st.binary(max_size=30).map(lambda raw: raw.decode("latin-1")),
    st.sampled_from(["", "<script>", "\x00", "2026-13-01", "true", "failed", "-1"]),
)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_no_console_route_answers_5xx(method: str, path: str) -> None:
    @FUZZ
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        WORLD.reset()
        known = [*WORLD.order_ids, *WORLD.command_ids, *WORLD.message_ids]
        target = PARAMETER.sub(
            lambda m: (
                quote(
                    data.draw(st.one_of(st.sampled_from(known), text)).encode(
                        "utf-8", "surrogatepass"
                    ),
                    safe="",
                )
                or "x"
            ),
            path,
        )
        names = st.sampled_from(["q", "status", "attention", "cursor", "ship_by_before", "next"])
        query = urlencode(data.draw(st.lists(st.tuples(names, text), max_size=3)))
        headers: list[tuple[bytes, bytes]] = []
        csrf = None
        if data.draw(st.booleans(), label="signed in"):
            cookie = SESSIONS.issue(OPERATOR, now=WORLD.clock.now())
            session = SESSIONS.read(cookie, now=WORLD.clock.now())
            assert session is not None
            csrf = session.csrf
            headers.append((b"cookie", f"{COOKIE}={cookie}".encode()))
        body = b""
        if method == "POST":
            fields = data.draw(
                st.lists(st.tuples(st.sampled_from(["csrf_token", "api_key"]), text))
            )
            if csrf is not None and data.draw(st.booleans(), label="valid csrf"):
                fields.append(("csrf_token", csrf))
            body = urlencode(fields).encode()
            form = data.draw(st.booleans(), label="form content type")
            content_type = b"application/x-www-form-urlencoded" if form else b"text/plain"
            headers.append((b"content-type", content_type))
        response = send(WORLD.app, method, f"{target}?{query}" if query else target, headers, body)
        assert_no_server_error(
            response.status_code,
            response.headers.get("content-type", ""),
            response.content,
            WORLD,
            problem_json=False,
        )
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("text/html")

    fuzz()
