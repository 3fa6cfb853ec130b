"""A container's command, environment and health check, run as a local process instead.

What a container has that a local process has not, and what stands in for it:

* **Its own network namespace.** Every port a service listens on (the container side of
  ``ports``, ``--port``, ``--metrics-port``) gets a free loopback port of its own;
  ``--host 0.0.0.0`` becomes ``127.0.0.1``; a URL naming another service (``postgres``,
  ``broker``, ``api``, ``topi-simulator``) names that service's local port; inside a
  service's own health check, ``127.0.0.1:<port>`` is its own mapped port and
  ``/proc/1/`` (the container's first process) is its process.
* **The backing services of the stack.** The local PostgreSQL (a fresh database of the
  test's own), RabbitMQ (guest, the default vhost) or Redis (the e2e database): a URL
  the stack gives the hub must name the host, port, user, password and database that
  service is created with, else a real deployment would fail to connect.
* **The image.** ``orderhub`` and ``python`` of this environment; a file the compose
  mounts (``./compose:/etc/orderhub``) is read from the repository, through the same
  translation of host names (demo.toml names the simulators).
* **Isolation from other tests.** ``ORDERHUB_BROKER__QUEUE_PREFIX`` is the one variable
  added to what the stack sets.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit

from sqlalchemy.engine import make_url

from orderhub.testing.processes import free_port, orderhub_command

LOOPBACK: Final = "127.0.0.1"
LISTEN_FLAGS: Final = ("--port", "--metrics-port")
HOST_FLAGS: Final = ("--host", "--metrics-host")
HEALTHCHECK_SECONDS: Final = 10.0
IMAGE_VENV: Final = os.environ.get("ORDERHUB_TEST_IMAGE_VENV", "")
"""A virtual environment holding what the image holds (deploy/Dockerfile's ``uv build``,
``uv export`` and ``pip install --no-deps``, done by hand): the containers' programs are
taken from it instead of this environment's."""
_URL: Final = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<auth>[^@/\s'\"]*@)?(?P<host>[A-Za-z0-9_.-]+):(?P<port>\d+)"
)
_OWN_ADDRESS: Final = re.compile(r"(?:127\.0\.0\.1|localhost)(?P<sep>:|'\s*,\s*)(?P<port>\d+)")


class DeploymentError(AssertionError):
    """What a real deployment of these files would hit."""


@dataclass(frozen=True)
class Backends:
    """The local services standing in for the stack's PostgreSQL and broker."""

    postgres_url: str
    """A fresh database of the test's own (SQLAlchemy URL, asyncpg driver)."""
    rabbitmq_url: str
    redis_url: str
    queue_prefix: str


@dataclass
class Network:
    """Where each service's ports are on loopback: ``{service: {container port: port}}``,
    and which services answer to which name (compose's network aliases)."""

    ports: dict[str, dict[int, int]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def listen(self, service: str, port: int) -> int:
        """The loopback port standing in for ``service``'s container port ``port``."""
        return self.ports.setdefault(service, {}).setdefault(port, free_port())

    def fixed(self, service: str, port: int, local: int) -> None:
        self.ports.setdefault(service, {})[port] = local

    def address(self, host: str, port: int) -> tuple[str, int] | None:
        service = self.aliases.get(host, host)
        if service not in self.ports:
            return None
        if port not in self.ports[service]:
            raise DeploymentError(
                f"{host}:{port}: {service} listens on {sorted(self.ports[service])}"
            )
        return LOOPBACK, self.ports[service][port]

    def urls(self, text: str) -> str:
        """Every ``scheme://[user@]service:port`` in ``text`` pointed at loopback."""

        def local(match: re.Match[str]) -> str:
            found = self.address(match["host"], int(match["port"]))
            if found is None:
                return match[0]
            return f"{match['scheme']}{match['auth'] or ''}{found[0]}:{found[1]}"

        return _URL.sub(local, text)

    def own(self, service: str, text: str) -> str:
        """Inside ``service`` (its health check): ``127.0.0.1:<port>`` is its own port."""

        def local(match: re.Match[str]) -> str:
            port = self.ports.get(service, {}).get(int(match["port"]))
            if port is None:
                raise DeploymentError(
                    f"{service}'s health check calls port {match['port']}, where it does not "
                    f"listen (it listens on {sorted(self.ports.get(service, {}))})"
                )
            return f"{LOOPBACK}{match['sep']}{port}"

        return self.urls(_OWN_ADDRESS.sub(local, text))


def listening_ports(argv: Sequence[str]) -> list[int]:
    """The ports a command says it listens on (``--port 8000``, ``--metrics-port=9100``)."""
    found = []
    for i, part in enumerate(argv):
        flag, _, value = part.partition("=")
        if flag in LISTEN_FLAGS:
            found.append(int(value or argv[i + 1]))
    return found


def local_argv(service: str, argv: Sequence[str], network: Network) -> list[str]:
    """The command with the program of this environment, its ports and hosts on loopback."""
    out: list[str] = []
    skip = False
    for i, part in enumerate(argv):
        if skip:
            skip = False
            continue
        flag, eq, value = part.partition("=")
        if flag in LISTEN_FLAGS or flag in HOST_FLAGS:
            value = value if eq else argv[i + 1]
            skip = not eq
            local = (
                str(network.listen(service, int(value)))
                if flag in LISTEN_FLAGS
                else (LOOPBACK if value in ("0.0.0.0", "::") else value)
            )
            out.append(f"{flag}={local}")
            continue
        out.append(network.urls(part))
    program, *rest = out
    if IMAGE_VENV:
        return [str(Path(IMAGE_VENV) / "bin" / program), *rest]
    if program == "orderhub":
        return orderhub_command(*rest)
    if program == "python":
        return [sys.executable, *rest]
    raise DeploymentError(f"{service}: no local stand-in for the program {program!r}")


def local_database_url(url: str, postgres: Mapping[str, str], backends: Backends) -> str:
    """The stack's database URL checked against what its PostgreSQL is created with
    (``POSTGRES_USER``, ``POSTGRES_PASSWORD``, ``POSTGRES_DB``), then the local one."""
    parsed = make_url(url)
    expected = {
        "driver": ("postgresql+asyncpg", parsed.drivername),
        "user": (postgres.get("POSTGRES_USER", "postgres"), parsed.username),
        "password": (postgres.get("POSTGRES_PASSWORD"), parsed.password),
        "database": (postgres.get("POSTGRES_DB", postgres.get("POSTGRES_USER")), parsed.database),
        "port": (5432, parsed.port or 5432),
    }
    for what, (wanted, given) in expected.items():
        if wanted != given:
            raise DeploymentError(
                f"the database URL {parsed!r} has {what} {given!r}; the PostgreSQL of the stack "
                f"has {wanted!r}: every hub process would fail to connect"
            )
    return backends.postgres_url


def local_broker_url(url: str, broker: Mapping[str, str], image: str, backends: Backends) -> str:
    """The stack's broker URL checked against its broker (the image's port, RabbitMQ's
    ``RABBITMQ_DEFAULT_USER`` / ``_PASS`` and default vhost), then the local one."""
    parts = urlsplit(url)
    wanted: tuple[str, str | None, str | None, int, str]
    if image.startswith("rabbitmq:"):
        wanted = (
            "amqp",
            broker.get("RABBITMQ_DEFAULT_USER", "guest"),
            broker.get("RABBITMQ_DEFAULT_PASS", "guest"),
            5672,
            "/",
        )
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        given = (parts.scheme, parts.username, parts.password, parts.port or 5672, vhost)
        local = backends.rabbitmq_url
    elif image.startswith("redis:"):
        wanted = ("redis", None, None, 6379, "/")
        given = (parts.scheme, parts.username, parts.password, parts.port or 6379, "/")
        local = backends.redis_url
    else:
        raise DeploymentError(f"no local stand-in for the broker image {image}")
    if wanted != given:
        raise DeploymentError(
            f"the broker URL says (scheme, user, password, port, vhost) {given}, the broker "
            f"{image} is {wanted}: every hub process would fail to connect"
        )
    return local


def mounted_file(
    container_path: str, volumes: Sequence[str], directory: Path, workdir: Path, network: Network
) -> Path:
    """The repository file a bind mount puts at ``container_path``, written to
    ``workdir`` with its URLs pointed at loopback."""
    for volume in volumes:
        source, _, rest = volume.partition(":")
        target = rest.split(":")[0]
        if not source.startswith((".", "/")):
            continue  # a named volume
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            original = directory / source / container_path[len(target) :].lstrip("/")
            if not original.is_file():
                raise DeploymentError(
                    f"{container_path} is mounted from {original}, which does not exist"
                )
            copy = workdir / "mounted" / original.name
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(network.urls(original.read_text(encoding="utf-8")), encoding="utf-8")
            return copy
    raise DeploymentError(f"{container_path} is in no volume the service mounts: {volumes}")


@dataclass(frozen=True)
class HealthCheck:
    """A ``healthcheck.test`` (compose) or probe command, run locally."""

    service: str
    argv: Sequence[str]

    def run(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(self.argv),
            capture_output=True,
            text=True,
            timeout=HEALTHCHECK_SECONDS,
            check=False,
        )

    def passes(self) -> bool:
        return self.run().returncode == 0


Tools = Mapping[str, Callable[[Sequence[str]], list[str]]]
"""How a backing service's own tool (``pg_isready``, ``redis-cli``) is run on this machine."""


def local_health_check(
    service: str,
    test: Sequence[str] | str,
    network: Network,
    *,
    pid: int | None = None,
    tools: Tools | None = None,
) -> HealthCheck:
    """A compose ``healthcheck.test`` as a local command (see the module)."""
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    kind, *rest = test
    if kind == "CMD-SHELL":
        rest = ["sh", "-c", *rest]
    elif kind != "CMD":
        raise DeploymentError(f"{service}: health check {test} is neither CMD nor CMD-SHELL")
    translated = [network.own(service, part) for part in rest]
    if pid is not None:
        translated = [part.replace("/proc/1/", f"/proc/{pid}/") for part in translated]
    program, *args = translated
    if program == "python":
        python = str(Path(IMAGE_VENV) / "bin" / "python") if IMAGE_VENV else sys.executable
        return HealthCheck(service, [python, *args])
    if tools and program in tools:
        return HealthCheck(service, tools[program](args))
    if shutil.which(program) is None:
        raise DeploymentError(f"{service}: {program} is not installed here to run {test}")
    return HealthCheck(service, [program, *args])
