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

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from orderhub.testing.processes import Launch, ManagedProcess, ProcessSet
from tests.unit.deploy.kustomize import build

from .deploy_compose import DEPLOY, read_image
from .deploy_local import LOOPBACK, DeploymentError, Network, local_argv

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
