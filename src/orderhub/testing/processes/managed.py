"""Managed subprocesses: each in a process group of its own, its output in a log file.

* A child starts with default SIGINT and SIGTERM handling and no signal blocked, whatever
  its parent has: a shell starts background jobs (``make test &``, nohup, CI steps) with
  SIGINT ignored, and an ignored signal stays ignored across ``exec``.
* It runs in a session of its own, so a Ctrl-C on the terminal reaches only the program
  that started it, which then stops it in order; and its own children (``orderhub
  worker`` forks dramatiq workers) can be killed with it as a group.
* :meth:`ManagedProcess.stop` sends SIGTERM, waits a bounded grace, then SIGKILLs the
  group; :meth:`ManagedProcess.kill` SIGKILLs the group at once (a crash).
* Every wait is bounded; a failure names the process, its pid and state or exit code and
  shows the last :data:`TAIL_LINES` lines of its log.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Self

from orderhub.testing.processes.failures import ProcessDied, WaitTimedOut, describe_returncode
from orderhub.testing.processes.waiting import WAIT_SECONDS, Watch, wait_until

__all__ = [
    "CLEAN_EXITS",
    "DEFAULT_SIGNALS",
    "STOP_SECONDS",
    "TAIL_LINES",
    "Launch",
    "ManagedProcess",
    "pid_gone",
]

STOP_SECONDS: Final = 10.0
"""How long a process may take to stop after SIGTERM before its group is SIGKILLed."""
REAP_SECONDS: Final = 10.0
"""How long a SIGKILLed process may take to be gone."""
TAIL_LINES: Final = 100
"""How many of its last log lines a failure shows for each process it is about."""
LINE_WIDTH: Final = 1000
"""Where a log line in a failure is cut."""
DEFAULT_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
"""What a child is stopped with; it starts with their default handling."""
CLEAN_EXITS: Final = (0, -signal.SIGTERM, 128 + signal.SIGTERM)
"""Exit codes of a process that ended by itself after SIGTERM (uvicorn re-raises it)."""

_PR_SET_PDEATHSIG: Final = 1


def _libc_prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` on Linux, looked up in the parent (never after a fork)."""
    if sys.platform != "linux":
        return None
    try:
        function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return function


_PRCTL: Final = _libc_prctl()


def _default_signals() -> None:  # pragma: no cover - runs in the child, before exec
    for sig in DEFAULT_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


def _default_signals_and_die_with_parent() -> None:  # pragma: no cover - in the child
    _default_signals()
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


@dataclass(frozen=True, kw_only=True)
class Launch:
    """How processes are started; one value serves every process of a stack."""

    env: Mapping[str, str] = field(default_factory=dict)
    """Set on top of this process's environment."""
    drop_env: tuple[str, ...] = ("ORDERHUB_",)
    """Prefixes of inherited variables left out (they would override a config file)."""
    cwd: Path | None = None
    stop_seconds: float = STOP_SECONDS
    """The grace after SIGTERM before the group is SIGKILLed."""
    pycache_prefix: str | None = None
    """Byte-code caches there (``PYTHONPYCACHEPREFIX``), even where the caller writes none:
    without them every Python process compiles the whole stack again (seconds each)."""
    die_with_parent: bool = False
    """On Linux, the child gets SIGTERM when the *thread* that started it ends, even when
    this whole process is SIGKILLed: nothing outlives a demo killed hard. Start and keep
    such a process from a thread that lives as long as it should."""

    def with_env(self, env: Mapping[str, str]) -> Launch:
        """The same, with ``env`` added."""
        return dataclasses.replace(self, env={**self.env, **env})

    def environ(self) -> dict[str, str]:
        """The child's whole environment."""
        environ = {k: v for k, v in os.environ.items() if not k.startswith(self.drop_env)}
        environ.update(self.env)
        environ["PYTHONUNBUFFERED"] = "1"
        if self.pycache_prefix is not None:
            environ.pop("PYTHONDONTWRITEBYTECODE", None)
            environ.setdefault("PYTHONPYCACHEPREFIX", self.pycache_prefix)
        return environ


@dataclass(eq=False)
class ManagedProcess:
    """One command in a session (process group) of its own, its output appended to
    ``log_path`` after a ``--- name: command`` line. It can be started again."""

    name: str
    argv: Sequence[str]
    log_path: Path
    launch: Launch = field(default_factory=Launch)
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    expected_exit: bool = field(default=False, init=False)
    """Set by :meth:`stop`, :meth:`kill` and :meth:`run_to_end`: :meth:`check_alive`
    does not mind that it has exited."""
    killed: bool = field(default=False, init=False)
    """It was SIGKILLed (:meth:`kill`, or :meth:`stop` ran out of patience)."""
    _terminated: bool = field(default=False, init=False, repr=False)
    _group_done: bool = field(default=False, init=False, repr=False)

    # --- running -----------------------------------------------------------------------

    def start(self) -> Self:
        if self.running():
            raise RuntimeError(f"{self.name} is already running")
        preexec = (
            _default_signals_and_die_with_parent
            if self.launch.die_with_parent
            else _default_signals
        )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:  # the child has its own descriptor
            log.write(f"--- {self.name}: {shlex.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.launch.environ(),
                cwd=self.launch.cwd,
                start_new_session=True,
                preexec_fn=preexec,
            )
        self.expected_exit = self.killed = self._terminated = self._group_done = False
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        """Its exit code; None while it runs or before it started."""
        return None if self.proc is None else self.proc.poll()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> str:
        """``pid 42, running`` / ``pid 42, exit code 1`` / ``not started``."""
        if self.proc is None:
            return "not started"
        return f"pid {self.proc.pid}, {describe_returncode(self.proc.poll())}"

    def check_alive(self) -> None:
        """:class:`~.failures.ProcessDied` with its log when it has exited unexpectedly."""
        if self.proc is None or self.expected_exit:
            return
        code = self.proc.poll()
        if code is not None:
            raise ProcessDied(
                f"{self.name} exited unexpectedly ({describe_returncode(code)})", [self]
            )

    def wait(self, timeout: float) -> int:
        """Its exit code; :class:`~.failures.WaitTimedOut` with its log if it runs
        ``timeout`` seconds more."""
        assert self.proc is not None, f"{self.name} was never started"
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimedOut(f"{self.name} did not exit within {timeout:g} s", [self]) from None

    def run_to_end(self, timeout: float) -> int:
        """Start a one-shot command (``orderhub migrate``) and return its exit code; one
        that does not finish in time is stopped and fails with its log."""
        self.start()
        self.expected_exit = True
        try:
            code = self.wait(timeout)
        except WaitTimedOut:
            self.stop()
            raise WaitTimedOut(f"{self.name} did not finish within {timeout:g} s", [self]) from None
        self._kill_leftovers()
        return code

    # --- stopping ----------------------------------------------------------------------

    def terminate(self) -> None:
        """SIGTERM to the process itself (it stops its own children), once per start: a
        second SIGTERM means "now" to some (dramatiq then kills its workers)."""
        self.expected_exit = True
        if self.proc is not None and self.proc.poll() is None and not self._terminated:
            self._terminated = True
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM; after ``timeout`` (its :attr:`Launch.stop_seconds`) SIGKILL for the
        whole group; then whatever is left in the group is SIGKILLed. Its exit code (None
        if it never started). Safe to call again."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            self.terminate()
            try:
                proc.wait(self.launch.stop_seconds if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                self._signal_group(signal.SIGKILL)
        code = self.wait(REAP_SECONDS)
        self._kill_leftovers()
        return code

    def kill(self) -> None:
        """SIGKILL the whole group at once, as a crash (no handler runs), and wait until
        every process of the group is gone."""
        if self.proc is None:
            return
        self.expected_exit = True
        if self.proc.poll() is None:
            self.killed = True
        self._signal_group(signal.SIGKILL)
        self._group_done = True
        self.wait(REAP_SECONDS)
        pgid = self.proc.pid
        wait_until(
            lambda: not _group_alive(pgid),
            f"{self.name}'s process group to die",
            timeout=WAIT_SECONDS,
            processes=[self],
        )

    def _kill_leftovers(self) -> None:
        """SIGKILL whatever the leader left in its group (forked workers); once, right
        after the leader is gone, so that the group id cannot be anyone else's."""
        if self.proc is None or self._group_done:
            return
        self._group_done = True
        self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)  # the group of a process we started, by its id

    @property
    def stopped_cleanly(self) -> bool:
        """It ended by itself after SIGTERM (:data:`CLEAN_EXITS`), nothing SIGKILLed."""
        return not self.killed and self.returncode in CLEAN_EXITS

    def describe_exit(self) -> str:
        """``running``, ``exit 0``, ``ended by SIGTERM``, ``ended by SIGTERM after SIGKILL``."""
        code = self.returncode
        if code is None:
            return "running"
        text = f"exit {code}"
        if code < 0:
            text = f"ended by {signal.Signals(-code).name}"
        return text + (" after SIGKILL" if self.killed else "")

    # --- its log -----------------------------------------------------------------------

    def text(self) -> str:
        """The whole log so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = TAIL_LINES, width: int = LINE_WIDTH) -> str:
        """The last ``lines`` lines of the log, each cut at ``width`` characters."""
        return "\n".join(line[:width] for line in self.text().splitlines()[-lines:])

    def log_report(self, lines: int = TAIL_LINES) -> str:
        """Its name and state, then the last ``lines`` lines of its log."""
        head = f"--- {self.name} ({self.status()}): last lines of {self.log_path} ---"
        return f"{head}\n{self.tail(lines) or '(the log is empty)'}"

    def events(self) -> list[dict[str, Any]]:
        """The JSON objects of its log, one a line (structlog with ``json = true``)."""
        found = []
        for line in self.text().splitlines():
            start = line.find("{")
            if start < 0:
                continue
            try:
                value = json.loads(line[start:])
            except ValueError:
                continue
            if isinstance(value, dict):
                found.append(value)
        return found

    def has_event(self, name: str, **fields: Any) -> bool:
        """Whether it logged ``event == name`` with these fields."""
        return any(
            e.get("event") == name and all(e.get(k) == v for k, v in fields.items())
            for e in self.events()
        )

    def wait_for_event(
        self,
        name: str,
        *,
        timeout: float = WAIT_SECONDS,
        alive: Callable[[], None] | None = None,
    ) -> None:
        """Until it logs event ``name``; it exiting meanwhile fails the wait at once (as
        does ``alive``, by default a :class:`~.waiting.Watch` of this process)."""
        wait_until(
            lambda: self.has_event(name),
            f"{self.name} to log {name!r}",
            timeout=timeout,
            alive=Watch(self) if alive is None else alive,
            processes=[self],
        )


def pid_gone(pid: int) -> bool:
    """Whether process ``pid`` no longer runs: a zombie waiting for its parent to reap it
    counts as gone (on Linux, read from ``/proc``; elsewhere any answer to a signal 0
    counts as running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
