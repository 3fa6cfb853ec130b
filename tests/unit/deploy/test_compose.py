"""deploy/compose.yaml (and its Redis variant) checked the way ``docker compose config``
would, plus what compose cannot know: each command is one the ``orderhub`` CLI accepts,
the configuration files load, the demo's accounts point at the simulators."""

from __future__ import annotations

import importlib.util
import re
from typing import Any, Final

import pytest

from orderhub.config import load_settings
from orderhub.entrypoints.cli import build_parser

from .support import DEPLOY, interpolate, load_yaml

COMPOSE: Final = load_yaml(DEPLOY / "compose.yaml")
REDIS: Final = load_yaml(DEPLOY / "compose.redis.yaml")
SERVICES: Final[dict[str, dict[str, Any]]] = COMPOSE["services"]
HUB_ROLES: Final = {"api": "serve", "worker": "worker", "scheduler": "scheduler"}
SIMULATORS: Final = {
    "topi-simulator": "orderhub_topi.simulator",
    "octopia-simulator": "orderhub_octopia.simulator",
    "spresso-simulator": "orderhub_spresso.simulator",
}


def _hub_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in SERVICES.items() if n.rsplit("-", 1)[0] in HUB_ROLES}


def test_the_stack_has_its_services() -> None:
    assert {"postgres", "broker", "migrate"} <= set(SERVICES)
    roles = [name.rsplit("-", 1)[0] for name in _hub_services()]
    assert sorted(roles) == sorted(["api", "worker", "scheduler"] * 2)
    assert set(SIMULATORS) <= set(SERVICES)


def test_every_hub_command_is_one_the_cli_accepts() -> None:
    parser = build_parser()
    for name, service in {**_hub_services(), "migrate": SERVICES["migrate"]}.items():
        command = [str(part) for part in service["command"]]
        args = parser.parse_args(command)
        role = name.rsplit("-", 1)[0]
        assert args.command == HUB_ROLES.get(role, "migrate"), name
        assert service["image"] == SERVICES["migrate"]["image"], "one image for every role"


def test_the_api_serves_on_the_port_its_health_check_and_ports_use() -> None:
    for name in ("api-1", "api-2"):
        service = SERVICES[name]
        args = build_parser().parse_args([str(p) for p in service["command"]])
        assert args.workers >= 2
        check = " ".join(service["healthcheck"]["test"])
        assert f"127.0.0.1:{args.port}/readyz" in check
        assert all(interpolate(p).endswith(f":{args.port}") for p in service["ports"])


def test_dependencies_wait_for_what_they_need() -> None:
    migrate = SERVICES["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name, service in _hub_services().items():
        assert service["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "postgres": {"condition": "service_healthy"},
            "broker": {"condition": "service_healthy"},
        }, name
    for name, service in SERVICES.items():
        for needed, how in (service.get("depends_on") or {}).items():
            assert needed in SERVICES, f"{name} depends on an unknown {needed}"
            assert "profiles" not in SERVICES[needed], f"{name} needs {needed} of a profile"
            if how["condition"] == "service_healthy":
                assert SERVICES[needed]["healthcheck"]["test"], needed


def test_long_running_services_restart_and_have_health_checks() -> None:
    for name, service in SERVICES.items():
        if name == "migrate":
            assert service["healthcheck"] == {"disable": True}
            continue
        assert service["restart"] == "unless-stopped", name
        test = service["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL"), name
        assert len(test) > 1, name


def test_the_demo_profile_runs_the_three_simulators() -> None:
    for name, module in SIMULATORS.items():
        service = SERVICES[name]
        assert service["profiles"] == ["demo"]
        assert service["entrypoint"] == ["python", "-m", module]
        assert importlib.util.find_spec(module) is not None, module
    in_profiles = [n for n, s in SERVICES.items() if "profiles" in s]
    assert sorted(in_profiles) == sorted(SIMULATORS)


@pytest.mark.parametrize("config_file", ["orderhub.toml", "demo.toml"])
def test_the_hubs_configuration_loads(config_file: str) -> None:
    environment = {
        key: interpolate(str(value))
        for key, value in SERVICES["api-1"]["environment"].items()
        if key.startswith("ORDERHUB_") and key != "ORDERHUB_CONFIG"
    }
    settings = load_settings(DEPLOY / "compose" / config_file, environ=environment)

    assert settings.broker.kind == "rabbitmq"
    assert settings.database.url.startswith("postgresql+asyncpg://orderhub:")
    assert settings.api.host == "0.0.0.0"
    mounted = SERVICES["api-1"]["volumes"][0]
    assert mounted.startswith("./compose:/etc/orderhub")


def test_the_demo_accounts_point_at_the_simulators() -> None:
    settings = load_settings(DEPLOY / "compose" / "demo.toml", environ={})
    for account in settings.channels.accounts:
        service = SERVICES[f"{account.channel}-simulator"]
        port = service["command"][service["command"].index("--port") + 1]
        assert account.settings["base_url"] == f"http://{account.channel}-simulator:{port}"
    webhooks = [
        c for s in SIMULATORS for c in SERVICES[s]["command"] if str(c).startswith("http://api:")
    ]
    for url in webhooks:
        assert re.fullmatch(r"http://api:8000/webhooks/(topi|spresso)/demo", url), url


def test_the_redis_variant_points_every_hub_process_at_redis() -> None:
    overridden = REDIS["services"]
    assert overridden["broker"]["image"].startswith("redis:")
    assert overridden["broker"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    for name in [*_hub_services(), "migrate"]:
        environment = overridden[name]["environment"]
        assert environment["ORDERHUB_BROKER__KIND"] == "redis", name
        assert environment["ORDERHUB_BROKER__URL"].startswith("redis://broker:6379/")


def test_the_example_env_file_sets_what_it_says() -> None:
    """compose/example.env becomes the hub's environment (env_file): every ORDERHUB_
    variable in it is one the configuration applies (one underscore too few is ignored)."""
    lines = (DEPLOY / "compose" / "example.env").read_text(encoding="utf-8").splitlines()
    given = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    hub = {k: v for k, v in given.items() if k.startswith("ORDERHUB_")}
    assert hub, "the API keys at least"
    for name in hub:
        assert "__" in name, f"{name} is not ORDERHUB_<SECTION>__<KEY>: the hub ignores it"
    environment = {
        key: interpolate(str(value))
        for key, value in SERVICES["api-1"]["environment"].items()
        if key.startswith("ORDERHUB_") and key != "ORDERHUB_CONFIG"
    }
    settings = load_settings(DEPLOY / "compose" / "orderhub.toml", environ={**environment, **hub})
    assert {"ops", "orders:write"} <= {scope for key in settings.api.keys for scope in key.scopes}
