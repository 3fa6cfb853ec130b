from __future__ import annotations

from orderhub.application.ports import CommandState
from orderhub.application.services.intake import Processed, process_message

from .support import Harness, assert_problem, auth, commanding


async def fail_a_command(harness: Harness) -> str:
    order = await harness.seed()
    response = await harness.client.post(f"/api/v1/orders/{order.id}/accept", headers=commanding())
    command_id: str = response.json()["command_id"]
    command = harness.db.commands[command_id]
    command.state, command.attempts, command.last_error = CommandState.FAILED, 3, "HTTP 422"
    harness.queue.commands.clear()
    return command_id


async def test_failed_commands_are_listed_and_retried(harness: Harness) -> None:
    command_id = await fail_a_command(harness)
    listed = await harness.client.get("/api/v1/ops/failed-commands", headers=auth("operator"))
    assert listed.status_code == 200
    (command,) = listed.json()["commands"]
    assert command["id"] == command_id
    assert (command["kind"], command["state"], command["last_error"]) == (
        "accept",
        "failed",
        "HTTP 422",
    )
    assert command["payload"]["whole_order"] is True

    retried = await harness.client.post(
        f"/api/v1/ops/commands/{command_id}/retry", headers=auth("operator")
    )
    assert retried.status_code == 202
    assert (retried.json()["state"], retried.json()["attempts"]) == ("pending", 0)
    assert harness.db.commands[command_id].state is CommandState.PENDING
    assert harness.queue.commands == [(command_id, 0)]
    listed = await harness.client.get("/api/v1/ops/failed-commands", headers=auth("operator"))
    assert listed.json() == {"commands": []}


async def test_retrying_what_did_not_fail_is_409_and_unknown_is_404(harness: Harness) -> None:
    command_id = await fail_a_command(harness)
    await harness.client.post(f"/api/v1/ops/commands/{command_id}/retry", headers=auth("operator"))
    before = harness.state()
    again = await harness.client.post(
        f"/api/v1/ops/commands/{command_id}/retry", headers=auth("operator")
    )
    assert_problem(again, 409, "retry-not-failed")
    unknown = await harness.client.post("/api/v1/ops/commands/nope/retry", headers=auth("operator"))
    assert_problem(unknown, 404, "not-found")
    unknown = await harness.client.post("/api/v1/ops/messages/nope/retry", headers=auth("operator"))
    assert_problem(unknown, 404, "not-found")
    assert harness.state() == before


async def test_failed_messages_are_listed_and_retried(harness: Harness) -> None:
    body = b"this is not JSON"
    stored = await harness.client.post(
        "/webhooks/stub/main", content=body, headers=harness.signed(body)
    )
    message_id = stored.json()["message_id"]
    assert await process_message(harness.hub, message_id) is Processed.FAILED

    listed = await harness.client.get("/api/v1/ops/failed-messages", headers=auth("operator"))
    (message,) = listed.json()["messages"]
    assert message["id"] == message_id
    assert (message["state"], message["body"]) == ("failed", "this is not JSON")
    assert message["last_error"].startswith("JSONDecodeError")
    assert message["headers"]["webhook-id"] == "msg-1"

    harness.queue.messages.clear()
    retried = await harness.client.post(
        f"/api/v1/ops/messages/{message_id}/retry", headers=auth("operator")
    )
    assert retried.status_code == 202
    assert retried.json()["state"] == "received"
    assert harness.queue.messages == [message_id]
    before = harness.state()
    again = await harness.client.post(
        f"/api/v1/ops/messages/{message_id}/retry", headers=auth("operator")
    )
    assert_problem(again, 409, "retry-not-failed")
    assert harness.state() == before


async def test_the_list_limit_is_bounded(harness: Harness) -> None:
    response = await harness.client.get(
        "/api/v1/ops/failed-commands?limit=0", headers=auth("operator")
    )
    assert_problem(response, 422, "validation-error")
