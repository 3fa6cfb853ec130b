"""Which asyncio event loop a process runs: uvloop where it is installed, else asyncio's.

``serve``, ``scheduler`` and ``migrate`` run their coroutine with :func:`asyncio.run`, and
a worker's jobs run on the loop dramatiq's ``AsyncIO`` middleware makes with
:func:`asyncio.new_event_loop`; both ask the process's event-loop policy for the loop, so
:func:`install_event_loop`, called once before either, decides for all of them.
uvicorn's own ``loop="auto"`` is not in play: the hub runs uvicorn's ``Server.serve``
inside its own loop. uvloop's transports do the same work as asyncio's selector loop in C
(issue 10: ``_SelectorSocketTransport.write`` and the loop's own machinery took 15-20 % of
``serve``'s samples while taking webhooks). ``[runtime] event_loop = "asyncio"`` keeps
asyncio's own loop (to compare, or to debug with asyncio's debug mode)."""

from __future__ import annotations

import asyncio
import importlib
from typing import Literal

from orderhub.config import ConfigError, EventLoop


def install_event_loop(choice: EventLoop) -> Literal["uvloop", "asyncio"]:
    """Set this process's event-loop policy; the loop its later coroutines run on."""
    uvloop = None
    if choice != "asyncio":
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError as exc:
            if choice == "uvloop":
                raise ConfigError(
                    "runtime.event_loop is 'uvloop' but uvloop is not installed "
                    "(pip install uvloop, or set it to 'auto' or 'asyncio')"
                ) from exc
    # None: asyncio's default policy, whatever was set before
    asyncio.set_event_loop_policy(None if uvloop is None else uvloop.EventLoopPolicy())
    return "asyncio" if uvloop is None else "uvloop"


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """ "uvloop" or "asyncio": what a process's ready line says it runs on."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
