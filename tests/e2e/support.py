"""The e2e harness: real processes on loopback, driven over HTTP only.

* :class:`ManagedProcess` runs one command in a process group of its own, its output in a
  log file; it is stopped with SIGTERM (then SIGKILL) or crashed with SIGKILL. It starts
  with default SIGINT / SIGTERM handling whatever pytest has (``make test &`` and nohup
  start it with SIGINT ignored).
* :class:`ChannelServer` is ``python -m orderhub.testing.channel_server``: the marketplace.
* :class:`Hub` is the hub under test: in ``embedded`` mode one ``orderhub serve`` (SQLite,
  in-process queue and scheduler); in ``production`` mode ``orderhub migrate``, then
  ``orderhub serve`` (API only), ``orderhub worker`` and ``orderhub scheduler`` on
  PostgreSQL and Redis.

Every wait is a poll against a deadline (:func:`wait_until`); no sleep asserts anything.
A wait on processes (a :class:`Watch`, such as ``hub.check_alive``) that times out, or
finds one of them gone, fails with the name, exit code and last :data:`TAIL_LINES` log
lines of each (:class:`ProcessFailure`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import httpx

T = TypeVar("T")
Mode = Literal["embedded", "production"]

# --- settings of the tier ----------------------------------------------------------------

STARTUP_SECONDS: Final = 60.0
"""How long a process may take to come up (CI machines are small and busy)."""
SETTLE_SECONDS: Final = 45.0
"""How long an asynchronous effect (a webhook applied, a command sent) may take."""
POLL_SECONDS: Final = 0.1
STOP_SECONDS: Final = 10.0
TAIL_LINES: Final = 100
"""How many of its last log lines a failure shows for each process it is about."""
DEFAULT_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)
"""A child starts with their default handling (an ignored signal stays ignored across exec)."""

REDIS_ENV: Final = "ORDERHUB_TEST_E2E_REDIS_URL"
REDIS_URL: Final = os.environ.get(REDIS_ENV, "redis://127.0.0.1:6379/12")
LOST_REDIS_ENV: Final = "ORDERHUB_TEST_E2E_LOST_REDIS_URL"
LOST_REDIS_URL: Final = os.environ.get(LOST_REDIS_ENV, "redis://127.0.0.1:6379/13")
"""A Redis database no worker reads: an enqueue that lands there is as good as lost."""

WMS_KEY: Final = "e2e-wms-key-0123456789abcdef"
READER_KEY: Final = "e2e-reader-key-0123456789abcdef"
OPS_KEY: Final = "e2e-ops-key-0123456789abcdef"
WEBHOOK_TOKEN: Final = "e2e-webhook-token"
HMAC_SECRET: Final = "whsec_ZTJlLWhtYWMtc2VjcmV0LTAxMjM0NTY3ODlhYmNkZWY="
CHANNEL: Final = "testchannel"

PROBLEM_BASE: Final = "https://orderhub.dev/problems/"
PROBLEM_MEDIA_TYPE: Final = "application/problem+json"

RETRY: Final = {"base_seconds": 0.2, "max_seconds": 1.0, "max_attempts": 5, "lease_seconds": 6.0}
"""Short retries, and a lease the crash tests can outwait in seconds. The lease outlasts the
test channel's call timeout (:data:`CHANNEL_TIMEOUT_SECONDS`), as it must in production."""
CHANNEL_TIMEOUT_SECONDS: Final = 4.0
SCHEDULER: Final = {
    "sweep_interval_seconds": 0.5,
    "grace_seconds": 2.0,
    "first_run_jitter_seconds": 0.2,
}

PYCACHE_PREFIX: Final = str(Path(tempfile.gettempdir()) / "orderhub-e2e-pycache")
RUN_CLI: Final = "import sys; from orderhub.entrypoints.cli import main; sys.exit(main())"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    probe: Callable[[], T | None],
    what: str,
    *,
    timeout: float = SETTLE_SECONDS,
    interval: float = POLL_SECONDS,
    alive: Callable[[], None] | None = None,
    processes: Iterable[ManagedProcess] = (),
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` at the deadline.

    ``alive`` is called on every round: it raises when a process the wait depends on died,
    so a crash fails at once instead of at the deadline. The timeout
    (:class:`WaitTimedOut`) shows the state and log of ``processes`` and of the processes
    of ``alive`` when it is a :class:`Watch`."""
    watched = list(processes)
    if isinstance(alive, Watch):
        watched += [p for p in alive.processes if p not in watched]
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        if alive is not None:
            alive()
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise WaitTimedOut(
                f"timed out after {timeout:g}s waiting for {what} (last: {last!r})", watched
            )
        time.sleep(interval)


def run_async(make: Callable[[], Any]) -> Any:
    """Run a coroutine on a private loop in another thread (tests here are synchronous)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


# --- processes ---------------------------------------------------------------------------


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


class ProcessFailure(AssertionError):
    """Something about processes failed: the message, then the name, state and log tail of
    each of ``processes`` as they were at that moment."""

    def __init__(self, message: str, processes: Iterable[ManagedProcess] = ()) -> None:
        self.processes = tuple(processes)
        super().__init__("\n\n".join([message, *(p.log_report() for p in self.processes)]))


class ProcessDied(ProcessFailure):
    """A process a wait depended on has exited."""


class WaitTimedOut(ProcessFailure):
    """A wait reached its deadline."""


def _prepare_child() -> None:  # pragma: no cover - runs in the child, before exec
    for sig in DEFAULT_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, ())


@dataclass(eq=False)
class ManagedProcess:
    """One child process in a session (process group) of its own, output to ``log_path``."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    expected_exit: bool = False
    stop_seconds: float = STOP_SECONDS

    def start(self) -> ManagedProcess:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("ORDERHUB_")}
        environ.update(self.env)
        environ["PYTHONUNBUFFERED"] = "1"
        # byte-code caches outside the tree: without them every process compiles the whole
        # stack again (seconds each on a small machine)
        environ.pop("PYTHONDONTWRITEBYTECODE", None)
        environ.setdefault("PYTHONPYCACHEPREFIX", PYCACHE_PREFIX)
        with self.log_path.open("ab") as log:
            log.write(f"--- {self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environ,
                start_new_session=True,  # its own process group: dramatiq's children too
                preexec_fn=_prepare_child,  # signals as if started from a terminal
            )
        self.expected_exit = False
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> str:
        """``pid 42, running`` / ``pid 42, exit code 1`` / ``not started``."""
        if self.proc is None:
            return "not started"
        return f"pid {self.proc.pid}, {describe_returncode(self.proc.poll())}"

    def check_alive(self) -> None:
        if self.proc is None or self.expected_exit:
            return
        code = self.proc.poll()
        if code is not None:
            raise ProcessDied(f"{self.name} exited ({describe_returncode(code)})", [self])

    def wait(self, timeout: float) -> int:
        """Its exit code; :class:`WaitTimedOut` with its log if it runs ``timeout`` s more."""
        assert self.proc is not None, f"{self.name} was never started"
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimedOut(f"{self.name} did not exit within {timeout:g}s", [self]) from None

    def kill(self) -> None:
        """SIGKILL the whole group: a crash, nothing runs a handler."""
        if self.proc is None:
            return
        self.expected_exit = True
        self._signal_group(signal.SIGKILL)
        self.wait(STOP_SECONDS)
        # dramatiq's worker processes are in the group too: wait until they are gone
        wait_until(
            lambda: not _group_alive(self.pid),
            f"{self.name}'s process group to die",
            processes=[self],
        )

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL for the group if it does not stop in time."""
        if self.proc is None:
            return None
        self.expected_exit = True
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(self.stop_seconds)
        self._signal_group(signal.SIGKILL)
        return self.wait(STOP_SECONDS)

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)  # the group of a process we started, by its id

    def text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = TAIL_LINES, width: int = 600) -> str:
        return "\n".join(line[:width] for line in self.text().splitlines()[-lines:])

    def log_report(self, lines: int = TAIL_LINES) -> str:
        """Its name and state, then the last ``lines`` lines of its log."""
        head = f"--- {self.name} ({self.status()}): last lines of {self.log_path} ---"
        return f"{head}\n{self.tail(lines) or '(the log is empty)'}"

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines (structlog ``json = true``)."""
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
        return any(
            e.get("event") == name and all(e.get(k) == v for k, v in fields.items())
            for e in self.events()
        )

    def wait_for_event(self, name: str, *, timeout: float = STARTUP_SECONDS) -> None:
        wait_until(
            lambda: self.has_event(name),
            f"{self.name} to log {name!r}",
            timeout=timeout,
            interval=0.1,
            alive=Watch(self),
        )


class Watch:
    """The processes a wait depends on: calling it raises :class:`ProcessDied` when one of
    them has exited (unless it was meant to); :func:`wait_until` given it as ``alive``
    shows their logs when it times out. Processes not started yet are skipped."""

    def __init__(self, *processes: ManagedProcess | None) -> None:
        self.processes = tuple(p for p in processes if p is not None)

    def __call__(self) -> None:
        for process in self.processes:
            process.check_alive()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def orderhub_argv(*args: str) -> list[str]:
    """The ``orderhub`` console script of this environment (its real entry point)."""
    script = Path(sys.executable).with_name("orderhub")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", RUN_CLI, *args]


@dataclass
class ProcessSet:
    """Every process a test started: stopped at teardown, logs shown when it fails."""

    processes: list[ManagedProcess] = field(default_factory=list)

    def add(self, process: ManagedProcess) -> ManagedProcess:
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        running = [p for p in self.processes if p.running()]
        for process in running:  # all at once: SIGTERM first, then wait for each
            process.expected_exit = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
        started = time.monotonic()
        for process in self.processes:
            if process.proc is None:
                continue
            left = started + process.stop_seconds - time.monotonic()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.proc.wait(max(left, 0.1))
            process._signal_group(signal.SIGKILL)
            process.wait(STOP_SECONDS)

    def report(self, lines: int = 40) -> list[tuple[str, str]]:
        seen: set[Path] = set()
        sections = []
        for process in self.processes:
            if process.log_path in seen:
                continue
            seen.add(process.log_path)
            sections.append(
                (
                    f"log of {process.name} ({process.status()}, {process.log_path})",
                    process.tail(lines) or "(empty)",
                )
            )
        return sections


# --- the marketplace ---------------------------------------------------------------------


class ChannelServer:
    """The test channel server process, and its control endpoints."""

    def __init__(self, processes: ProcessSet, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = processes.add(
            ManagedProcess(
                name="channel-server",
                argv=[
                    sys.executable,
                    "-m",
                    "orderhub.testing.channel_server",
                    "--port",
                    str(self.port),
                    "--state-file",
                    str(workdir / "testchannel-state.json"),
                ],
                log_path=workdir / "channel-server.log",
                stop_seconds=2.0,  # it may be holding a hung call open: no need to wait
            )
        )
        self.client = httpx.Client(base_url=self.url, timeout=15.0)

    def start(self) -> ChannelServer:
        if self.process.running():
            return self
        self.process.start()

        def healthy() -> bool:
            try:
                return self.client.get("/healthz", timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(
            healthy,
            "the channel server to answer",
            timeout=STARTUP_SECONDS,
            interval=0.1,
            alive=Watch(self.process),
        )
        return self

    def close(self) -> None:
        self.client.close()

    def calls(self) -> list[dict[str, Any]]:
        response = self.client.get("/calls")
        response.raise_for_status()
        calls: list[dict[str, Any]] = response.json()["calls"]
        return calls

    def calls_for(self, channel_order_id: str) -> list[dict[str, Any]]:
        return [c for c in self.calls() if c["order"] == channel_order_id]

    def call(self, command_id: str) -> dict[str, Any] | None:
        return next((c for c in self.calls() if c["key"] == command_id), None)

    def add_fault(self, **fault: Any) -> None:
        response = self.client.post("/_faults", json=fault)
        assert response.status_code == 200, response.text

    def faults(self) -> list[dict[str, Any]]:
        faults: list[dict[str, Any]] = self.client.get("/_faults").json()["faults"]
        return faults

    def send_order(
        self,
        hub: Hub,
        account: str,
        document: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        webhook_id: str | None = None,
        token: str = WEBHOOK_TOKEN,
    ) -> dict[str, Any]:
        """The marketplace pushes an order document to the hub's webhook."""
        body: dict[str, Any] = {
            "order": document,
            "webhook_url": hub.webhook_url(account),
            "token": token,
        }
        if webhook_id is not None:
            body["webhook_id"] = webhook_id
        response = self.client.post("/_send_order", json=body)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer


# --- the hub -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    name: str
    profile: str
    hmac: bool = False


ACCOUNTS: Final = (
    Account("topi", "topi"),
    Account("octopia", "octopia"),
    Account("spresso", "spresso"),
    Account("signed", "topi", hmac=True),
)


def _toml(value: Any) -> str:
    """Just enough TOML for the config below (JSON strings are valid TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def render_config(
    *,
    database_url: str,
    port: int,
    channel_url: str,
    broker_url: str | None,
    queue_prefix: str,
) -> str:
    out = ["[database]", f"url = {_toml(database_url)}", "", "[broker]"]
    if broker_url is None:
        out += ['kind = "embedded"', "concurrency = 4"]
    else:
        out += ['kind = "redis"', f"url = {_toml(broker_url)}"]
    out += [f"queue_prefix = {_toml(queue_prefix)}", ""]
    out += ["[api]", 'host = "127.0.0.1"', f"port = {port}", ""]
    for name, key, scopes in (
        ("wms", WMS_KEY, ["orders:read", "orders:write"]),
        ("reader", READER_KEY, ["orders:read"]),
        ("operator", OPS_KEY, ["orders:read", "ops"]),
    ):
        out += [
            "[[api.keys]]",
            f"name = {_toml(name)}",
            f"key = {_toml(key)}",
            f"scopes = {_toml(scopes)}",
            "",
        ]
    out += ["[channels]", f"enabled = {_toml([CHANNEL])}", ""]
    for account in ACCOUNTS:
        out += [
            "[[channels.accounts]]",
            f"channel = {_toml(CHANNEL)}",
            f"name = {_toml(account.name)}",
            "",
            "[channels.accounts.settings]",
            f"profile = {_toml(account.profile)}",
            f"base_url = {_toml(channel_url)}",
            f"timeout = {_toml(CHANNEL_TIMEOUT_SECONDS)}",
            "",
            "[channels.accounts.webhook]",
        ]
        if account.hmac:
            out += [f"hmac_secrets = {_toml([HMAC_SECRET])}"]
        else:
            out += [f"bearer_tokens = {_toml([WEBHOOK_TOKEN])}"]
        out.append("")
    out += ["[retry]", *(f"{k} = {_toml(v)}" for k, v in RETRY.items()), ""]
    out += ["[scheduler]", *(f"{k} = {_toml(v)}" for k, v in SCHEDULER.items()), ""]
    out += ["[logging]", 'level = "INFO"', "json = true", ""]
    return "\n".join(out)


class Hub:
    """The hub under test and a WMS-side HTTP client for it."""

    def __init__(
        self,
        *,
        mode: Mode,
        processes: ProcessSet,
        workdir: Path,
        database_url: str,
        channel_server: ChannelServer,
        broker_url: str | None = None,
        serve_broker_url: str | None = None,
        worker_processes: int = 1,
        worker_threads: int = 4,
    ) -> None:
        self.mode = mode
        self.processes = processes
        self.workdir = workdir
        self.database_url = database_url
        self.channel_server = channel_server
        self.broker_url = broker_url
        self.queue_prefix = f"e2e-{secrets.token_hex(4)}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.worker_processes = worker_processes
        self.worker_threads = worker_threads
        self.config_path = workdir / "orderhub.toml"
        self.config_path.write_text(
            render_config(
                database_url=database_url,
                port=self.port,
                channel_url=channel_server.url,
                broker_url=broker_url if mode == "production" else None,
                queue_prefix=self.queue_prefix,
            )
        )
        # serve may be pointed at another broker (a lost enqueue); everything else reads
        # the configuration file only
        serve_env = {"ORDERHUB_BROKER__URL": serve_broker_url} if serve_broker_url else {}
        self.serve = processes.add(
            ManagedProcess(
                name="serve",
                argv=orderhub_argv("--config", str(self.config_path), "serve"),
                log_path=workdir / "serve.log",
                env=serve_env,
            )
        )
        self.workers: list[ManagedProcess] = []
        self.scheduler: ManagedProcess | None = None
        self.api = httpx.Client(base_url=self.url, timeout=30.0, headers=auth(WMS_KEY))

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Hub:
        try:
            self._start()
        except AssertionError as exc:
            # the logs the failure does not show yet
            shown = exc.processes if isinstance(exc, ProcessFailure) else ()
            others = [p for p in self.processes.processes if p not in shown]
            raise ProcessFailure(f"the {self.mode} hub did not start: {exc}", others) from exc
        return self

    def _start(self) -> None:
        if self.mode == "production":
            migrate = self.processes.add(
                ManagedProcess(
                    name="migrate",
                    argv=orderhub_argv("--config", str(self.config_path), "migrate"),
                    log_path=self.workdir / "migrate.log",
                )
            ).start()
            code = migrate.wait(STARTUP_SECONDS)
            if code != 0:
                raise ProcessFailure(
                    f"orderhub migrate failed ({describe_returncode(code)})", [migrate]
                )
            self.scheduler = self.processes.add(
                ManagedProcess(
                    name="scheduler",
                    argv=orderhub_argv("--config", str(self.config_path), "scheduler"),
                    log_path=self.workdir / "scheduler.log",
                )
            ).start()
            self.serve.start()
            worker = self.start_worker(wait=False)
            worker.wait_for_event("worker.ready")
            self.scheduler.wait_for_event("scheduler.started")
        else:
            self.serve.start()
        wait_until(
            self._ready,
            "GET /readyz to answer 200",
            timeout=STARTUP_SECONDS,
            interval=0.1,
            alive=self.check_alive,
        )

    def start_worker(self, *, wait: bool = True) -> ManagedProcess:
        number = len(self.workers) + 1
        worker = self.processes.add(
            ManagedProcess(
                name=f"worker-{number}",
                argv=orderhub_argv(
                    "--config",
                    str(self.config_path),
                    "worker",
                    "--processes",
                    str(self.worker_processes),
                    "--threads",
                    str(self.worker_threads),
                    "--shutdown-timeout",
                    "5",
                ),
                log_path=self.workdir / f"worker-{number}.log",
            )
        ).start()
        self.workers.append(worker)
        if wait:
            worker.wait_for_event("worker.ready")
        return worker

    @property
    def worker(self) -> ManagedProcess:
        return self.workers[-1]

    @property
    def check_alive(self) -> Watch:
        """``hub.check_alive()`` raises when one of the hub's processes or its channel
        server has exited; as ``wait_until(alive=hub.check_alive)`` a timeout shows their
        logs too."""
        return Watch(self.serve, self.scheduler, *self.workers, self.channel_server.process)

    def _ready(self) -> bool:
        try:
            return self.api.get("/readyz", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        self.api.close()

    # --- HTTP --------------------------------------------------------------------------

    def webhook_url(self, account: str) -> str:
        return f"{self.url}/webhooks/{CHANNEL}/{account}"

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.api.get(f"/api/v1{path}", **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        """POST as a WMS does: with a fresh Idempotency-Key unless the test gives one."""
        headers = {"Idempotency-Key": f"e2e-{uuid.uuid4()}", **kwargs.pop("headers", {})}
        return self.api.post(f"/api/v1{path}", headers=headers, **kwargs)

    def command(self, order_id: str, action: str, body: Mapping[str, Any] | None) -> str:
        """POST a warehouse command that must be accepted; its command id."""
        response = self.post(f"/orders/{order_id}/{action}", json=body)
        assert response.status_code == 202, f"{action}: {response.status_code} {response.text}"
        receipt = response.json()
        assert receipt["state"] == "pending", receipt
        return str(receipt["command_id"])

    def order(self, order_id: str) -> dict[str, Any]:
        response = self.get(f"/orders/{order_id}")
        assert response.status_code == 200, response.text
        order: dict[str, Any] = response.json()
        return order

    def find_order(self, account: str, channel_order_id: str) -> dict[str, Any] | None:
        response = self.get("/orders", params={"channel": CHANNEL, "account": account})
        assert response.status_code == 200, response.text
        for order in response.json()["orders"]:
            if order["channel_order_id"] == channel_order_id:
                return self.order(order["id"])
        return None

    def wait_for_order(
        self,
        account: str,
        channel_order_id: str,
        *,
        until: Callable[[dict[str, Any]], bool] = lambda _: True,
        what: str = "",
        timeout: float = SETTLE_SECONDS,
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            order = self.find_order(account, channel_order_id)
            return order if order is not None and until(order) else None

        return wait_until(
            probe,
            f"order {account}/{channel_order_id} {what}".strip(),
            timeout=timeout,
            alive=self.check_alive,
        )

    def wait_for_status(self, order_id: str, status: str) -> dict[str, Any]:
        return wait_until(
            lambda: (order := self.order(order_id))["status"] == status and order,
            f"order {order_id} to be {status}",
            alive=self.check_alive,
        )

    def feed(self, after: int = 0, *, limit: int = 1000) -> list[dict[str, Any]]:
        """Every event after ``after``, following ``next_cursor`` to the end."""
        events: list[dict[str, Any]] = []
        while True:
            response = self.get("/feed", params={"after": after, "limit": limit})
            assert response.status_code == 200, response.text
            page = response.json()
            events += page["events"]
            if not page["events"]:
                return events
            after = page["next_cursor"]

    def last_seq(self) -> int:
        events = self.feed()
        return int(events[-1]["seq"]) if events else 0

    def wait_for_event(
        self, type_: str, *, timeout: float = SETTLE_SECONDS, **data: Any
    ) -> dict[str, Any]:
        """The first feed event of ``type_`` whose order id / data match."""
        order_id = data.pop("order_id", None)

        def probe() -> dict[str, Any] | None:
            for event in self.feed():
                if event["type"] != type_:
                    continue
                if order_id is not None and event["order_id"] != order_id:
                    continue
                if all(event["data"].get(k) == v for k, v in data.items()):
                    return event
            return None

        return wait_until(
            probe, f"feed event {type_} {data}", timeout=timeout, alive=self.check_alive
        )

    def wait_for_command(
        self, command_id: str, *, timeout: float = SETTLE_SECONDS
    ) -> dict[str, Any]:
        """Until the command finished; fails if it failed."""

        def probe() -> dict[str, Any] | None:
            for event in self.feed():
                if event["type"].startswith("command.") and event["data"].get("command_id") == (
                    command_id
                ):
                    return event
            return None

        event = wait_until(
            probe, f"command {command_id} to finish", timeout=timeout, alive=self.check_alive
        )
        assert event["type"] == "command.succeeded", f"command failed: {event}"
        return event

    def wait_for_message(self, message_id: str, state: str = "processed") -> None:
        """Until the inbox message is in ``state`` (the API shows only failed ones)."""
        wait_until(
            lambda: self.count("inbox_messages", f"id = '{message_id}' AND state = '{state}'"),
            f"inbox message {message_id} to be {state}",
            alive=self.check_alive,
        )

    # --- a look at the database (what the API cannot show: nothing stored) ------------------

    def count(self, table: str, where: str = "") -> int:
        sql = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
        return int(run_async(lambda: _scalar(self.database_url, sql)))


async def _scalar(url: str, sql: str) -> Any:
    from sqlalchemy import text

    from orderhub.adapters.persistence import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(text(sql))).scalar_one()
    finally:
        await engine.dispose()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- order documents and feed helpers ------------------------------------------------------


def order_document(
    channel_order_id: str,
    status: str,
    lines: Iterable[tuple[str, int] | tuple[str, int, str]],
    **extra: Any,
) -> dict[str, Any]:
    """A test channel order document (see ``orderhub.testing.channel``)."""
    doc_lines = []
    for line in lines:
        entry: dict[str, Any] = {
            "id": line[0],
            "title": f"Item {line[0]}",
            "quantity": line[1],
            "sku": f"SKU-{line[0]}",
            "price": 1990,
        }
        if len(line) > 2:
            entry["fulfilment"] = line[2]
        doc_lines.append(entry)
    doc: dict[str, Any] = {
        "id": channel_order_id,
        "status": status,
        "lines": doc_lines,
        "number": channel_order_id.removeprefix("CO-"),
        "currency": "EUR",
        "placed_at": "2026-01-05T10:00:00Z",
        "customer": {"name": "Erika Mustermann", "email": "erika@example.org"},
        "shipping_address": {
            "name": "Erika Mustermann",
            "line1": "Heidestrasse 17",
            "postal_code": "51147",
            "city": "Koeln",
            "country_code": "DE",
        },
    }
    doc.update(extra)
    return doc


def line_ids(order: Mapping[str, Any]) -> dict[str, str]:
    """channel line id -> hub line id."""
    return {line["channel_line_id"]: line["id"] for line in order["lines"]}


def fulfilment_ids(order: Mapping[str, Any]) -> dict[str, str]:
    return {f["channel_fulfilment_id"]: f["id"] for f in order["fulfilments"]}


def types_for(events: Iterable[Mapping[str, Any]], order_id: str) -> list[str]:
    return [e["type"] for e in events if e["order_id"] == order_id]


def assert_gapless(events: Sequence[Mapping[str, Any]], *, start: int = 1) -> None:
    seqs = [int(e["seq"]) for e in events]
    assert seqs == list(range(start, start + len(seqs))), f"feed has gaps or repeats: {seqs}"


def succeeded_commands(events: Iterable[Mapping[str, Any]]) -> list[str]:
    return [e["data"]["command_id"] for e in events if e["type"] == "command.succeeded"]


def is_problem(response: httpx.Response, status: int, rule: str) -> dict[str, Any]:
    """Assert an RFC 9457 problem with this status and type; return its body."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE), response.headers
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM_BASE + rule, body
    assert body["status"] == status, body
    return body


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
