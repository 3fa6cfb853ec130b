"""The process harness of end-to-end tests and demos: real processes on loopback.

For the core's end-to-end tests (``tests/e2e``), and for adapter packages' own simulators,
demos and end-to-end tests (``orderhub_topi.demo``):

* :class:`ManagedProcess`: one command in a process group of its own, its output in a log
  file; it starts with default SIGINT / SIGTERM handling and nothing blocked, stops with
  SIGTERM then SIGKILL after a bounded grace, or is killed as a crash. :class:`Launch` is
  how (environment, working directory, grace); :class:`ProcessSet` / :func:`stop_all`
  stop several together.
* Waits with a deadline: :func:`wait_until` (a condition), :func:`eventually` (a probe
  that raises :class:`NotYet`), :func:`wait_for_port`, :func:`wait_for_http`;
  :func:`free_port`, :func:`pid_gone`. A wait given the processes it depends on
  (``alive=Watch(...)``) fails at once when one exits (:class:`ProcessDied`); its timeout
  (:class:`WaitTimedOut`) names each of them with its pid and state or exit code and the
  last :data:`TAIL_LINES` lines of its log. Both are :class:`ProcessFailure`, an
  :class:`AssertionError`.
* :func:`write_toml` / :func:`dumps_toml`: an orderhub configuration file from dicts.
* :class:`HubProcesses`: ``orderhub migrate``, ``serve``, ``worker``, ``scheduler`` of
  one configuration file, until ready; :func:`orderhub_command`.

It needs nothing but the standard library and httpx (no pytest), and imports nothing of
the hub's own modules: the hub is a program it runs.
"""

from orderhub.testing.processes.failures import (
    NotYet,
    ProcessDied,
    ProcessFailure,
    Reported,
    WaitTimedOut,
    describe_returncode,
)
from orderhub.testing.processes.hub import HubProcesses, orderhub_command
from orderhub.testing.processes.managed import (
    CLEAN_EXITS,
    DEFAULT_SIGNALS,
    STOP_SECONDS,
    TAIL_LINES,
    Launch,
    ManagedProcess,
    pid_gone,
)
from orderhub.testing.processes.sets import ProcessSet, stop_all
from orderhub.testing.processes.toml import dumps_toml, toml_value, write_toml
from orderhub.testing.processes.waiting import (
    POLL_SECONDS,
    WAIT_SECONDS,
    Supervised,
    Watch,
    eventually,
    free_port,
    port_open,
    run_async,
    wait_for_http,
    wait_for_port,
    wait_until,
)

__all__ = [
    "CLEAN_EXITS",
    "DEFAULT_SIGNALS",
    "POLL_SECONDS",
    "STOP_SECONDS",
    "TAIL_LINES",
    "WAIT_SECONDS",
    "HubProcesses",
    "Launch",
    "ManagedProcess",
    "NotYet",
    "ProcessDied",
    "ProcessFailure",
    "ProcessSet",
    "Reported",
    "Supervised",
    "WaitTimedOut",
    "Watch",
    "describe_returncode",
    "dumps_toml",
    "eventually",
    "free_port",
    "orderhub_command",
    "pid_gone",
    "port_open",
    "run_async",
    "stop_all",
    "toml_value",
    "wait_for_http",
    "wait_for_port",
    "wait_until",
    "write_toml",
]
