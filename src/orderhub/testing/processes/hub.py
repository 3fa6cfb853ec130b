"""The hub as real processes, for end-to-end tests and demos of the core and of adapters.

:class:`HubProcesses` runs the ``orderhub`` commands of one configuration file (written
with :func:`~.toml.write_toml`): in embedded mode one ``orderhub serve`` (in-process
queue and scheduler); in production mode ``orderhub serve`` (API only), ``orderhub
worker`` and ``orderhub scheduler``; with ``migrate`` first ``orderhub migrate`` (only
SQLite is upgraded by ``serve`` itself). It is ready when ``GET /readyz`` answers 200 and,
in production mode, the worker logged ``worker.ready`` and the scheduler
``scheduler.started`` (the configuration must log JSON: ``[logging] json = true``).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final, Self

from orderhub.testing.processes.failures import ProcessFailure, describe_returncode
from orderhub.testing.processes.managed import Launch, ManagedProcess
from orderhub.testing.processes.sets import ProcessSet
from orderhub.testing.processes.waiting import WAIT_SECONDS, Watch, wait_for_http

__all__ = ["HubProcesses", "orderhub_command"]

RUN_CLI: Final = "import sys; from orderhub.entrypoints.cli import main; sys.exit(main())"


def orderhub_command(*args: str) -> list[str]:
    """``orderhub *args``: the console script of this environment (its real entry point),
    else the same through this Python."""
    script = Path(sys.executable).with_name("orderhub")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", RUN_CLI, *args]


class HubProcesses:
    """The ``orderhub`` processes of ``config_path``, added to ``processes`` (which stops
    them), logs in ``logs`` (``serve.log``, ``worker-1.log``, ...; default: the config
    file's directory). ``url`` is where ``serve`` answers."""

    def __init__(
        self,
        config_path: Path,
        *,
        url: str,
        processes: ProcessSet,
        production: bool,
        migrate: bool | None = None,
        logs: Path | None = None,
        launch: Launch | None = None,
        serve_args: Sequence[str] = (),
        serve_env: Mapping[str, str] | None = None,
        worker_args: Sequence[str] = (),
        scheduler_args: Sequence[str] = (),
    ) -> None:
        self.config_path = config_path
        self.url = url
        self.processes = processes
        self.production = production
        self.migrate = production if migrate is None else migrate
        self.logs = config_path.parent if logs is None else logs
        self.launch = Launch() if launch is None else launch
        self.worker_args = list(worker_args)
        self.scheduler_args = list(scheduler_args)
        self.serve = processes.add(
            self._process("serve", ["serve", *serve_args], self.launch.with_env(serve_env or {}))
        )
        self.workers: list[ManagedProcess] = []
        self.scheduler: ManagedProcess | None = None

    def _process(
        self, name: str, args: Sequence[str], launch: Launch | None = None
    ) -> ManagedProcess:
        return ManagedProcess(
            name,
            orderhub_command("--config", str(self.config_path), *args),
            self.logs / f"{name}.log",
            launch or self.launch,
        )

    # --- starting ----------------------------------------------------------------------

    def start(self, *, timeout: float = WAIT_SECONDS) -> Self:
        """:meth:`spawn`, then :meth:`wait_ready`."""
        self.spawn(timeout=timeout)
        self.wait_ready(timeout=timeout)
        return self

    def spawn(self, *, timeout: float = WAIT_SECONDS) -> None:
        """``orderhub migrate`` to its end (``timeout``) if asked, then start the rest
        without waiting for them (start other processes meanwhile, then
        :meth:`wait_ready`)."""
        if self.migrate:
            migrate = self.processes.add(self._process("migrate", ["migrate"]))
            code = migrate.run_to_end(timeout)
            if code != 0:
                raise ProcessFailure(
                    f"orderhub migrate failed ({describe_returncode(code)})", [migrate]
                )
        self.serve.start()
        if self.production:
            self.start_worker(wait=False)
            self.scheduler = self.processes.add(
                self._process("scheduler", ["scheduler", *self.scheduler_args])
            ).start()

    def wait_ready(self, *, timeout: float = WAIT_SECONDS) -> None:
        """Until the started processes are ready (see the module); one of them exiting
        fails at once, with the logs of all."""
        for worker in self.workers:
            worker.wait_for_event("worker.ready", timeout=timeout, alive=self.check_alive)
        if self.scheduler is not None:
            self.scheduler.wait_for_event(
                "scheduler.started", timeout=timeout, alive=self.check_alive
            )
        wait_for_http(
            f"{self.url}/readyz",
            what="the hub's GET /readyz to answer 200",
            timeout=timeout,
            alive=self.check_alive,
        )

    def start_worker(self, *, wait: bool = True, timeout: float = WAIT_SECONDS) -> ManagedProcess:
        """One more ``orderhub worker`` (``worker-<n>``), ready unless ``wait`` is false."""
        name = f"worker-{len(self.workers) + 1}"
        worker = self.processes.add(self._process(name, ["worker", *self.worker_args])).start()
        self.workers.append(worker)
        if wait:
            worker.wait_for_event("worker.ready", timeout=timeout, alive=self.check_alive)
        return worker

    # --- looking at them ---------------------------------------------------------------

    @property
    def worker(self) -> ManagedProcess:
        """The last worker started."""
        return self.workers[-1]

    @property
    def services(self) -> list[ManagedProcess]:
        """The processes that run until stopped: serve, the scheduler, the workers."""
        return [self.serve, *([self.scheduler] if self.scheduler else []), *self.workers]

    @property
    def check_alive(self) -> Watch:
        """``check_alive()`` raises when one of :attr:`services` has exited unexpectedly;
        as ``alive=`` of a wait, a timeout shows their logs."""
        return Watch(*self.services)
