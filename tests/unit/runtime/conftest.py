"""Every runtime test leaves logging and the event-loop policy as it found them (the CLI
and the worker's setup hook set both for the whole process)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _restore_event_loop_policy() -> Iterator[None]:
    yield
    asyncio.set_event_loop_policy(None)
