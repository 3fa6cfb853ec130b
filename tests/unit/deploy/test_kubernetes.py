"""deploy/kubernetes rendered as ``kubectl kustomize`` would (base, overlays small and
large), validated against the Kubernetes schemas (kubernetes-validate, offline, strict),
and checked for what a schema cannot know: each container runs an ``orderhub`` command the
CLI accepts, probes and Service and Ingress agree on the port, every Secret is documented
for the operator, every ConfigMap is defined and its configuration loads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

import kubernetes_validate
import pytest

from orderhub import __version__
from orderhub.config import load_settings
from orderhub.entrypoints.cli import build_parser

from .kustomize import KustomizeError, build, strategic_merge
from .support import DEPLOY

KUBERNETES: Final = DEPLOY / "kubernetes"
RENDERINGS: Final = ["base", "overlays/small", "overlays/large", "overlays/trial"]
# the oldest release still maintained upstream, and the newest the validator bundles
VERSIONS: Final = ("1.32", "1.37")
ROLES: Final = {
    "orderhub-api": "serve",
    "orderhub-worker": "worker",
    "orderhub-scheduler": "scheduler",
    "orderhub-migrate": "migrate",
}
README: Final = (DEPLOY / "README.md").read_text(encoding="utf-8")


def _render(which: str) -> list[dict[str, Any]]:
    return build(KUBERNETES / which)


def _by(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _pods(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Everything that runs pods, the trial's database and broker included."""
    return {**_by(objects, "Deployment"), **_by(objects, "StatefulSet"), **_by(objects, "Job")}


def _workloads(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The hub's own: API, workers, schedulers, migration."""
    return {
        name: o
        for name, o in _pods(objects).items()
        if o["metadata"]["labels"]["app.kubernetes.io/name"] == "orderhub"
    }


def _pod(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def _args(workload: dict[str, Any]) -> Any:
    (container,) = _pod(workload)["containers"]
    assert container.get("command", ["orderhub"]) == ["orderhub"]
    return build_parser().parse_args([str(a) for a in container["args"]])


def _memory(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * (1024 if unit == "Gi" else 1)


def _cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


@pytest.mark.parametrize("which", RENDERINGS)
@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_is_valid_for_kubernetes(which: str, version: str) -> None:
    objects = _render(which)
    assert len(objects) >= 15
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)
    assert {o["metadata"]["namespace"] for o in objects} == {"orderhub"}


def test_the_validator_refuses_what_kubernetes_would() -> None:
    deployment = _by(_render("base"), "Deployment")["orderhub-api"]
    typo = strategic_merge(deployment, {"spec": {"template": {"spec": {"containerz": []}}}})
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, VERSIONS[-1], strict=True)


@pytest.mark.parametrize("which", RENDERINGS)
def test_the_topology_is_complete_and_holds_no_secret(which: str) -> None:
    objects = _render(which)
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert {
        ("Deployment", "orderhub-api"),
        ("Deployment", "orderhub-worker"),
        ("Deployment", "orderhub-scheduler"),
        ("Job", "orderhub-migrate"),
        ("Service", "orderhub-api"),
        ("Ingress", "orderhub"),
        ("ConfigMap", "orderhub-config"),
        ("NetworkPolicy", "orderhub"),
    } <= kinds
    assert not _by(objects, "Secret"), "secrets are the operator's, never in the repository"
    hpas = _by(objects, "HorizontalPodAutoscaler")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas.values()} == {
        "orderhub-api",
        "orderhub-worker",
    }
    deployments = {n: d for n, d in _by(objects, "Deployment").items() if n in _workloads(objects)}
    for hpa in hpas.values():
        target = deployments[hpa["spec"]["scaleTargetRef"]["name"]]
        assert "replicas" not in target["spec"], "the autoscaler owns the replicas"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    for pdb in _by(objects, "PodDisruptionBudget").values():
        selected = [
            d
            for d in deployments.values()
            if pdb["spec"]["selector"]["matchLabels"].items()
            <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(selected) == 1, pdb["metadata"]["name"]
        assert pdb["spec"]["maxUnavailable"] == 1, "a drain never waits forever"
    assert {p["metadata"]["name"] for p in _by(objects, "PodDisruptionBudget").values()} == {
        "orderhub-api",
        "orderhub-worker",
        "orderhub-scheduler",
    }


@pytest.mark.parametrize("which", RENDERINGS)
def test_every_container_runs_a_command_the_cli_accepts(which: str) -> None:
    workloads = _workloads(_render(which))
    assert set(workloads) == set(ROLES)
    for name, workload in workloads.items():
        args = _args(workload)
        assert args.command == ROLES[name], name
    api = _args(workloads["orderhub-api"])
    assert api.host == "0.0.0.0"
    grace = _pod(workloads["orderhub-api"])["terminationGracePeriodSeconds"]
    assert grace >= api.graceful_timeout + 10 + 5, "serve's drain, its kill grace, preStop"
    worker = _args(workloads["orderhub-worker"])
    assert _pod(workloads["orderhub-worker"])["terminationGracePeriodSeconds"] > (
        worker.shutdown_timeout
    )


@pytest.mark.parametrize("which", RENDERINGS)
def test_probes_the_service_and_the_ingress_agree_on_the_port(which: str) -> None:
    objects = _render(which)
    api = _by(objects, "Deployment")["orderhub-api"]
    (container,) = _pod(api)["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    listening = _args(api).port
    assert list(ports.values()) == [listening]

    def port_of(ref: str | int) -> int:
        return ports[ref] if isinstance(ref, str) else ref

    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert port_of(container[probe]["httpGet"]["port"]) == listening, probe
    service = _by(objects, "Service")["orderhub-api"]
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    for other in _by(objects, "Deployment").values():
        if other is not api:
            other_labels = other["spec"]["template"]["metadata"]["labels"]
            assert not service["spec"]["selector"].items() <= other_labels.items()
    (service_port,) = service["spec"]["ports"]
    assert port_of(service_port["targetPort"]) == listening
    annotations = api["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == listening
    ingress = _by(objects, "Ingress")["orderhub"]
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == "orderhub-api"
            assert backend["port"]["name"] == service_port["name"]
    api_policy = _by(objects, "NetworkPolicy")["orderhub-api"]
    assert api_policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert [port_of(p["port"]) for p in api_policy["spec"]["ingress"][0]["ports"]] == [listening]


def _references(objects: list[dict[str, Any]]) -> tuple[set[tuple[str, str]], set[str]]:
    """(Secret name, key) and ConfigMap names the workloads and the Ingress use."""
    secrets: set[tuple[str, str]] = set()
    config_maps: set[str] = set()
    for workload in _pods(objects).values():
        pod = _pod(workload)
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                config_maps.add(volume["configMap"]["name"])
            assert "secret" not in volume or volume["secret"]["secretName"], volume
        for container in pod["containers"]:
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    secrets.add((ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]))
                if "configMapKeyRef" in ref:
                    config_maps.add(ref["configMapKeyRef"]["name"])
            assert "envFrom" not in container, "name each variable: the README lists them"
    for ingress in _by(objects, "Ingress").values():
        for tls in ingress["spec"].get("tls", []):
            secrets.add((tls["secretName"], ""))  # a TLS Secret: tls.crt and tls.key
    return secrets, config_maps


@pytest.mark.parametrize("which", RENDERINGS)
def test_every_secret_is_documented_and_every_config_map_defined(which: str) -> None:
    objects = _render(which)
    secrets, config_maps = _references(objects)
    assert config_maps <= set(_by(objects, "ConfigMap"))
    assert ("orderhub-secrets", "database-url") in secrets
    for name, key in secrets:
        assert f"`{name}`" in README, f"deploy/README.md does not tell how to create {name}"
        assert not key or f"`{key}`" in README, f"deploy/README.md does not name {name}'s {key}"


def test_the_configuration_loads_with_the_secrets_the_pods_get(tmp_path: Path) -> None:
    objects = _render("base")
    (toml,) = _by(objects, "ConfigMap")["orderhub-config"]["data"].values()
    path = tmp_path / "orderhub.toml"
    path.write_text(toml, encoding="utf-8")
    examples = {
        "database-url": "postgresql+asyncpg://orderhub:pw@postgres:5432/orderhub",
        "broker-url": "amqp://orderhub:pw@rabbitmq:5672/",
        "api-keys": json.dumps([{"name": "wms", "key": "k" * 32, "scopes": ["orders:read"]}]),
        "channel-accounts": json.dumps([{"channel": "topi", "name": "shop"}]),
    }
    for name, workload in _workloads(objects).items():
        (container,) = _pod(workload)["containers"]
        environment = {}
        for variable in container["env"]:
            if "value" in variable:
                environment[variable["name"]] = variable["value"]
            else:
                environment[variable["name"]] = examples[
                    variable["valueFrom"]["secretKeyRef"]["key"]
                ]
        mounted = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert environment.pop("ORDERHUB_CONFIG") == f"{mounted['config']}/orderhub.toml", name
        settings = load_settings(path, environ=environment)
        assert settings.broker.kind == "rabbitmq"
        assert settings.database.url == examples["database-url"]
        if name == "orderhub-api":
            assert settings.api.host == "0.0.0.0"
            assert [k.name for k in settings.api.keys] == ["wms"]


@pytest.mark.parametrize("which", RENDERINGS)
def test_pods_run_as_a_user_on_a_read_only_root_with_bounded_resources(which: str) -> None:
    for name, workload in _workloads(_render(which)).items():
        pod = _pod(workload)
        assert pod["automountServiceAccountToken"] is False, name
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["runAsUser"] == 10001, "the image's user (deploy/Dockerfile)"
        assert context["seccompProfile"]["type"] == "RuntimeDefault"
        mounts = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert tmp, f"{name}: a writable /tmp"
            assert "emptyDir" in mounts[tmp[0]["name"]]
            requests, limits = container["resources"]["requests"], container["resources"]["limits"]
            assert _memory(requests["memory"]) <= _memory(limits["memory"]), name
            assert _cpu(requests["cpu"]) <= _cpu(limits.get("cpu", requests["cpu"])), name


def test_the_readmes_first_apply_brings_what_the_migrate_job_needs() -> None:
    """deploy/README.md applies the migrate Job first, with a label selector: the Job, its
    ServiceAccount and its ConfigMap must all be selected, and no long-running workload."""
    (selector,) = set(re.findall(r"kubectl apply -k \S+ -l '([^']+)'", README))
    key, values = re.fullmatch(r"(\S+) in \(([^)]*)\)", selector).groups()  # type: ignore[union-attr]
    wanted = {v.strip() for v in values.split(",")}
    objects = _render("overlays/small")
    selected = {
        (o["kind"], o["metadata"]["name"])
        for o in objects
        if o["metadata"].get("labels", {}).get(key) in wanted
    }
    job = _by(objects, "Job")["orderhub-migrate"]
    pod = _pod(job)
    needs = {("Job", "orderhub-migrate"), ("ServiceAccount", pod["serviceAccountName"])}
    needs |= {("ConfigMap", v["configMap"]["name"]) for v in pod["volumes"] if "configMap" in v}
    assert needs <= selected
    assert not {kind for kind, _ in selected} & {"Deployment", "Service", "Ingress"}


def test_the_trial_brings_its_own_database_and_broker(tmp_path: Path) -> None:
    objects = _render("overlays/trial")
    backing = {n: o for n, o in _pods(objects).items() if n not in _workloads(objects)}
    assert set(backing) == {"orderhub-postgres", "orderhub-redis"}
    egress = {
        port["port"]
        for rule in _by(objects, "NetworkPolicy")["orderhub"]["spec"]["egress"]
        for port in rule["ports"]
    }
    services = _by(objects, "Service")
    for name, workload in backing.items():
        pod = _pod(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        (container,) = pod["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"], name
        assert container["readinessProbe"], name
        (port,) = services[name]["spec"]["ports"]
        assert port["port"] in egress, f"the hub's pods may reach {name}"
    (toml,) = _by(objects, "ConfigMap")["orderhub-config"]["data"].values()
    (tmp_path / "orderhub.toml").write_text(toml, encoding="utf-8")
    environment = {
        "ORDERHUB_DATABASE__URL": "postgresql+asyncpg://orderhub:pw@orderhub-postgres:5432/orderhub",
        "ORDERHUB_BROKER__URL": "redis://orderhub-redis:6379/0",
    }
    settings = load_settings(tmp_path / "orderhub.toml", environ=environment)
    assert settings.broker.kind == "redis"
    for url in environment.values():
        assert url.replace("pw", "PASSWORD") in README, "the README's trial uses these URLs"


def _hpa(objects: list[dict[str, Any]], name: str) -> tuple[int, int]:
    spec = _by(objects, "HorizontalPodAutoscaler")[name]["spec"]
    return spec["minReplicas"], spec["maxReplicas"]


def test_the_overlays_size_a_small_and_a_large_shop() -> None:
    small, large = _render("overlays/small"), _render("overlays/large")
    for objects in (small, large):
        images = {c["image"] for w in _workloads(objects).values() for c in _pod(w)["containers"]}
        assert images == {f"orderhub:{__version__}"}, "the overlays deploy this version"
    assert _hpa(small, "orderhub-api") == (2, 3)
    assert _hpa(small, "orderhub-worker") == (1, 3)
    assert _hpa(large, "orderhub-api") == (3, 12)
    assert _hpa(large, "orderhub-worker") == (4, 24)
    assert _by(small, "Deployment")["orderhub-scheduler"]["spec"]["replicas"] == 1
    assert _by(large, "Deployment")["orderhub-scheduler"]["spec"]["replicas"] == 2
    small_workloads, large_workloads = _workloads(small), _workloads(large)
    assert _args(small_workloads["orderhub-worker"]).processes == 1
    assert _args(large_workloads["orderhub-worker"]).processes == 4
    assert _args(small_workloads["orderhub-api"]).workers == 2
    assert _args(large_workloads["orderhub-api"]).workers == 4
    (large_api,) = _pod(large_workloads["orderhub-api"])["containers"]
    assert large_api["resources"]["limits"]["memory"] == "1280Mi"
    assert [e["name"] for e in large_api["env"]][:2] == [
        "ORDERHUB_CONFIG",
        "ORDERHUB_DATABASE__URL",
    ]
    assert large_api["readinessProbe"]["httpGet"]["path"] == "/readyz", "kept by the patch"


def test_the_renderer_merges_as_kubernetes_does() -> None:
    base = {
        "spec": {
            "containers": [
                {"name": "a", "args": ["x", "y"], "env": [{"name": "E", "value": "1"}]},
                {"name": "b", "image": "b"},
            ],
            "ports": [{"containerPort": 80, "name": "http"}],
        }
    }
    patch = {
        "spec": {
            "containers": [{"name": "a", "args": ["z"], "env": [{"name": "F", "value": "2"}]}],
            "ports": [{"containerPort": 80, "name": "web"}],
        }
    }
    merged = strategic_merge(base, patch)
    a, b = merged["spec"]["containers"]
    assert a["args"] == ["z"], "a plain list is replaced"
    assert [e["name"] for e in a["env"]] == ["E", "F"], "env merges by name"
    assert b == {"name": "b", "image": "b"}
    assert merged["spec"]["ports"] == [{"containerPort": 80, "name": "web"}]
    with pytest.raises(KustomizeError):
        strategic_merge(base, {"spec": {"$patch": "replace"}})


def test_the_renderer_refuses_what_it_cannot_render(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("configMapGenerator: []\n", encoding="utf-8")
    with pytest.raises(KustomizeError, match="configMapGenerator"):
        build(tmp_path)
