"""Schemathesis against a running hub: every operation of the OpenAPI document that
``orderhub serve`` serves (``/schema/openapi.json``), fuzzed over loopback HTTP.

The hub is one ``orderhub serve`` on a new PostgreSQL database (migrated first), with its
queue, worker and scheduler in process, and the test channel server as its marketplace,
which sends it a few orders (one accepted, one with a failed inbox message next to it).
Each example is steered part of the time past the doors, as in
``tests/unit/web/test_web_fuzz.py``: the right API key, the id of a real order, line,
fulfilment or inbox message, a webhook token. Every answer must be below 500, conform to
the document (status code, content type, headers, body: :data:`CONFORMANCE`) and, when it
is a refusal, be an RFC 9457 problem. Then a stateful run follows the document's links
(an order's id from the list to the order and its commands, the ops lists to their
actions).

Bounded: :data:`EXAMPLES_PER_OPERATION` examples per operation, derandomized, no
deadline, no shrinking (a failure is shown as found, not re-sent hundreds of times). A
PostgreSQL that cannot be reached fails the test (``postgres_server_url``), never skips."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.core.transport import Response

from orderhub.adapters.persistence import migrate
from orderhub.testing.processes import ProcessSet, run_async
from tests.schemathesis_support import CONFORMANCE, cut_the_wait

from .conftest import PROCESSES_KEY
from .databases import new_database
from .support import (
    CHANNEL,
    OPS_KEY,
    PROBLEM_BASE,
    PROBLEM_MEDIA_TYPE,
    READER_KEY,
    WEBHOOK_TOKEN,
    WMS_KEY,
    ChannelServer,
    Hub,
    auth,
    fulfilment_ids,
    line_ids,
    order_document,
    wait_until,
)

pytestmark = pytest.mark.postgres

EXAMPLES_PER_OPERATION: Final = 20
STATEFUL_SCENARIOS: Final = 25
STATEFUL_STEPS: Final = 6
PHASES: Final = (Phase.explicit, Phase.generate)  # no shrinking against a live server
FUZZ: Final = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    phases=PHASES,
    suppress_health_check=list(HealthCheck),
)
REQUEST_SECONDS: Final = 30.0
ACCOUNT: Final = "topi"


@dataclass
class Live:
    hub: Hub
    operations: dict[str, APIOperation]
    schema: Any
    session: requests.Session
    order_ids: list[str] = field(default_factory=list)
    line_ids: list[str] = field(default_factory=list)
    fulfilment_ids: list[str] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    command_ids: list[str] = field(default_factory=list)


# --- the hub -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def database_url(postgres_server_url: str) -> Iterator[str]:
    """A new PostgreSQL database, migrated, dropped after the module."""
    with new_database(postgres_server_url, "orderhub_sx") as url:
        run_async(lambda: migrate(url))
        yield url


@pytest.fixture(scope="module")
def processes() -> Iterator[ProcessSet]:
    processes = ProcessSet()
    try:
        yield processes
    finally:
        processes.stop_all()


@pytest.fixture(autouse=True)
def _show_logs(request: pytest.FixtureRequest, processes: ProcessSet) -> None:
    """A failing test shows the tails of the processes' logs."""
    request.node.stash[PROCESSES_KEY] = processes


@pytest.fixture(scope="module")
def live(
    database_url: str, processes: ProcessSet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    workdir: Path = tmp_path_factory.mktemp("schemathesis-live")
    channel_server = ChannelServer(processes, workdir).start()
    # embedded: one serve, its queue and scheduler inside, here on PostgreSQL
    hub = Hub(
        mode="embedded",
        processes=processes,
        workdir=workdir,
        database_url=database_url,
        channel_server=channel_server,
    ).start()
    session = requests.Session()
    try:
        schema = schemathesis.openapi.from_url(f"{hub.url}/schema/openapi.json")
        schema.config.update(base_url=hub.url)
        operations = {op.label: op for op in (r.ok() for r in schema.get_all_operations())}
        world = Live(hub=hub, operations=operations, schema=schema, session=session)
        _seed(world, channel_server)
        yield world
    finally:
        session.close()
        hub.close()
        channel_server.close()


def _seed(world: Live, channel_server: ChannelServer) -> None:
    hub = world.hub
    lines = [("L1", 2), ("L2", 1)]
    for number in ("CO-SX-1", "CO-SX-2", "CO-SX-3"):
        channel_server.send_order(hub, ACCOUNT, order_document(number, "created", lines))
    # a document the channel cannot map (no lines): a failed inbox message
    channel_server.send_order(hub, "octopia", order_document("CO-SX-BAD", "WaitingAcceptance", []))
    orders = [hub.wait_for_order(ACCOUNT, f"CO-SX-{n}") for n in (1, 2, 3)]
    accepted = hub.command(orders[1]["id"], "accept", None)
    hub.wait_for_command(accepted)
    world.command_ids.append(accepted)  # done: retried or abandoned, a 409
    for order in orders:
        detail = hub.order(order["id"])
        world.order_ids.append(detail["id"])
        world.line_ids.extend(line_ids(detail).values())
        world.fulfilment_ids.extend(fulfilment_ids(detail).values())
    failed = wait_until(
        lambda: hub.get("/ops/failed-messages", headers=auth(OPS_KEY)).json()["messages"],
        "the unmappable document to fail",
        alive=hub.check_alive,
    )
    world.message_ids.extend(message["id"] for message in failed)


# --- steering ------------------------------------------------------------------------------


def _set_header(case: Case, name: str, value: str) -> None:
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != name.lower()}
    headers[name] = value
    case.headers = headers


def _either(data: st.DataObject, known: list[str], generated: Any, label: str) -> Any:
    return data.draw(st.sampled_from([*known, generated]), label=label)


def _steer(case: Case, data: st.DataObject, world: Live) -> None:
    path = case.operation.path
    if path.startswith("/api/"):
        right = OPS_KEY if "/ops/" in path else WMS_KEY
        key = data.draw(st.sampled_from([right, right, right, READER_KEY, None]), label="key")
        if key is not None:
            _set_header(case, "Authorization", f"Bearer {key}")
        params = case.path_parameters or {}
        for name, known in (
            ("order_id", world.order_ids),
            ("fulfilment_id", world.fulfilment_ids),
            ("command_id", world.command_ids),
            ("message_id", world.message_ids),
        ):
            if name in params:
                params[name] = _either(data, known, params[name], name)
        if isinstance(case.body, dict):
            _steer_body(case, data, world)
    elif path.startswith("/webhooks/"):
        params = case.path_parameters or {}
        if data.draw(st.booleans(), label="door"):
            params["channel"], params["account"] = CHANNEL, ACCOUNT
            if "topic" in params:
                params["topic"] = "order.updated"
            _set_header(case, "Authorization", f"Bearer {WEBHOOK_TOKEN}")
    cut_the_wait(case)


def _steer_body(case: Case, data: st.DataObject, world: Live) -> None:
    body: dict[str, Any] = case.body
    for key in ("lines", "items"):
        if isinstance(body.get(key), list):
            for item in body[key]:
                if isinstance(item, dict) and "line_id" in item:
                    item["line_id"] = _either(data, world.line_ids, item["line_id"], "line_id")
    if "fulfilment_id" in body:
        body["fulfilment_id"] = _either(
            data, world.fulfilment_ids, body["fulfilment_id"], "fulfilment_id"
        )
    if "file" in body and data.draw(st.booleans(), label="a pdf"):
        body["file"] = b"%PDF-1.7\n" + str(body["file"]).encode()
        case.multipart_content_types = {"file": "application/pdf"}


# --- checks --------------------------------------------------------------------------------


def _check(case: Case, response: Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.startswith(PROBLEM_MEDIA_TYPE), (response.status_code, content_type)
        problem = response.json()
        assert problem["status"] == response.status_code, problem
        assert problem["type"].startswith(PROBLEM_BASE), problem
        assert problem["detail"], problem
    case.validate_response(response, checks=CONFORMANCE)


def _call(case: Case, world: Live) -> Response:
    return case.call(base_url=world.hub.url, session=world.session, timeout=REQUEST_SECONDS)


def _fuzz(operation: APIOperation, world: Live) -> set[int]:
    """Fuzz one operation; the statuses it answered."""
    statuses: set[int] = set()

    @FUZZ
    @given(
        case=st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        ),
        data=st.data(),
    )
    def fuzz(case: Case, data: st.DataObject) -> None:
        _steer(case, data, world)
        response = _call(case, world)
        statuses.add(response.status_code)
        _check(case, response)

    try:
        fuzz()
    except BaseException as exc:
        exc.add_note(f"operation: {operation.label}")
        raise
    return statuses


def test_every_operation_over_http(live: Live) -> None:
    """Every operation of the served document, in turn (one hub, seeded once)."""
    assert live.operations, "the served document names no operation"
    for label in sorted(live.operations):
        statuses = _fuzz(live.operations[label], live)
        live.hub.check_alive()
        # a guard on the steering: fuzzed input got past the doors to the handlers
        if label.split(" ")[1].startswith(("/api/", "/webhooks/")):
            assert statuses - {401, 403, 404}, (label, statuses)


def test_stateful_links(live: Live) -> None:
    """Sequences of calls that follow the document's links, each answer checked."""
    base = live.schema.as_state_machine()
    world = live
    calls: list[tuple[str, int]] = []

    class Links(base):  # type: ignore[valid-type,misc]
        def before_call(self, case: Case) -> None:
            path = case.operation.path
            key = OPS_KEY if "/ops/" in path else WMS_KEY
            _set_header(case, "Authorization", f"Bearer {key}")
            if case.operation.method.upper() == "POST" and path.startswith("/api/"):
                _set_header(case, "Idempotency-Key", f"sx-{uuid.uuid4()}")
            cut_the_wait(case)

        def after_call(self, response: Response, case: Case) -> None:
            calls.append((case.operation.label, response.status_code))

        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"base_url": world.hub.url, "session": world.session, "timeout": REQUEST_SECONDS}

        def validate_response(
            self, response: Response, case: Case, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            _check(case, response)

    Links.run(
        settings=settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=STATEFUL_STEPS,
            derandomize=True,
            database=None,
            deadline=None,
            phases=PHASES,
            suppress_health_check=list(HealthCheck),
        )
    )
    live.hub.check_alive()
    # the links carried real ids: operations named by a path parameter got past a 404
    followed = {label for label, status in calls if "{" in label and status < 400}
    assert followed, calls
