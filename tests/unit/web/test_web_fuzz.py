"""Fuzzing every route of the app: no input from anyone is answered 5xx, and every answer
is one the app's OpenAPI document promises.

Schemathesis generates requests from the app's own OpenAPI document (so a route added
later is fuzzed too): valid and invalid path and query parameters, headers and bodies,
in its positive and negative modes. They go to the in-process ASGI app over fakes that
refuse what PostgreSQL would refuse (see ``pg_like``). Hypothesis also steers part of
them past the doors, so that fuzzed input reaches the core and the (fake) database: a
valid API key, the id of a real order, command or message, a real line id inside a body,
a valid webhook credential, a PDF part in an invoice upload. Every refusal must be an
RFC 9457 problem, and every response must conform to the document (Schemathesis's
conformance checks, ``fuzz_world.CONFORMANCE``): its status code documented for the operation,
its content type documented for that status, its headers and body valid against the
schemas. Routes the document leaves out (``/metrics``, ``/schema/...``) get fuzzed query
strings and headers (``test_web_fuzz_raw``).

Deterministic (derandomized), a bounded number of examples, no deadline, no health check
that depends on the machine's speed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode

from orderhub.entrypoints.web.long_polls import LONG_POLLS_STATE, LongPolls
from orderhub.entrypoints.web.webhook_auth import sign
from tests.schemathesis_support import cut_the_wait

from .fuzz_world import (
    CONFORMANCE,
    OPERATIONS,
    WEBHOOK_DOORS,
    WORLD,
    World,
    assert_no_server_error,
    send,
)
from .support import BEARER_TOKEN, KEYS, PATH_TOKEN, SECRET

EXAMPLES_PER_ROUTE: Final = 25
FUZZ: Final = settings(
    max_examples=EXAMPLES_PER_ROUTE,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def world() -> Iterator[World]:
    WORLD.reset()
    yield WORLD
    WORLD.reset()


# --- steering ------------------------------------------------------------------------------


def _either(data: st.DataObject, known: list[str], generated: Any, label: str) -> Any:
    """A known id (to get past a 404) or what Schemathesis generated."""
    return data.draw(st.sampled_from([*known, generated]), label=label)


def _set_header(case: Case, name: str, value: str | None) -> None:
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != name.lower()}
    if value is not None:
        headers[name] = value
    case.headers = headers


def _steer_api(case: Case, data: st.DataObject, world: World) -> None:
    right = "operator" if "/ops/" in case.operation.path else "writer"
    who = data.draw(st.sampled_from([right, right, right, "reader", "generated"]), label="key")
    if who != "generated":
        _set_header(case, "Authorization", f"Bearer {KEYS[who]}")
    params = case.path_parameters or {}
    for name, known in (
        ("order_id", world.order_ids),
        ("command_id", world.command_ids),
        ("message_id", world.message_ids),
    ):
        if name in params:
            params[name] = _either(data, known, params[name], name)
    if case.operation.method.upper() == "POST" and data.draw(st.booleans(), label="reuse key"):
        _set_header(case, "Idempotency-Key", data.draw(st.sampled_from(["k-1", "k-2"])))
    if isinstance(case.body, dict | list):
        case.body = _steer_body(case.body, data, world)
    if case.operation.path.endswith("/invoices") and isinstance(case.body, dict):
        _steer_upload(case, data)
    cut_the_wait(case)


def _steer_body(body: Any, data: st.DataObject, world: World) -> Any:
    if isinstance(body, list):
        return [_steer_body(item, data, world) for item in body]
    if not isinstance(body, dict):
        return body
    steered = {key: _steer_body(value, data, world) for key, value in body.items()}
    if "line_id" in steered:
        steered["line_id"] = _either(data, world.line_ids, steered["line_id"], "line_id")
    if "cancellation_id" in steered:
        steered["cancellation_id"] = _either(
            data, world.cancellation_ids, steered["cancellation_id"], "cancellation_id"
        )
    return steered


def _steer_upload(case: Case, data: st.DataObject) -> None:
    """Now and then a part ``file`` that is a PDF (type and first bytes), past the checks
    of the document to the core."""
    if "file" in case.body and data.draw(st.booleans(), label="a pdf"):
        case.body["file"] = b"%PDF-1.7\n" + str(case.body["file"]).encode()
        case.multipart_content_types = {"file": "application/pdf"}


OWN_CREDENTIAL: Final = {"main": "hmac", "plain": "bearer", "pathtoken": "token"}
HEADER_TEXT: Final = st.text(
    st.characters(codec="latin-1", exclude_categories=["Cc", "Zs"]), min_size=1, max_size=20
)


def _steer_webhook(case: Case, data: st.DataObject) -> None:
    params = case.path_parameters or {}
    door = data.draw(st.sampled_from([*WEBHOOK_DOORS, None]), label="door")
    if door is not None:
        params["channel"], params["account"] = door
    kinds = ["hmac", "bearer", "token", "generated"]
    own = OWN_CREDENTIAL.get(door[1]) if door else None
    how = data.draw(st.sampled_from([own, own, own, *kinds] if own else kinds), label="how")
    if how == "hmac":
        message_id = data.draw(HEADER_TEXT, label="webhook-id")
        stamp = 1767268800  # the fixed clock's now
        _set_header(case, "webhook-id", message_id)
        _set_header(case, "webhook-timestamp", str(stamp))
        _set_header(
            case,
            "webhook-signature",
            sign(SECRET, message_id=message_id, timestamp=stamp, body=b""),
        )
    elif how == "bearer":
        _set_header(case, "Authorization", f"Bearer {BEARER_TOKEN}")
    elif how == "token":
        case.query = {**(case.query or {}), "token": PATH_TOKEN}


# --- checks --------------------------------------------------------------------------------


def _strategy(operation: APIOperation) -> st.SearchStrategy[Case]:
    return st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_every_answer_is_documented_and_never_5xx(label: str, world: World) -> None:
    operation = OPERATIONS[label]
    statuses: set[int] = set()

    @FUZZ
    @given(case=_strategy(operation), data=st.data())
    def fuzz(case: Case, data: st.DataObject) -> None:
        world.reset()
        if operation.path.startswith("/api/"):
            _steer_api(case, data, world)
        elif operation.path.startswith("/webhooks/"):
            _steer_webhook(case, data)
        response = case.call(app=world.app)
        statuses.add(response.status_code)
        content_type = response.headers.get("content-type", [""])[0]
        assert_no_server_error(response.status_code, content_type, response.content, world)
        case.validate_response(response, checks=CONFORMANCE)
        if operation.path.startswith("/webhooks/") and response.status_code in (401, 404, 422):
            assert world.db.inbox == world.seed.inbox
            assert world.queue.messages == []

    fuzz()
    # a guard on the steering: fuzzed input got past the doors to the handlers
    if operation.path.startswith(("/api/", "/webhooks/")):
        assert statuses - {401, 403, 404}, statuses


def _any_case(operation: APIOperation, world: World) -> Case:
    """A request of ``operation`` that reaches its handler: a known id in every path
    parameter, the right key."""
    known = {"order_id": world.order_ids[1], "command_id": world.command_ids[0]}
    params = {
        name: known.get(name, "x")
        for name in re.findall(r"{(\w+)}", operation.path)  # webhooks: an unknown door
    }
    key = KEYS["operator" if "/ops/" in operation.path else "writer"]
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "edge"}
    return operation.Case(path_parameters=params, headers=headers)


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_the_edge_refusals_are_documented(label: str, world: World) -> None:
    """What the edge refuses on every route, which the fuzz reaches rarely: a NUL in the
    query string (422), and for a JSON body, one that is not JSON (400) or is over the
    limit (413). Each is a problem the document names for the operation. A body the
    document says may be left out is not refused for being absent."""
    operation = OPERATIONS[label]
    case = _any_case(operation, world)
    target = operation.path.format(**(case.path_parameters or {}))
    headers = [(name.lower().encode(), value.encode()) for name, value in case.headers.items()]
    sent: list[tuple[str, str, bytes, int | None]] = [
        (operation.method.upper(), f"{target}?q=%00", b"", 422)
    ]
    body_spec = operation.definition.raw.get("requestBody") or {}
    if "application/json" in body_spec.get("content", {}):
        too_large = b'{"x": "' + b"y" * 70_000 + b'"}'  # the world's limit is 64 KiB
        sent += [("POST", target, b"{", 400), ("POST", target, too_large, 413)]
        if not body_spec.get("required", False):  # may be left out: no body is no refusal
            sent.append(("POST", target, b"", None))
    for method, url, body, status in sent:
        world.reset()
        response = send(world.app, method, url, headers, body)
        if status is None:  # the core may refuse (an unknown fulfilment), the edge not
            assert response.status_code < 400 or response.json()["rule"] not in (
                "validation-error",
                "malformed-json",
            ), response.text
        else:
            assert response.status_code == status, response.text
        content_type = response.headers.get("content-type", "")
        assert_no_server_error(response.status_code, content_type, response.content, world)
        case.validate_response(response, checks=CONFORMANCE)


def test_a_long_poll_over_the_share_is_documented(world: World) -> None:
    """429 too-many-long-polls with its Retry-After, as the document says (the fuzz never
    holds a poll open: it cuts every wait to 0)."""
    operation = OPERATIONS["GET /api/v1/feed"]
    polls = world.app.state[LONG_POLLS_STATE]
    assert isinstance(polls, LongPolls)
    with ExitStack() as held:
        for _ in range(polls.per_key):  # the key's share, held as open polls hold it
            held.enter_context(polls.hold("reader"))
        case = operation.Case(
            query={"wait": "1"}, headers={"Authorization": f"Bearer {KEYS['reader']}"}
        )
        response = case.call(app=world.app)
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == ["1"]
    content_type = response.headers.get("content-type", [""])[0]
    assert_no_server_error(response.status_code, content_type, response.content, world)
    case.validate_response(response, checks=CONFORMANCE)


def test_an_expired_feed_cursor_is_documented(world: World) -> None:
    """410 feed-cursor-expired, as the document says (the seeded feed is never pruned)."""
    operation = OPERATIONS["GET /api/v1/feed"]
    world.db.feed = world.db.feed[3:]  # the oldest events pruned (retention)
    case = operation.Case(
        query={"after": "0"}, headers={"Authorization": f"Bearer {KEYS['reader']}"}
    )
    response = case.call(app=world.app)
    assert response.status_code == 410, response.text
    content_type = response.headers.get("content-type", [""])[0]
    assert_no_server_error(response.status_code, content_type, response.content, world)
    case.validate_response(response, checks=CONFORMANCE)


def test_every_route_is_in_the_document_or_fuzzed_raw() -> None:
    """A new route is fuzzed here through the document, or by ``test_web_fuzz_raw``."""
    documented = {(op.method.upper(), op.path) for op in OPERATIONS.values()}
    for route in WORLD.app.routes:
        path = TYPED_PARAMETER.sub(r"{\1}", route.path)
        for method in sorted(getattr(route, "methods", ())):
            if method not in ("HEAD", "OPTIONS") and (method, path) not in documented:
                if path.startswith("/console"):  # HTML pages: fuzzed by test_console_fuzz
                    continue
                assert path in UNDOCUMENTED, f"{method} {path} is neither documented nor fuzzed"


TYPED_PARAMETER: Final = re.compile(r"{(\w+):\w+}")
UNDOCUMENTED: Final = {
    "/metrics",
    "/schema",
    "/schema/openapi.yaml",
    "/schema/openapi.yml",
    "/schema/{path}",
    "/schema/openapi.json",
}
