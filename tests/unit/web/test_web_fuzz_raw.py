"""Raw fuzzing of every route the app has, documented or not: garbage bytes in path
parameters, query strings, headers and bodies, sent as a client's bytes (not re-encoded),
never answered 5xx; every refusal an RFC 9457 problem.

Where Schemathesis (``test_web_fuzz``) generates from what the OpenAPI document declares,
this sends what no document declares: undeclared and repeated query parameters,
percent-escapes of any byte, latin-1 header values, bodies that are not JSON, and routes
left out of the document (``/metrics``, ``/schema/...``). Credentials are valid in part of
the examples, so that garbage also gets past the doors. On a route the document names,
every answer must also be one it promises (``fuzz_world.assert_conforms``)."""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .fuzz_world import (
    OPERATIONS,
    WEBHOOK_DOORS,
    WORLD,
    World,
    assert_conforms,
    assert_no_server_error,
    send,
)
from .support import BEARER_TOKEN, KEYS, PATH_TOKEN

EXAMPLES_PER_ROUTE: Final = 15
FUZZ: Final = settings(
    max_examples=EXAMPLES_PER_ROUTE,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
PARAMETER: Final = re.compile(r"{(\w+):\w+}")
ROUTES: Final = sorted(
    (method, route.path)
    for route in WORLD.app.routes
    for method in getattr(route, "methods", ())
    if method not in ("HEAD", "OPTIONS")
)
PATHS: Final = sorted({route.path for route in WORLD.app.routes})
QUERY_NAMES: Final = (
    "after",
    "limit",
    "wait",
    "status",
    "channel",
    "account",
    "cursor",
    "updated_after",
    "ship_by_before",
    "token",
)
HEADER_NAMES: Final = (
    "authorization",
    "idempotency-key",
    "content-type",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-request-id",
    "accept",
    "content-length",
)

latin1 = st.binary(max_size=40).map(lambda raw: raw.decode("latin-1"))
unicode_text = st.text(max_size=40)
any_text = st.one_of(latin1, unicode_text, st.sampled_from(["", "0", "-1", str(2**63), "\x00"]))
token = st.text("abcdefghijklmnopqrstuvwxyz-_0123456789", min_size=1, max_size=12)


def _segment(data: st.DataObject, name: str, world: World) -> str:
    known = {
        "order_id": world.order_ids,
        "command_id": world.command_ids,
        "message_id": world.message_ids,
        "channel": [door[0] for door in WEBHOOK_DOORS],
        "account": [door[1] for door in WEBHOOK_DOORS],
    }.get(name, [])
    value = data.draw(st.one_of(st.sampled_from(known or [""]), any_text), label=name)
    return quote(value.encode("utf-8", "surrogatepass"), safe="") or "x"


def _query(data: st.DataObject) -> str:
    pairs = data.draw(
        st.lists(st.tuples(st.one_of(st.sampled_from(QUERY_NAMES), token), any_text), max_size=4),
        label="query",
    )
    return "&".join(
        f"{quote(name)}={quote(value.encode('utf-8', 'surrogatepass'), safe='')}"
        for name, value in pairs
    )


def _headers(data: st.DataObject) -> list[tuple[bytes, bytes]]:
    credentials: list[tuple[bytes, bytes]] = []
    key = data.draw(st.sampled_from([None, *KEYS.values(), BEARER_TOKEN]), label="credential")
    if key is not None:
        credentials.append((b"authorization", f"Bearer {key}".encode()))
    garbage = data.draw(
        st.lists(
            st.tuples(st.one_of(st.sampled_from(HEADER_NAMES), token), st.binary(max_size=60)),
            max_size=4,
        ),
        label="headers",
    )
    return credentials + [(name.encode(), value) for name, value in garbage]


def _body(data: st.DataObject) -> bytes:
    return data.draw(
        st.one_of(
            st.binary(max_size=200),
            st.just(b'{"lines": [{"line_id": "a", "quantity": "1"}]}'),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.floats() | any_text,
                lambda inner: (
                    st.lists(inner, max_size=3)
                    | st.dictionaries(st.sampled_from(["lines", "reason", "carrier", "x"]), inner)
                ),
                max_leaves=8,
            ).map(lambda value: httpx.Request("POST", "/", json=value).content),
        ),
        label="body",
    )


def _fuzz_route(data: st.DataObject, method: str, path: str) -> None:
    WORLD.reset()
    target = PARAMETER.sub(lambda m: _segment(data, m.group(1), WORLD), path)
    query = _query(data)
    if path.startswith("/webhooks/") and data.draw(st.booleans(), label="path token"):
        query = f"{query}&token={PATH_TOKEN}"
    body = _body(data) if method == "POST" else b""
    response = send(
        WORLD.app, method, f"{target}?{query}" if query else target, _headers(data), body
    )
    assert_no_server_error(
        response.status_code,
        response.headers.get("content-type", ""),
        response.content,
        WORLD,
        # Litestar's own OpenAPI pages answer an unknown page in HTML, the console too
        problem_json=not path.startswith(("/schema", "/console")),
    )
    operation = OPERATIONS.get(method + " " + PARAMETER.sub(r"{\1}", path))
    if operation is not None:  # a documented route: the answer is one the document names
        assert_conforms(operation, response)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_no_route_answers_5xx_to_raw_garbage(method: str, path: str) -> None:
    @FUZZ
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        _fuzz_route(data, method, path)

    fuzz()


def test_no_preflight_answers_5xx_to_raw_garbage() -> None:
    """OPTIONS, which Litestar answers for every path, in one test: there is less to it."""

    @FUZZ
    @given(path=st.sampled_from(PATHS), data=st.data())
    def fuzz(path: str, data: st.DataObject) -> None:
        _fuzz_route(data, "OPTIONS", path)

    fuzz()
