"""The two jobs every queue runs, with the logging and metrics at their edges.

Both queue adapters (dramatiq actors, the in-process worker) call these, so a job behaves
and reports the same whichever runs it. Exceptions propagate: the queue decides about
retries."""

from __future__ import annotations

import time
from typing import Final

from orderhub.application.hub import Hub
from orderhub.application.ports import InboxState
from orderhub.application.services import dispatch, intake
from orderhub.channels.spi import TransientChannelError
from orderhub.domain.errors import ConcurrencyConflict
from orderhub.logging import bound, get_logger
from orderhub.metrics import COMMANDS_DISPATCHED, DISPATCH_SECONDS, INBOX_PROCESSED

log = get_logger(__name__)

UNKNOWN: Final = "unknown"
RETRYABLE: Final = (TransientChannelError, ConcurrencyConflict)
"""Inbox failures the queue retries quietly (anything else is also retried, but as an error)."""


async def run_dispatch(hub: Hub, command_id: str) -> str:
    """Dispatch one command; return the outcome (a command state, or ``missing``)."""
    async with hub.uow() as uow:
        command = await uow.commands.get(command_id)
    if command is None:
        log.warning("dispatch.missing", command_id=command_id)
        COMMANDS_DISPATCHED.labels(UNKNOWN, UNKNOWN, "missing").inc()
        return "missing"
    channel, kind = command.channel, command.kind.value
    with bound(
        command_id=command_id,
        order_id=command.order_id,
        channel=channel,
        account=command.account,
    ):
        log.info("dispatch.start", kind=kind, attempt=command.attempts + 1)
        started = time.perf_counter()
        try:
            state = await dispatch.dispatch_command(hub, command_id)
        except Exception:
            COMMANDS_DISPATCHED.labels(channel, kind, "error").inc()
            log.exception("dispatch.error", kind=kind)
            raise
        finally:
            elapsed = time.perf_counter() - started
            DISPATCH_SECONDS.labels(channel, kind).observe(elapsed)
        outcome = state.value if state is not None else "missing"
        COMMANDS_DISPATCHED.labels(channel, kind, outcome).inc()
        log.info("dispatch.end", kind=kind, outcome=outcome, seconds=round(elapsed, 3))
        return outcome


async def run_inbox(hub: Hub, message_id: str) -> str:
    """Process one inbox message; return the outcome. What is worth another try later (a
    transient channel error, a write conflict that kept losing) propagates after it is
    logged: the queue retries it. See :data:`RETRYABLE`."""
    async with hub.uow() as uow:
        message = await uow.inbox.get(message_id)
    if message is None:
        log.warning("inbox.missing", message_id=message_id)
        INBOX_PROCESSED.labels(UNKNOWN, "missing").inc()
        return "missing"
    channel = message.channel
    if message.state is InboxState.PROCESSED:
        INBOX_PROCESSED.labels(channel, "skipped").inc()
        log.info("inbox.skipped", message_id=message_id, reason="already processed")
        return "skipped"
    with bound(message_id=message_id, channel=channel, account=message.account):
        log.info("inbox.start", source=message.source, attempt=message.attempts + 1)
        try:
            state = await intake.process_message(hub, message_id)
        except TransientChannelError as exc:
            INBOX_PROCESSED.labels(channel, "retry").inc()
            log.warning(
                "inbox.transient",
                error=exc.message,
                status=exc.status,
                retry_after=exc.retry_after,
            )
            raise
        except ConcurrencyConflict as exc:
            INBOX_PROCESSED.labels(channel, "retry").inc()
            log.warning("inbox.conflict", error=str(exc))
            raise
        except Exception:
            INBOX_PROCESSED.labels(channel, "error").inc()
            log.exception("inbox.error")
            raise
        outcome = state.value if state is not None else "missing"
        INBOX_PROCESSED.labels(channel, outcome).inc()
        if outcome == "failed":
            log.warning("inbox.end", outcome=outcome)
        else:
            log.info("inbox.end", outcome=outcome)
        return outcome
