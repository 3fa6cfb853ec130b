"""An overlay of deploy/kubernetes rendered (tests/unit/deploy/kustomize.py), and one pod
of each workload run as a local process (see deploy_local for the translation).

A pod's process is the image's ``ENTRYPOINT`` (deploy/Dockerfile's default target)
with the container's ``args``; its environment the image's ``ENV``, then the
container's ``env``: plain values, and ``secretKeyRef`` values from the Secret the test
makes as deploy/README.md tells an operator to (a missing key that is not ``optional``
is what Kubernetes refuses to start: ``CreateContainerConfigError``). A ``configMap``
volume is a directory of the ConfigMap's files. Ports: each ``containerPort`` gets a
loopback port of its own; probes and ``prometheus.io/port`` name them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from orderhub.testing.processes import Launch, ManagedProcess, ProcessSet
from tests.unit.deploy.kustomize import build

from .deploy_compose import DEPLOY, read_image
from .deploy_local import (
    LOOPBACK,
    Backends,
    DeploymentError,
    Network,
    local_argv,
    local_broker_url,
    local_database_url,
)

KUBERNETES: Final = DEPLOY / "kubernetes"
IMAGE_TARGET: Final = "runtime"
"""What the README's ``docker build -f deploy/Dockerfile`` (no ``--target``) makes."""


def render(overlay: str) -> list[dict[str, Any]]:
    """``kubectl kustomize deploy/kubernetes/overlays/<overlay>``."""
    return build(KUBERNETES / "overlays" / overlay)


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    if len(found) != 1:
        raise DeploymentError(f"{len(found)} {kind}/{name}, not one")
    return found[0]


@dataclass
class Pod:
    """One pod of a workload (Deployment or Job) as a local process."""

    workload: dict[str, Any]
    objects: list[dict[str, Any]]
    secrets: Mapping[str, Mapping[str, str]]
    network: Network
    workdir: Path
    process: ManagedProcess | None = None
    ports: dict[str, int] = field(default_factory=dict)
    """containerPort name -> loopback port."""

    @property
    def name(self) -> str:
        return str(self.workload["metadata"]["name"])

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self.workload["spec"]["template"]["spec"])

    @property
    def container(self) -> dict[str, Any]:
        (container,) = self.spec["containers"]
        return dict(container)

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.workload["spec"]["template"]["metadata"].get("annotations", {}))

    def _mounts(self) -> dict[str, Path]:
        """mountPath -> local directory, for the configMap volumes."""
        volumes = {v["name"]: v for v in self.spec.get("volumes", [])}
        mounts = {}
        for mount in self.container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            directory = self.workdir / self.name / mount["name"]
            directory.mkdir(parents=True, exist_ok=True)
            if "configMap" in volume:
                config = find(self.objects, "ConfigMap", volume["configMap"]["name"])
                for file, text in config.get("data", {}).items():
                    (directory / file).write_text(text, encoding="utf-8")
            mounts[mount["mountPath"]] = directory
        return mounts

    def local_path(self, path: str) -> str:
        for mount, directory in self._mounts().items():
            if path.startswith(mount.rstrip("/") + "/"):
                return str(directory / path[len(mount) :].lstrip("/"))
        return path

    def environment(self) -> dict[str, str]:
        image = read_image(IMAGE_TARGET)
        env = {k: v for k, v in image.env.items() if k.startswith("ORDERHUB_")}
        for var in self.container.get("env", []):
            if "value" in var:
                env[var["name"]] = str(var["value"])
                continue
            ref = var["valueFrom"]["secretKeyRef"]
            secret = self.secrets.get(ref["name"])
            if secret is None or ref["key"] not in secret:
                if ref.get("optional"):
                    continue
                raise DeploymentError(
                    f"{self.name}: Secret {ref['name']} has no key {ref['key']}: the pod stays "
                    "in CreateContainerConfigError"
                )
            env[var["name"]] = secret[ref["key"]]
        if "ORDERHUB_CONFIG" in env:
            env["ORDERHUB_CONFIG"] = self.local_path(env["ORDERHUB_CONFIG"])
            if not Path(env["ORDERHUB_CONFIG"]).is_file():
                raise DeploymentError(f"{self.name}: ORDERHUB_CONFIG names no mounted file")
        return env

    def start(self, processes: ProcessSet, launch: Launch) -> ManagedProcess:
        for port in self.container.get("ports", []):
            local = self.network.listen(self.name, int(port["containerPort"]))
            self.ports[port.get("name", str(port["containerPort"]))] = local
        image = read_image(IMAGE_TARGET)
        argv = [*self.container.get("command", image.entrypoint), *self.container["args"]]
        self.process = processes.add(
            ManagedProcess(
                self.name,
                local_argv(self.name, argv, self.network),
                self.workdir / f"{self.name}.log",
                launch.with_env(self.environment()),
            )
        )
        return self.process.start()

    def url(self, port: int | str) -> str:
        """``http://127.0.0.1:<loopback port>`` of a container port (number or name)."""
        if isinstance(port, str) and not port.isdigit():
            if port not in self.ports:
                raise DeploymentError(f"{self.name} has no container port named {port}")
            return f"http://{LOOPBACK}:{self.ports[port]}"
        mapped = self.network.ports.get(self.name, {}).get(int(port))
        if mapped is None:
            raise DeploymentError(f"{self.name} declares no container port {port}")
        return f"http://{LOOPBACK}:{mapped}"

    def probes(self) -> dict[str, str]:
        """``{probe: URL}`` of its HTTP probes."""
        found = {}
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = self.container.get(kind)
            if probe is None:
                continue
            if "httpGet" not in probe:
                raise DeploymentError(f"{self.name}: {kind} is not an httpGet probe")
            found[kind] = self.url(probe["httpGet"]["port"]) + probe["httpGet"]["path"]
        return found


def readme_trial_urls(password: str) -> dict[str, str]:
    """The ``database-url`` and ``broker-url`` deploy/README.md's trial puts in the
    Secret orderhub-secrets, with ``$PASSWORD`` its postgres password."""
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    trial = text[text.index("**A trial on any cluster**") :]
    found = {}
    for key in ("database-url", "broker-url"):
        match = re.search(rf"--from-literal={key}=[\"']([^\"']+)[\"']", trial)
        if match is None:
            raise DeploymentError(f"deploy/README.md's trial sets no {key}")
        found[key] = match[1].replace("$PASSWORD", password)
    return found


def trial_backends(
    objects: list[dict[str, Any]], urls: Mapping[str, str], password: str, backends: Backends
) -> dict[str, str]:
    """The trial's URLs checked against its own PostgreSQL and Redis (their Services'
    names and ports, the database's user, name and password), then the local ones."""
    for url, port in ((urls["database-url"], 5432), (urls["broker-url"], 6379)):
        host = urlsplit(url).hostname or ""
        ports = [p["port"] for p in find(objects, "Service", host)["spec"]["ports"]]
        if urlsplit(url).port != port or port not in ports:
            raise DeploymentError(f"{url}: Service {host} has ports {ports}")
    (postgres,) = find(objects, "StatefulSet", "orderhub-postgres")["spec"]["template"]["spec"][
        "containers"
    ]
    env = {e["name"]: e.get("value") for e in postgres["env"]}
    ref = next(e for e in postgres["env"] if e["name"] == "POSTGRES_PASSWORD")["valueFrom"]
    if ref["secretKeyRef"] != {"name": "orderhub-trial", "key": "postgres-password"}:
        raise DeploymentError(f"the trial's database password is {ref}, not the README's")
    env["POSTGRES_PASSWORD"] = password
    (redis,) = find(objects, "StatefulSet", "orderhub-redis")["spec"]["template"]["spec"][
        "containers"
    ]
    return {
        "database-url": local_database_url(urls["database-url"], env, backends),
        "broker-url": local_broker_url(urls["broker-url"], {}, redis["image"], backends),
    }
