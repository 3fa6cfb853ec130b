"""The two jobs every queue runs, with the logging and metrics at their edges.

Both queue adapters (dramatiq actors, the in-process worker) call these, so a job behaves
and reports the same whichever runs it. The services pace and cap their own retries
(channel errors, conflicts): what propagates from here is an infrastructure failure (the
database unreachable...), which the queue retries a bounded number of times and the
sweeper backs up."""

from __future__ import annotations

import time
from contextlib import ExitStack
from typing import Final

from orderhub.application.hub import Hub
from orderhub.application.ports import ChannelCommand, InboxMessage
from orderhub.application.services import dispatch, intake
from orderhub.logging import bound, get_logger
from orderhub.metrics import COMMANDS_DISPATCHED, DISPATCH_SECONDS, INBOX_PROCESSED, STALE_OUTCOMES

log = get_logger(__name__)

UNKNOWN: Final = "unknown"
QUIET: Final = frozenset({"waiting", "not_due", "leased", "ended", "held"})
"""Outcomes of a job that found nothing to do now (logged at debug)."""


async def run_dispatch(hub: Hub, command_id: str) -> str:
    """Dispatch one command; return what happened (a :class:`dispatch.Dispatched` value).

    The logs and metrics name the command's channel, kind and order as its claim reads
    them (``seen``): the job does not read the command once more for them."""
    known: list[ChannelCommand] = []
    with bound(command_id=command_id), ExitStack() as context:

        def seen(command: ChannelCommand) -> None:
            if not known:
                known.append(command)
                context.enter_context(
                    bound(
                        order_id=command.order_id, channel=command.channel, account=command.account
                    )
                )

        def labels() -> tuple[str, str]:
            return (known[0].channel, known[0].kind.value) if known else (UNKNOWN, UNKNOWN)

        started = time.perf_counter()
        try:
            outcome = (await dispatch.dispatch_command(hub, command_id, seen=seen)).value
        except Exception:
            COMMANDS_DISPATCHED.labels(*labels(), "error").inc()
            log.exception("dispatch.error", kind=labels()[1])
            raise
        finally:
            elapsed = time.perf_counter() - started
            if known:
                DISPATCH_SECONDS.labels(*labels()).observe(elapsed)
        COMMANDS_DISPATCHED.labels(*labels(), outcome).inc()
        if outcome == dispatch.Dispatched.MISSING.value:
            log.warning("dispatch.missing", command_id=command_id)
            return outcome
        _report("dispatch", outcome, kind=labels()[1], seconds=round(elapsed, 3))
        return outcome


async def run_inbox(hub: Hub, message_id: str) -> str:
    """Process one inbox message; return what happened (a :class:`intake.Processed` value).

    The logs and metrics name the message's channel and account as its claim reads them
    (``seen``): the job does not read the message once more for them."""
    known: list[InboxMessage] = []
    with bound(message_id=message_id), ExitStack() as context:

        def seen(message: InboxMessage) -> None:
            if not known:
                known.append(message)
                context.enter_context(bound(channel=message.channel, account=message.account))

        def channel() -> str:
            return known[0].channel if known else UNKNOWN

        try:
            outcome = (await intake.process_message(hub, message_id, seen=seen)).value
        except Exception:
            INBOX_PROCESSED.labels(channel(), "error").inc()
            log.exception("inbox.error")
            raise
        INBOX_PROCESSED.labels(channel(), outcome).inc()
        if outcome == intake.Processed.MISSING.value:
            log.warning("inbox.missing", message_id=message_id)
            return outcome
        _report("inbox", outcome, source=known[0].source if known else UNKNOWN)
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
