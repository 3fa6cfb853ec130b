"""The machinery behind ``python -m orderhub_topi.demo`` and the topi end-to-end tests.

* :class:`Stack` starts the topi simulator and the hub as real processes on free loopback
  ports: ``orderhub serve`` in embedded mode (SQLite, in-process queue and scheduler), or
  production mode (``orderhub migrate``, then ``serve``, ``worker`` and ``scheduler`` on a
  database and a Redis or RabbitMQ broker), and stops every one of them again, also on
  failure and Ctrl-C.
* :class:`HubApi` is the warehouse (WMS): it talks to the hub only through ``/api/v1``.
* :class:`TopiView` is the customer (the simulator's ``/_sim`` control API) and topi's own
  view of an order (``GET /v1/orders/{id}`` with a read-only static token).
* :func:`eventually` polls with a deadline; :class:`Narrator` prints what happens.

A wait on a process that times out, or finds it gone, raises :class:`DemoFailure` with the
process's name, exit code and the last :data:`LOG_TAIL_LINES` lines of its log.

Nothing here imports the hub's internals: the demo sees the hub as a WMS and topi do.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Self, TextIO, TypeVar

import httpx

from orderhub_topi.simulator.control import SimulatorControl
from orderhub_topi.simulator.webhooks import sign

__all__ = [
    "ACCOUNT",
    "DemoFailure",
    "HubApi",
    "ManagedProcess",
    "Narrator",
    "NotYet",
    "Stack",
    "StackOptions",
    "TopiView",
    "describe_returncode",
    "eventually",
    "free_port",
    "redeliver_webhook",
    "temporary_workdir",
]

T = TypeVar("T")

ACCOUNT: Final = "demo"
"""The hub's topi account: webhooks go to ``/webhooks/topi/demo``."""
CLIENT_ID: Final = "orderhub-demo"
RUN_CLI: Final = "import sys; from orderhub.entrypoints.cli import main; sys.exit(main())"
STOP_TIMEOUT: Final = 20.0
LOG_TAIL_LINES: Final = 100
"""How much of a process's log a failure shows."""
LOG_LINE_WIDTH: Final = 1000
_PR_SET_PDEATHSIG: Final = 1


class DemoFailure(Exception):
    """A step did not happen (in time): the message says which and what was seen instead,
    followed by the name, exit code and log tail of each process in ``processes`` (the
    ones the step waited for), as they were when it failed."""

    def __init__(self, message: str, *, processes: Iterable[ManagedProcess] = ()) -> None:
        self.reason = message
        self.processes = tuple(processes)
        super().__init__("\n".join([message, *(p.tail() for p in self.processes)]))


class NotYet(Exception):
    """Raised by an :func:`eventually` probe: not there yet; the text says what it sees."""


# --------------------------------------------------------------------------
# Waiting and narration
# --------------------------------------------------------------------------


def eventually(
    what: str,
    probe: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.1,
    alive: Callable[[], None] | None = None,
    processes: Iterable[ManagedProcess] = (),
) -> T:
    """Call ``probe`` until it returns without raising :class:`NotYet` (or a transport
    error); :class:`DemoFailure` naming ``what`` and the last thing seen after ``timeout``
    seconds, with the state and log tail of each of ``processes`` (what the wait depends
    on). ``alive`` is called first on every round (it raises when a process died)."""
    deadline = time.monotonic() + timeout
    seen = "nothing yet"
    while True:
        if alive is not None:
            alive()
        try:
            return probe()
        except NotYet as exc:
            seen = str(exc) or seen
        except httpx.TransportError as exc:
            seen = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise DemoFailure(
                f"timed out after {timeout:g} s waiting for {what} (seen: {seen})",
                processes=processes,
            )
        time.sleep(interval)


class Narrator:
    """One clear line per step, with the time since the story began."""

    def __init__(
        self, stream: TextIO | None = None, *, quiet: bool = False, pace: float = 0.0
    ) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.quiet = quiet
        self.pace = pace  # seconds before each step, so that a live audience can follow
        self.started = time.monotonic()
        self._story_started = self.started
        self._story = ""

    def line(self, text: str = "") -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def title(self, text: str) -> None:
        self.line()
        self.line(text)
        self.line("-" * min(len(text), 100))

    def story(self, label: str, text: str) -> None:
        self._story = label
        self._story_started = time.monotonic()
        self.title(f"Story {label}: {text}")

    def step(self, number: int, text: str) -> None:
        """The next thing somebody does."""
        if self.pace > 0:
            time.sleep(self.pace)
        self.line(f"[{self._story}{number}] {text}")

    def check(self, text: str) -> None:
        """Something verified, with the seconds since the story began."""
        elapsed = time.monotonic() - self._story_started
        self.line(f"      ok  {text}  (+{elapsed:.1f} s)")

    def note(self, text: str) -> None:
        self.line(f"          {text}")


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` on Linux, looked up in the parent (never after a fork)."""
    if sys.platform != "linux":
        return None
    try:
        function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return function


_PRCTL: Final = _prctl()


DEFAULT_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
"""What a child is stopped with; it starts with their default handling whatever its parent
had (a shell starts background jobs, ``make test &`` or nohup, with SIGINT ignored, and
an ignored signal stays ignored across ``exec``)."""


def _prepare_child() -> None:  # pragma: no cover - runs in the child, before exec
    """Default handling of :data:`DEFAULT_SIGNALS`, no signal blocked; and on Linux the
    child gets SIGTERM when the thread that started it ends, even when the whole process
    is SIGKILLed, so nothing outlives a demo or test run killed hard."""
    for sig in DEFAULT_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def describe_returncode(code: int | None) -> str:
    """``running``, ``exit code 1``, ``ended by SIGKILL (exit code -9)``."""
    if code is None:
        return "running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"ended by {name} (exit code {code})"
    return f"exit code {code}"


class ManagedProcess:
    """A subprocess in a session of its own (so a Ctrl-C on the terminal reaches only the
    demo, which then stops it in order), its output in a log file. It starts with default
    SIGINT and SIGTERM handling, whatever this process inherited.

    :meth:`stop` sends SIGTERM to the process, waits, then SIGKILLs its whole process
    group (``orderhub worker`` forks dramatiq workers) whatever happened."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self.killed = False
        self._terminated = False
        self._group_done = False
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was not started"
        return self.proc.pid

    def start(self) -> Self:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
            preexec_fn=_prepare_child,
        )
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def status(self) -> str:
        """``pid 42, running`` / ``pid 42, exit code 1`` / ``not started``."""
        if self.proc is None:
            return "not started"
        return f"pid {self.proc.pid}, {describe_returncode(self.proc.poll())}"

    def wait(self, timeout: float) -> int:
        """Its exit code; :class:`DemoFailure` with its log when it runs ``timeout`` s more."""
        assert self.proc is not None, f"{self.name} was not started"
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise DemoFailure(
                f"{self.name} did not exit within {timeout:g} s", processes=[self]
            ) from None

    def run_to_end(self, timeout: float) -> int:
        """Start, wait for the exit code (a one-shot command such as ``migrate``)."""
        self.start()
        try:
            self.returncode = self.wait(timeout)
        except DemoFailure as exc:
            self.stop()
            raise DemoFailure(
                f"{self.name} did not finish within {timeout:g} s", processes=exc.processes
            ) from None
        self._kill_leftovers()
        self._close_log()
        return self.returncode

    def terminate(self) -> None:
        """Ask it to stop: SIGTERM to the process itself (it stops its own children), once;
        a second SIGTERM means "now" to some (dramatiq then kills its workers)."""
        if self.proc is not None and self.proc.poll() is None and not self._terminated:
            self._terminated = True
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL the whole group. Idempotent."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            self.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._kill_leftovers()
        self.returncode = proc.returncode
        self._close_log()
        return self.returncode

    def _kill_leftovers(self) -> None:
        """SIGKILL whatever the leader left behind in its session (forked workers); once,
        right after the leader is gone (so the group id cannot belong to anyone else)."""
        if self.proc is None or self._group_done:
            return
        self._group_done = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def describe_exit(self) -> str:
        code = self.returncode
        if code is None:
            return "running"
        text = f"exit {code}"
        if code < 0:
            text = f"ended by {signal.Signals(-code).name}"
        return text + (" after SIGKILL" if self.killed else "")

    @property
    def stopped_cleanly(self) -> bool:
        """It ended by itself after SIGTERM (0, or re-raised SIGTERM as uvicorn does)."""
        return not self.killed and self.returncode in (0, -signal.SIGTERM, 128 + signal.SIGTERM)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """Its name and state, then the last ``lines`` lines of its log (each cut at
        :data:`LOG_LINE_WIDTH` characters)."""
        body = "\n".join(line[:LOG_LINE_WIDTH] for line in self.log_text().splitlines()[-lines:])
        head = f"--- {self.name} ({self.status()}): last lines of {self.log_path} ---"
        return f"{head}\n{body or '(the log is empty)'}"

    def log_events(self) -> list[dict[str, Any]]:
        """The JSON log lines (the hub logs JSON here)."""
        found = []
        for raw in self.log_text().splitlines():
            start = raw.find("{")
            if start < 0:
                continue
            with contextlib.suppress(ValueError):
                found.append(json.loads(raw[start:]))
        return found

    def logged(self, event: str) -> bool:
        return any(e.get("event") == event for e in self.log_events())


# --------------------------------------------------------------------------
# The stack: simulator + hub
# --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StackOptions:
    """How to run the hub. The defaults are the demo: embedded mode on SQLite."""

    database_url: str | None = None
    """None: a SQLite file in the work directory."""
    broker_url: str | None = None
    """None: embedded (``serve`` runs the queue and the scheduler); ``redis://`` or
    ``amqp://``: production mode with ``orderhub worker`` and ``orderhub scheduler``."""
    queue_prefix: str = "orderhub-demo"
    reconcile_interval_seconds: float = 3.0
    retry_base_seconds: float = 0.2
    retry_max_seconds: float = 2.0
    retry_max_attempts: int = 6
    topi_timeout_seconds: float = 5.0
    worker_threads: int = 4
    startup_timeout: float = 60.0
    log_level: str = "INFO"

    @property
    def embedded(self) -> bool:
        return self.broker_url is None

    @property
    def broker_kind(self) -> str:
        if self.broker_url is None:
            return "embedded"
        if self.broker_url.startswith(("redis://", "rediss://")):
            return "redis"
        if self.broker_url.startswith(("amqp://", "amqps://")):
            return "rabbitmq"
        raise ValueError(f"broker URL must be redis:// or amqp://, not {self.broker_url!r}")

    def describe(self) -> str:
        if self.embedded and self.database_url is None:
            return "embedded mode: SQLite, in-process queue and scheduler"
        database = "SQLite" if self.database_url is None else _redact(self.database_url)
        broker = self.broker_kind if self.broker_url is None else _redact(self.broker_url)
        return f"database {database}, broker {broker}"


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.partition(":")[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def _table(name: str, values: Mapping[str, Any], *, array: bool = False) -> str:
    head = f"[[{name}]]" if array else f"[{name}]"
    body = "".join(f"{key} = {_toml(value)}\n" for key, value in values.items())
    return f"{head}\n{body}\n"


@dataclass
class Stack:
    """The topi simulator and the hub, as real processes on free loopback ports.

    ``with Stack(workdir, options) as stack:`` starts everything and waits until it is
    ready; leaving the block stops every process (SIGTERM, then SIGKILL). Secrets (API
    key, webhook token and secret, OAuth client secret) are random per stack."""

    workdir: Path
    options: StackOptions = field(default_factory=StackOptions)
    api_key: str = field(default_factory=lambda: "demo-" + secrets.token_urlsafe(24))
    webhook_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    webhook_secret: str = field(
        default_factory=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    )
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    observer_token: str = field(default_factory=lambda: "observer-" + secrets.token_urlsafe(16))
    sim_port: int = 0
    hub_port: int = 0
    processes: list[ManagedProcess] = field(default_factory=list)

    # --- addresses ---------------------------------------------------------------------

    @property
    def sim_url(self) -> str:
        return f"http://127.0.0.1:{self.sim_port}"

    @property
    def hub_url(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}"

    @property
    def webhook_url(self) -> str:
        return f"{self.hub_url}/webhooks/topi/{ACCOUNT}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "orderhub.toml"

    def process(self, name: str) -> ManagedProcess:
        for process in self.processes:
            if process.name == name:
                return process
        raise KeyError(name)

    # --- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, *, attempts: int = 3) -> None:
        """Start everything; a port taken between choosing and binding it is retried."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, attempts + 1):
            self.sim_port, self.hub_port = free_port(), free_port()
            while self.hub_port == self.sim_port:
                self.hub_port = free_port()
            try:
                self._start_once()
                return
            except DemoFailure as exc:
                self.stop()
                if attempt == attempts or "address already in use" not in str(exc).lower():
                    raise
                self.processes.clear()

    def stop(self) -> list[ManagedProcess]:
        """Stop every process: the hub's at once (SIGTERM to each, then wait for each),
        then the simulator. Safe to call twice; never raises. Returns them all."""
        hub_side = [p for p in reversed(self.processes) if p.name != "simulator"]
        simulator = [p for p in self.processes if p.name == "simulator"]
        for process in hub_side:
            with contextlib.suppress(Exception):
                process.terminate()
        for process in [*hub_side, *simulator]:
            with contextlib.suppress(Exception):
                process.stop()
        return [*hub_side, *simulator]

    @property
    def services(self) -> list[ManagedProcess]:
        """The processes that run until stopped (all but ``migrate``)."""
        return [p for p in self.processes if p.name != "migrate"]

    def check_alive(self) -> None:
        """DemoFailure, with its log, when a long-running process has exited."""
        for process in self.services:
            code = process.exited()
            if process.proc is not None and code is not None:
                raise DemoFailure(
                    f"{process.name} exited unexpectedly ({describe_returncode(code)})",
                    processes=[process],
                )

    def _start_once(self) -> None:
        options = self.options
        self.config_path.write_text(self.hub_config())
        env = self._hub_env()
        sim = ManagedProcess(
            "simulator",
            [
                sys.executable,
                "-m",
                "orderhub_topi.simulator",
                "--port",
                str(self.sim_port),
                "--no-fixtures",
                "--static-token",
                self.observer_token,
                "--log-level",
                "info",
            ],
            log_path=self.workdir / "simulator.log",
            env=self._sim_env(),
            cwd=self.workdir,
        )
        self.processes.append(sim.start())
        if not (options.embedded and options.database_url is None):
            # production: the schema first (``serve`` upgrades only SQLite by itself)
            migrate = self._hub_process("migrate", ["migrate"], env)
            self.processes.append(migrate)
            code = migrate.run_to_end(options.startup_timeout)
            if code != 0:
                raise DemoFailure(
                    f"orderhub migrate failed ({describe_returncode(code)})", processes=[migrate]
                )
        serve = self._hub_process("serve", ["serve", "--port", str(self.hub_port)], env)
        self.processes.append(serve.start())
        if not options.embedded:
            self.processes.append(
                self._hub_process(
                    "worker",
                    ["worker", "--processes", "1", "--threads", str(options.worker_threads)],
                    env,
                ).start()
            )
            self.processes.append(self._hub_process("scheduler", ["scheduler"], env).start())
        self._wait_ready()

    def _hub_process(self, name: str, args: list[str], env: dict[str, str]) -> ManagedProcess:
        command = ["--config", str(self.config_path), *args]
        script = Path(sys.executable).with_name("orderhub")  # the console script
        if script.exists():
            argv = [str(script), *command]
        else:
            argv = [sys.executable, "-c", RUN_CLI, *command]
        return ManagedProcess(
            name, argv, log_path=self.workdir / f"{name}.log", env=env, cwd=self.workdir
        )

    @staticmethod
    def _clean_env() -> dict[str, str]:
        """Our environment without ORDERHUB_* / TOPI_SIM_* (they would override the
        configuration written here)."""
        return {k: v for k, v in os.environ.items() if not k.startswith(("ORDERHUB_", "TOPI_SIM_"))}

    def _hub_env(self) -> dict[str, str]:
        env = self._clean_env()
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _sim_env(self) -> dict[str, str]:
        # secrets through the environment, not the command line (``ps`` shows that)
        env = self._clean_env()
        env.update(
            PYTHONUNBUFFERED="1",
            TOPI_SIM_WEBHOOK_URL=self.webhook_url,
            TOPI_SIM_WEBHOOK_TOKEN=self.webhook_token,
            TOPI_SIM_WEBHOOK_SECRET=self.webhook_secret,
            TOPI_SIM_CLIENT_ID=CLIENT_ID,
            TOPI_SIM_CLIENT_SECRET=self.client_secret,
        )
        return env

    def hub_config(self) -> str:
        """The hub's TOML: one topi account pointing at the simulator (OAuth2 client
        credentials), webhooks authenticated by the simulator's bearer token or its
        Standard Webhooks signature, short retry delays, a reconcile walk every few
        seconds."""
        o = self.options
        database = o.database_url or f"sqlite+aiosqlite:///{self.workdir / 'orderhub.db'}"
        broker: dict[str, Any] = {"kind": o.broker_kind}
        if o.broker_url is not None:
            broker["url"] = o.broker_url
        broker.update(queue_prefix=o.queue_prefix, concurrency=4)
        return "".join(
            [
                "# written by orderhub_topi.demo; secrets are random for this run\n\n",
                _table("database", {"url": database}),
                _table("broker", broker),
                _table("api", {"host": "127.0.0.1", "port": self.hub_port}),
                _table(
                    "api.keys",
                    {
                        "name": "demo-wms",
                        "key": self.api_key,
                        "scopes": ["orders:read", "orders:write", "ops"],
                    },
                    array=True,
                ),
                _table("channels", {"enabled": ["topi"]}),
                _table("channels.accounts", {"channel": "topi", "name": ACCOUNT}, array=True),
                _table(
                    "channels.accounts.settings",
                    {
                        "base_url": self.sim_url,
                        "client_id": CLIENT_ID,
                        "client_secret": self.client_secret,
                        "token_url": f"{self.sim_url}/oauth2/token",
                        "reconcile_interval_seconds": o.reconcile_interval_seconds,
                        "reconcile_lookback_hours": 1,
                        "timeout_seconds": o.topi_timeout_seconds,
                    },
                ),
                _table(
                    "channels.accounts.webhook",
                    {"hmac_secrets": [self.webhook_secret], "bearer_tokens": [self.webhook_token]},
                ),
                _table(
                    "retry",
                    {
                        "base_seconds": o.retry_base_seconds,
                        "max_seconds": o.retry_max_seconds,
                        "max_attempts": o.retry_max_attempts,
                        "lease_seconds": 30.0,
                    },
                ),
                _table(
                    "scheduler",
                    {
                        "sweep_interval_seconds": 2.0,
                        "grace_seconds": 5.0,
                        "first_run_jitter_seconds": 0.5,
                    },
                ),
                _table("logging", {"level": o.log_level, "json": True}),
            ]
        )

    def _wait_ready(self) -> None:
        timeout = self.options.startup_timeout
        sim, serve = self.process("simulator"), self.process("serve")

        def sim_ready() -> None:
            self._raise_if_exited(sim)
            httpx.get(f"{self.sim_url}/_sim/faults", timeout=2).raise_for_status()

        def hub_ready() -> None:
            self._raise_if_exited(serve)
            resp = httpx.get(f"{self.hub_url}/readyz", timeout=5)
            if resp.status_code != 200:
                raise NotYet(f"/readyz {resp.status_code}: {resp.text[:200]}")

        eventually("the topi simulator to answer", sim_ready, timeout=timeout, processes=[sim])
        eventually("the hub's /readyz", hub_ready, timeout=timeout, processes=[serve])
        if not self.options.embedded:
            for name, event in (("worker", "worker.ready"), ("scheduler", "scheduler.started")):
                process = self.process(name)

                def logged(process: ManagedProcess = process, event: str = event) -> None:
                    self._raise_if_exited(process)
                    if not process.logged(event):
                        raise NotYet(f"no {event} in {process.log_path.name}")

                eventually(
                    f"orderhub {name} to start", logged, timeout=timeout, processes=[process]
                )

    @staticmethod
    def _raise_if_exited(process: ManagedProcess) -> None:
        code = process.exited()
        if code is not None:
            raise DemoFailure(
                f"{process.name} exited ({describe_returncode(code)}) while starting",
                processes=[process],
            )


@contextlib.contextmanager
def temporary_workdir(keep: bool = False) -> Iterator[Path]:
    """A fresh directory for config, database and logs; removed afterwards unless ``keep``."""
    path = Path(tempfile.mkdtemp(prefix="orderhub-demo-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------
# The two sides: the WMS (hub API) and the customer (simulator)
# --------------------------------------------------------------------------


def _problem(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:500]
    if isinstance(body, dict) and "rule" in body:
        return f"{body.get('rule')}: {body.get('detail')}"
    return json.dumps(body)[:500]


class HubApi:
    """The warehouse's view: ``/api/v1`` with a bearer API key, nothing else."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url
        self.http = httpx.Client(
            base_url=f"{base_url}/api/v1",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
        )
        self._events: list[dict[str, Any]] = []

    def close(self) -> None:
        self.http.close()

    # --- reading -----------------------------------------------------------------------

    def orders(self, **filters: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        params: dict[str, str | int] = {**filters, "limit": 500}
        while True:
            resp = self.http.get("/orders", params=params)
            resp.raise_for_status()
            page = resp.json()
            found.extend(page["orders"])
            if not page.get("next_cursor"):
                return found
            params["cursor"] = page["next_cursor"]

    def find_order(self, topi_id: str) -> dict[str, Any] | None:
        """The hub's order for a topi order id, if the hub has it."""
        for order in self.orders(channel="topi"):
            if order["channel_order_id"] == topi_id:
                return order
        return None

    def order(self, order_id: str) -> dict[str, Any]:
        resp = self.http.get(f"/orders/{order_id}")
        resp.raise_for_status()
        result: dict[str, Any] = resp.json()
        return result

    def feed(self) -> list[dict[str, Any]]:
        """Every feed event so far, in order (new ones fetched after the last seen)."""
        while True:
            after = self._events[-1]["seq"] if self._events else 0
            resp = self.http.get("/feed", params={"after": after, "limit": 1000})
            resp.raise_for_status()
            events = resp.json()["events"]
            if not events:
                return list(self._events)
            self._events.extend(events)

    def events_for(self, order_id: str, type_: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.feed()
            if e["order_id"] == order_id and (type_ is None or e["type"] == type_)
        ]

    def command_event(self, command_id: str) -> dict[str, Any] | None:
        """The ``command.succeeded`` / ``command.failed`` event of a command, if any."""
        for event in self.feed():
            if event["type"].startswith("command.") and event["data"].get("command_id") == (
                command_id
            ):
                return event
        return None

    # --- commands ----------------------------------------------------------------------

    def post(self, path: str, body: Any = None) -> httpx.Response:
        """As a WMS does: each command with its own Idempotency-Key."""
        return self.http.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})

    def command(self, order_id: str, action: str, body: Any = None) -> dict[str, Any]:
        """A command that must be taken (202); its receipt."""
        resp = self.post(f"/orders/{order_id}/{action}", body)
        if resp.status_code != 202:
            raise DemoFailure(
                f"POST /api/v1/orders/{order_id}/{action} answered {resp.status_code}, "
                f"expected 202: {_problem(resp)}"
            )
        receipt: dict[str, Any] = resp.json()
        return receipt


class TopiView:
    """The topi side: the customer through ``/_sim``, and topi's own record of an order
    read with a static (observer) token, as the seller API shows it."""

    def __init__(self, url: str, observer_token: str) -> None:
        self.url = url
        self.control = SimulatorControl(url)
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {observer_token}"}, timeout=10
        )

    def close(self) -> None:
        self.control.close()
        self.http.close()

    def order(self, topi_id: str) -> dict[str, Any]:
        resp = self.http.get(f"/v1/orders/{topi_id}")
        resp.raise_for_status()
        result: dict[str, Any] = resp.json()
        return result


def redeliver_webhook(
    stack: Stack,
    record: Mapping[str, Any],
    *,
    timestamp: int | None = None,
    secret: str | None = None,
) -> httpx.Response:
    """Send a webhook the simulator already delivered once more, as topi does when it
    did not see our 2xx: the same ``webhook-id`` and body, a fresh Standard Webhooks
    signature (with the account's secret unless ``secret`` says otherwise), no bearer
    token."""
    body = str(record["body"]).encode()
    ts = int(time.time()) if timestamp is None else timestamp
    key = stack.webhook_secret if secret is None else secret
    headers = {
        "Content-Type": "application/json",
        "webhook-id": str(record["id"]),
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(key, str(record["id"]), ts, body),
    }
    return httpx.post(stack.webhook_url, content=body, headers=headers, timeout=10)
