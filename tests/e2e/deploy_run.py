"""``docker compose up`` of deploy/compose.yaml, as local processes (see deploy_local).

:class:`ComposeUp` starts the services in compose's order, each once what it
``depends_on`` holds: ``service_healthy`` is its health check passing (run locally, the
same command translated), ``service_completed_successfully`` its process having exited 0,
``service_started`` it running. The stack's PostgreSQL and broker are the local servers
(:class:`~.deploy_local.Backends`): their health checks run against those. Every
process is added to the given :class:`ProcessSet` (the test stops them all).
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from orderhub.testing.processes import (
    Launch,
    ManagedProcess,
    NotYet,
    ProcessSet,
    Watch,
    stop_all,
    wait_for_http,
    wait_until,
)

from .deploy_compose import Project
from .deploy_local import (
    LOOPBACK,
    Backends,
    DeploymentError,
    HealthCheck,
    Network,
    listening_ports,
    local_argv,
    local_broker_url,
    local_database_url,
    local_health_check,
    mounted_file,
)

STARTUP_SECONDS: Final = 90.0
"""How long a service may take to become healthy (small, busy CI machines)."""
BACKING_IMAGES: Final = ("postgres:", "rabbitmq:", "redis:")


def _without(args: Sequence[str], *flags: str) -> list[str]:
    """``args`` without the given flags and their values."""
    kept, skip = [], False
    for part in args:
        if skip:
            skip = False
        elif part in flags:
            skip = True
        else:
            kept.append(part)
    return kept


@dataclass
class ComposeUp:
    """The project's services as local processes, in compose's order."""

    project: Project
    backends: Backends
    processes: ProcessSet
    workdir: Path
    launch: Launch
    network: Network = field(default_factory=Network)
    running: dict[str, ManagedProcess] = field(default_factory=dict)
    health_checks: dict[str, HealthCheck] = field(default_factory=dict)
    healthy: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        postgres = urlsplit(self.backends.postgres_url)
        for name, service in self.project.services.items():
            for alias in service.get("networks", {}).get("default", {}).get("aliases", []):
                self.network.aliases.setdefault(alias, name)
            image = str(service.get("image", ""))
            if image.startswith("postgres:"):
                self.network.fixed(name, 5432, postgres.port or 5432)
            elif image.startswith("rabbitmq:"):
                self.network.fixed(name, 5672, urlsplit(self.backends.rabbitmq_url).port or 5672)
            elif image.startswith("redis:"):
                self.network.fixed(name, 6379, urlsplit(self.backends.redis_url).port or 6379)
            else:
                published = [int(str(p).rsplit(":", 1)[1]) for p in service.get("ports", [])]
                for port in [*published, *listening_ports(self.project.argv(name))]:
                    self.network.listen(name, port)

    # --- what compose would hand each container -----------------------------------------

    def backing(self, name: str) -> bool:
        return str(self.project.services[name].get("image", "")).startswith(BACKING_IMAGES)

    def _service_of_image(self, prefix: str) -> dict[str, Any]:
        found = [
            s for s in self.project.services.values() if str(s.get("image")).startswith(prefix)
        ]
        if len(found) != 1:
            raise DeploymentError(f"{len(found)} services run {prefix}*, not one")
        return found[0]

    def environment(self, name: str) -> dict[str, str]:
        """The container's environment, its URLs and mounted paths made local."""
        env = {
            k: v
            for k, v in self.project.environment(name).items()
            if k != "PATH" and not k.startswith("PYTHON")  # the image's, for its own venv
        }
        if "ORDERHUB_DATABASE__URL" in env:
            postgres = self._service_of_image("postgres:")
            env["ORDERHUB_DATABASE__URL"] = local_database_url(
                env["ORDERHUB_DATABASE__URL"], postgres.get("environment", {}), self.backends
            )
        if "ORDERHUB_BROKER__URL" in env:
            host = urlsplit(env["ORDERHUB_BROKER__URL"]).hostname or ""
            broker = self.project.services.get(self.network.aliases.get(host, host))
            if broker is None:
                raise DeploymentError(f"{name}: the broker URL names {host}, no service")
            env["ORDERHUB_BROKER__URL"] = local_broker_url(
                env["ORDERHUB_BROKER__URL"],
                broker.get("environment", {}),
                str(broker["image"]),
                self.backends,
            )
        if self.project.argv(name)[0] != "orderhub":
            env.pop("ORDERHUB_CONFIG", None)  # the image's, for orderhub: not this program's
        if "ORDERHUB_CONFIG" in env:
            env["ORDERHUB_CONFIG"] = str(
                mounted_file(
                    env["ORDERHUB_CONFIG"],
                    self.project.services[name].get("volumes", []),
                    self.project.directory,
                    self.workdir / name,
                    self.network,
                )
            )
        env = {k: self.network.urls(v) for k, v in env.items()}
        env["ORDERHUB_BROKER__QUEUE_PREFIX"] = self.backends.queue_prefix
        return env

    def _tools(self) -> dict[str, Any]:
        postgres = urlsplit(self.backends.postgres_url)
        redis = urlsplit(self.backends.redis_url)

        rabbitmq = urlsplit(self.backends.rabbitmq_url)

        def installed(program: str, argv: list[str], port: int, host: str | None) -> list[str]:
            """The tool itself, or where it is not installed here (the services run
            elsewhere) what it checks: that the server accepts connections."""
            if shutil.which(program):
                return argv
            probe = f"import socket; socket.create_connection(({host or LOOPBACK!r}, {port}), 3)"
            return [sys.executable, "-c", probe]

        def pg_isready(args: Sequence[str]) -> list[str]:
            if "-h" not in args and "--host" not in args:
                raise DeploymentError(
                    f"pg_isready {' '.join(args)} asks over the Unix socket, where the "
                    "postgres image's initdb server answers before the real server listens "
                    "on TCP: on a fresh volume the hub's services start too early and "
                    "migrate fails to connect (pg_isready -h 127.0.0.1 waits for TCP)"
                )
            host, port = postgres.hostname or LOOPBACK, postgres.port or 5432
            rest = _without(args, "-h", "--host", "-p", "--port")
            argv = ["pg_isready", "-h", host, "-p", str(port), *rest]
            return installed("pg_isready", argv, port, host)

        def redis_cli(args: Sequence[str]) -> list[str]:
            host, port = redis.hostname or LOOPBACK, redis.port or 6379
            argv = ["redis-cli", "-h", host, "-p", str(port), *args]
            return installed("redis-cli", argv, port, host)

        def rabbitmq_diagnostics(args: Sequence[str]) -> list[str]:
            argv = ["rabbitmq-diagnostics", *args]
            return installed("rabbitmq-diagnostics", argv, rabbitmq.port or 5672, rabbitmq.hostname)

        return {
            "pg_isready": pg_isready,
            "redis-cli": redis_cli,
            "rabbitmq-diagnostics": rabbitmq_diagnostics,
        }

    def health_check(self, name: str) -> HealthCheck | None:
        spec = self.project.services[name].get("healthcheck")
        if not spec or spec.get("disable"):
            return None
        process = self.running.get(name)
        return local_health_check(
            name,
            spec["test"],
            self.network,
            pid=process.pid if process else None,
            tools=self._tools(),
        )

    # --- up --------------------------------------------------------------------------

    def watch(self) -> Watch:
        return Watch(*self.running.values())

    def wait_healthy(self, name: str) -> None:
        if name in self.healthy:
            return
        check = self.health_check(name)
        if check is None:
            raise DeploymentError(
                f"something waits for {name} to be healthy; it has no health check"
            )
        self.health_checks[name] = check

        def probe() -> bool:
            result = check.run()
            if result.returncode != 0:
                raise NotYet(f"exit {result.returncode}: {(result.stdout + result.stderr)[-300:]}")
            return True

        wait_until(
            probe,
            f"{name}'s health check {check.argv} to pass",
            timeout=STARTUP_SECONDS,
            interval=0.5,
            alive=self.watch(),
        )
        self.healthy.add(name)

    def wait_completed(self, name: str) -> None:
        process = self.running[name]
        code = process.wait(STARTUP_SECONDS)
        if code != 0:
            raise DeploymentError(
                f"{name} exited {code}: its dependents never start\n{process.tail(40)}"
            )

    def start(self, name: str) -> None:
        for other, condition in self.project.depends_on(name).items():
            if condition == "service_healthy":
                self.wait_healthy(other)
            elif condition == "service_completed_successfully":
                self.wait_completed(other)
            elif condition == "service_started":
                if other not in self.running and not self.backing(other):
                    raise DeploymentError(f"{name} needs {other}, which has not started")
            else:
                raise DeploymentError(f"{name}: unknown depends_on condition {condition}")
        if self.backing(name):
            return
        process = ManagedProcess(
            name,
            local_argv(name, self.project.argv(name), self.network),
            self.workdir / f"{name}.log",
            self.launch.with_env(self.environment(name)),
        )
        self.running[name] = self.processes.add(process)
        process.start()
        process.expected_exit = self.project.services[name].get("restart") == "no"

    def up(self) -> None:
        """Every service started in order, then each one with a health check healthy
        (``docker compose ps``: the one-shot ones exited 0, the rest healthy)."""
        for name in self.project.order():
            self.start(name)
        for name, process in self.running.items():
            if process.expected_exit:
                self.wait_completed(name)
        for name in self.project.order():
            if self.health_check(name) is not None:
                self.wait_healthy(name)

    def scrape_all(self) -> list[str]:
        """``GET /metrics`` of every service that serves it on the compose network (the
        API's port, each ``--metrics-port``), as a Prometheus there would: each must
        answer 200. The URLs scraped."""
        scraped = []
        for name in self.running:
            argv = self.project.argv(name)
            if argv[:2] == ["orderhub", "serve"] or "--metrics-port" in " ".join(argv):
                port = listening_ports(argv)[-1]
                url = f"http://{LOOPBACK}:{self.network.ports[name][port]}/metrics"
                wait_for_http(url, what=f"Prometheus' scrape of {name}", alive=self.watch())
                scraped.append(url)
        return scraped

    def url(self, service: str, port: int) -> str:
        """Where the host reaches ``service``'s container port (its ``ports`` mapping)."""
        published = [str(p) for p in self.project.services[service].get("ports", [])]
        if not any(p.rsplit(":", 1)[1] == str(port) for p in published):
            raise DeploymentError(f"{service} publishes {published}, not its port {port}")
        return f"http://{LOOPBACK}:{self.network.ports[service][port]}"

    def down(self) -> None:
        """``docker compose down``: SIGTERM to every container, each given its
        ``stop_grace_period``; each must have stopped by itself (a container still running
        then is SIGKILLed: its jobs cut short, its requests dropped)."""
        running = list(self.running.items())
        grace = {
            name: _seconds(self.project.services[name].get("stop_grace_period", "10s"))
            for name, _ in running
        }
        stop_all([process for _, process in running], timeout=max(grace.values(), default=10.0))
        for name, process in running:
            if self.project.services[name].get("restart") == "no":
                continue
            assert process.stopped_cleanly, (
                f"{name} did not stop cleanly on SIGTERM ({process.describe_exit()})\n"
                + process.tail(30)
            )


def _seconds(duration: str | int | float) -> float:
    """A compose duration (``60s``, ``1m30s``, ``500ms``) in seconds."""
    if isinstance(duration, int | float):
        return float(duration)
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration):
        total += float(number) * units[unit]
    return total
