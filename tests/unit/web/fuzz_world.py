"""The world the route fuzzers run in: the app over PostgreSQL-like fakes, seeded with
orders in several states, a failed channel command and a failed inbox message, and reset
to that seed before each example so that every example starts from the same state; the
app's OpenAPI document as Schemathesis reads it, and the checks every answer must pass
(:data:`CONFORMANCE`)."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import re
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import schemathesis
from litestar import Litestar
from litestar.testing import AsyncTestClient
from schemathesis import APIOperation

from orderhub.application.ports import CommandState, InboxState
from orderhub.application.services.intake import apply_snapshot, process_message
from orderhub.entrypoints.web import WebSettings, create_app
from orderhub.entrypoints.web.problems import PROBLEM_BASE, PROBLEM_MEDIA_TYPE
from orderhub.testing.fakes import FakeDatabase, FixedClock, RecordingQueue
from tests.schemathesis_support import CONFORMANCE as CONFORMANCE

from .pg_like import PostgresLikeUnitOfWorkFactory
from .support import API_KEYS, BEARER_TOKEN, CHANNEL, auth, fake_hub, snapshot_from, stub_registry

# (channel, account) of every configured webhook door, and one that does not exist
WEBHOOK_DOORS = (
    (CHANNEL, "main"),
    (CHANNEL, "plain"),
    (CHANNEL, "pathtoken"),
    (CHANNEL, "closed"),
    ("idle", "main"),
)


@dataclass
class World:
    app: Litestar
    db: FakeDatabase
    clock: FixedClock
    queue: RecordingQueue
    uow: PostgresLikeUnitOfWorkFactory
    order_ids: list[str] = field(default_factory=list)
    line_ids: list[str] = field(default_factory=list)
    cancellation_ids: list[str] = field(default_factory=list)
    command_ids: list[str] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    seed: FakeDatabase = field(default_factory=FakeDatabase)

    def reset(self) -> None:
        """Back to the seeded state, in place (the app holds these very objects)."""
        fresh = copy.deepcopy(self.seed)
        for item in dataclasses.fields(FakeDatabase):
            setattr(self.db, item.name, getattr(fresh, item.name))
        self.queue.commands.clear()
        self.queue.messages.clear()
        self.uow.refusals.clear()


def send(
    app: Litestar, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> httpx.Response:
    """One request with exactly these bytes (Litestar's test client would re-encode header
    values as UTF-8), to the app in process, on a loop of its own: the fuzzers are sync."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.request(method, target, headers=headers, content=body)

    return asyncio.run(go())


def assert_no_server_error(
    status: int, content_type: str, body: bytes, world: World, *, problem_json: bool = True
) -> None:
    """No 5xx, nothing the database would refuse, and (with ``problem_json``) every
    refusal an RFC 9457 problem."""
    assert status < 500, body.decode(errors="replace")
    assert not world.uow.refusals, world.uow.refusals
    if status >= 400 and problem_json:
        assert content_type.startswith(PROBLEM_MEDIA_TYPE), (status, content_type, body)
        problem = httpx.Response(status, content=body).json()
        assert problem["status"] == status
        assert problem["type"].startswith(PROBLEM_BASE)
        assert problem["detail"]


def assert_conforms(operation: APIOperation, response: httpx.Response) -> None:
    """The answer to a raw request against the document: Schemathesis re-reads a response's
    request, which raw bytes (latin-1 headers, any path) may not survive, so it is given a
    plain one; only the response is judged."""
    path_parameters = dict.fromkeys(re.findall(r"{(\w+)}", operation.path), "x")
    plain = httpx.Response(
        response.status_code,
        headers=response.headers,
        content=response.content,
        request=httpx.Request(operation.method.upper(), "http://testserver/"),
    )
    plain.elapsed = response.elapsed
    case = operation.Case(path_parameters=path_parameters)
    case.validate_response(plain, checks=CONFORMANCE)


@functools.cache
def shared_world() -> World:
    """One world per test session: the fuzzers reset it before each example."""
    return build_world()


def build_world() -> World:
    clock = FixedClock()
    db = FakeDatabase()
    queue = RecordingQueue()
    uow = PostgresLikeUnitOfWorkFactory(db, clock)
    hub = fake_hub(stub_registry(), db=db, clock=clock, queue=queue, uow=uow)
    app = create_app(hub, WebSettings(api_keys=API_KEYS, max_body_bytes=64 * 1024))
    world = World(app=app, db=db, clock=clock, queue=queue, uow=uow)
    asyncio.run(_seed(world, hub))
    world.seed = copy.deepcopy(db)
    world.reset()
    return world


async def _seed(world: World, hub: Any) -> None:
    stories: list[tuple[str, dict[str, Any]]] = [
        ("main", {"id": "CH-new", "lines": [{"id": "a", "quantity": 2, "price": 1999}]}),
        (
            "main",
            {
                "id": "CH-accepted",
                "lines": [
                    {"id": "a", "quantity": 3, "price": 500},
                    {"id": "s", "quantity": 1, "serial": True, "units": ["u1"]},
                ],
            },
        ),
        (
            "main",
            {
                "id": "CH-cancel-asked",
                "lines": [{"id": "a", "quantity": 1}],
                "cancellation": {"id": "c1", "state": "requested"},
            },
        ),
        ("plain", {"id": "CH-plain", "lines": [{"id": "a", "quantity": 2}]}),
    ]
    for account, data in stories:
        order = await apply_snapshot(
            hub, hub.channels.account(CHANNEL, account), snapshot_from(data)
        )
        world.order_ids.append(order.id)
        world.line_ids.extend(line.id for line in order.lines)
        world.cancellation_ids.extend(c.id for c in order.cancellations)
    async with AsyncTestClient(app=world.app) as client:
        accepted = await client.post(
            f"/api/v1/orders/{world.order_ids[1]}/accept",
            headers={**auth("writer"), "Idempotency-Key": "seed-accept"},
        )
        assert accepted.status_code == 202, accepted.text
        command_id = accepted.json()["command_id"]
        command = world.db.commands[command_id]
        command.state, command.attempts, command.last_error = CommandState.FAILED, 3, "HTTP 500"
        world.command_ids.append(command_id)
        stored = await client.post(
            f"/webhooks/{CHANNEL}/plain",
            content=b"not json",
            headers={"Authorization": f"Bearer {BEARER_TOKEN}"},
        )
        assert stored.status_code == 202, stored.text
        message_id = stored.json()["message_id"]
        await process_message(hub, message_id)
        assert world.db.inbox[message_id].state is InboxState.FAILED
        world.message_ids.append(message_id)
    assert not world.uow.refusals, world.uow.refusals


WORLD: Final = shared_world()
OPERATIONS: Final[dict[str, APIOperation]] = {
    result.label: result
    for result in (
        found.ok()
        for found in schemathesis.openapi.from_dict(
            WORLD.app.openapi_schema.to_schema()
        ).get_all_operations()
    )
}
"""Every operation of the app's document, by label (``GET /api/v1/orders``)."""
