"""Signing in to the console from a test client, and reading tokens off its pages."""

from __future__ import annotations

import re
from typing import Any

from .support import KEYS

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _TOKEN.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


async def sign_in(client: Any, name: str = "operator", *, key: str | None = None) -> Any:
    form = await client.get("/console/login")
    assert form.status_code == 200, form.text
    return await client.post(
        "/console/login",
        data={"csrf_token": csrf_of(form.text), "api_key": key or KEYS[name], "next": "/console/"},
        follow_redirects=False,
    )


async def post_form(client: Any, path: str, *, page: str, **fields: str) -> Any:
    """POST a console form with the CSRF token the page at ``page`` carries."""
    shown = await client.get(page)
    assert shown.status_code == 200, shown.text
    return await client.post(
        path, data={"csrf_token": csrf_of(shown.text), **fields}, follow_redirects=False
    )
