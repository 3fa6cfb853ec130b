"""The two jobs every queue runs, with the logging and metrics at their edges.

Both queue adapters (dramatiq actors, the in-process worker) call these, so a job behaves
and reports the same whichever runs it. The services pace and cap their own retries
(channel errors, conflicts): what propagates from here is an infrastructure failure (the
database unreachable...), which the queue retries a bounded number of times and the
sweeper backs up."""

from __future__ import annotations

import time
from typing import Final

from orderhub.application.hub import Hub
from orderhub.application.services import dispatch, intake
from orderhub.logging import bound, get_logger
from orderhub.metrics import COMMANDS_DISPATCHED, DISPATCH_SECONDS, INBOX_PROCESSED, STALE_OUTCOMES

log = get_logger(__name__)

UNKNOWN: Final = "unknown"
QUIET: Final = frozenset({"waiting", "not_due", "leased", "ended", "held"})
"""Outcomes of a job that found nothing to do now (logged at debug)."""


async def run_dispatch(hub: Hub, command_id: str) -> str:
    """Dispatch one command; return what happened (a :class:`dispatch.Dispatched` value)."""
    async with hub.uow() as uow:
        command = await uow.commands.get(command_id)
    if command is None:
        log.warning("dispatch.missing", command_id=command_id)
        COMMANDS_DISPATCHED.labels(UNKNOWN, UNKNOWN, "missing").inc()
        return dispatch.Dispatched.MISSING.value
    channel, kind = command.channel, command.kind.value
    with bound(
        command_id=command_id,
        order_id=command.order_id,
        channel=channel,
        account=command.account,
    ):
        started = time.perf_counter()
        try:
            outcome = (await dispatch.dispatch_command(hub, command_id)).value
        except Exception:
            COMMANDS_DISPATCHED.labels(channel, kind, "error").inc()
            log.exception("dispatch.error", kind=kind)
            raise
        finally:
            elapsed = time.perf_counter() - started
            DISPATCH_SECONDS.labels(channel, kind).observe(elapsed)
        COMMANDS_DISPATCHED.labels(channel, kind, outcome).inc()
        _report("dispatch", outcome, kind=kind, seconds=round(elapsed, 3))
        return outcome


async def run_inbox(hub: Hub, message_id: str) -> str:
    """Process one inbox message; return what happened (a :class:`intake.Processed` value)."""
    async with hub.uow() as uow:
        message = await uow.inbox.get(message_id)
    if message is None:
        log.warning("inbox.missing", message_id=message_id)
        INBOX_PROCESSED.labels(UNKNOWN, "missing").inc()
        return intake.Processed.MISSING.value
    channel = message.channel
    with bound(message_id=message_id, channel=channel, account=message.account):
        try:
            outcome = (await intake.process_message(hub, message_id)).value
        except Exception:
            INBOX_PROCESSED.labels(channel, "error").inc()
            log.exception("inbox.error")
            raise
        INBOX_PROCESSED.labels(channel, outcome).inc()
        _report("inbox", outcome, source=message.source)
        return outcome


def _report(what: str, outcome: str, **details: object) -> None:
    if outcome == "stale":
        STALE_OUTCOMES.labels(what).inc()
        log.warning(
            f"{what}.stale",
            note="the lease ran out and another worker claimed it: this outcome is dropped",
            **details,
        )
    elif outcome == "failed":
        log.warning(f"{what}.end", outcome=outcome, **details)
    elif outcome in QUIET:
        log.debug(f"{what}.end", outcome=outcome, **details)
    else:
        log.info(f"{what}.end", outcome=outcome, **details)
