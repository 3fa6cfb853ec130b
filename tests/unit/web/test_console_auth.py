"""The console's door: sign-in with a key and its scopes, the session cookie, CSRF."""

from __future__ import annotations

import pytest

from orderhub.application.ports import CommandState
from orderhub.entrypoints.web import ApiKey, WebSettings

from .console_support import csrf_of, post_form, sign_in
from .support import API_KEYS, Harness
from .test_web_ops import fail_a_command

LOOKER_KEY = "key-looker-44444444444444444"


@pytest.fixture
def settings() -> WebSettings:
    looker = ApiKey("looker", LOOKER_KEY, frozenset({"console:read"}))
    return WebSettings(api_keys=(*API_KEYS, looker), max_body_bytes=64 * 1024)


async def test_pages_send_strangers_to_sign_in(harness: Harness) -> None:
    for path in ("/console/", "/console/orders", "/console/orders/x", "/console/messages/m"):
        response = await harness.client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/console/login?next=")


async def test_an_ops_key_signs_in_with_a_safe_cookie(harness: Harness) -> None:
    response = await sign_in(harness.client)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("orderhub_console=")
    )
    lowered = cookie.lower()
    assert "httponly" in lowered
    assert "samesite=strict" in lowered
    assert "max-age=28800" in lowered
    assert "path=/console" in lowered
    assert "secure" not in lowered  # plain HTTP here; HTTPS gets Secure
    assert "key-operator" not in cookie  # never the key itself
    page = await harness.client.get("/console/")
    assert page.status_code == 200
    assert "Signed in as <strong>operator</strong>" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")


async def test_over_https_the_cookie_is_secure(harness: Harness) -> None:
    form = await harness.client.get("https://testserver.local/console/login")
    response = await harness.client.post(
        "https://testserver.local/console/login",
        data={"csrf_token": csrf_of(form.text), "api_key": "key-operator-22222222222222"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert "secure" in response.headers["set-cookie"].lower()


@pytest.mark.parametrize(
    ("key", "status", "says"),
    [
        ("wrong-key-000000000000000000", 401, "not valid"),
        ("", 401, "not valid"),
        ("key-writer-1111111111111111", 403, "neither the ops nor the console:read"),
    ],
)
async def test_wrong_or_scopeless_keys_are_refused(
    harness: Harness, key: str, status: int, says: str
) -> None:
    response = await sign_in(harness.client, key=key or " ")
    assert response.status_code == status
    assert says in response.text
    assert "orderhub_console=" not in response.headers.get("set-cookie", "")
    assert (await harness.client.get("/console/", follow_redirects=False)).status_code == 303


async def test_sign_in_needs_the_forms_token(harness: Harness) -> None:
    await harness.client.get("/console/login")
    response = await harness.client.post(
        "/console/login",
        data={"csrf_token": "forged", "api_key": "key-operator-22222222222222"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "orderhub_console=" not in response.headers.get("set-cookie", "")


async def test_a_forged_or_missing_csrf_token_is_403_and_changes_nothing(harness: Harness) -> None:
    command_id = await fail_a_command(harness)
    await sign_in(harness.client)
    before = harness.state()
    for data in ({"csrf_token": "forged"}, {}):
        response = await harness.client.post(
            f"/console/commands/{command_id}/retry", data=data, follow_redirects=False
        )
        assert response.status_code == 403
        assert "CSRF" in response.text
    assert harness.state() == before


async def test_a_tampered_cookie_is_no_session(harness: Harness) -> None:
    await sign_in(harness.client)
    cookie = harness.client.cookies.get("orderhub_console")
    assert cookie
    payload, signature = cookie.split(".")
    harness.client.cookies.set("orderhub_console", f"{payload}.{signature[:-2]}AA", path="/console")
    response = await harness.client.get("/console/", follow_redirects=False)
    assert response.status_code == 303


async def test_sessions_expire(harness: Harness) -> None:
    await sign_in(harness.client)
    harness.clock.advance(8 * 3600 + 1)
    response = await harness.client.get("/console/", follow_redirects=False)
    assert response.status_code == 303


async def test_read_only_keys_look_but_do_not_act(harness: Harness) -> None:
    command_id = await fail_a_command(harness)
    await sign_in(harness.client, key=LOOKER_KEY)
    overview = await harness.client.get("/console/")
    assert overview.status_code == 200
    assert "(read only)" in overview.text
    assert f"/console/commands/{command_id}/retry" not in overview.text
    before = harness.state()
    response = await post_form(
        harness.client, f"/console/commands/{command_id}/retry", page="/console/"
    )
    assert response.status_code == 403
    assert "may look but not act" in response.text
    assert harness.state() == before
    assert harness.db.commands[command_id].state is CommandState.FAILED


async def test_signing_out_ends_the_session(harness: Harness) -> None:
    await sign_in(harness.client)
    response = await post_form(harness.client, "/console/logout", page="/console/")
    assert response.status_code == 303
    assert (await harness.client.get("/console/", follow_redirects=False)).status_code == 303


async def test_next_never_leaves_the_console(harness: Harness) -> None:
    form = await harness.client.get("/console/login")
    response = await harness.client.post(
        "/console/login",
        data={
            "csrf_token": csrf_of(form.text),
            "api_key": "key-operator-22222222222222",
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/console/"
