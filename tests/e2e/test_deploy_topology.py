"""deploy/ brought up as ``docker compose up`` and ``kubectl apply -k`` would, without
Docker or a cluster: each container as a local process.

Compose: each hub service (migrate, 2 API, 2 workers, 2 schedulers) and, with the demo
profile, each simulator runs the exact command and environment the compose files give its
container (``.env`` from compose/example.env with every ``change-me`` value changed, as
deploy/README.md says); deploy_local translates a container to a process (loopback
ports, the local PostgreSQL, broker and files). They start in compose's dependency order,
every compose health check must pass, a WMS story runs through the API ports the compose
publishes with the key the ``.env`` defines (an order arrives from a marketplace, the WMS
accepts it through the other API container, the feed shows both), and ``docker compose
down`` must find every service stopping by itself within its grace. Two stacks: RabbitMQ
with the demo profile (the topi simulator is the marketplace), and the Redis variant
(compose.redis.yaml) with the shop's account given in ``.env`` as
ORDERHUB_CHANNELS__ACCOUNTS (the test channel server).

Kubernetes: overlays/small and overlays/trial rendered (deploy_kubernetes), the Secret of
deploy/README.md, the migrate Job to its end, then one pod of the API, the workers and
the scheduler; every probe and every ``prometheus.io`` scrape must answer, then the same
story.

A missing PostgreSQL, RabbitMQ or Redis fails these tests, never skips them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import pika
import pytest
import redis

from orderhub.testing.processes import NotYet, ProcessSet, Watch, eventually, wait_for_http

from .conftest import PROCESSES_KEY
from .deploy_compose import DEPLOY, load_project
from .deploy_kubernetes import Pod, find, readme_trial_urls, render, trial_backends
from .deploy_local import Backends, Network, listening_ports
from .deploy_run import ComposeUp
from .support import LAUNCH, REDIS_URL, ChannelServer, order_document

pytestmark = [pytest.mark.postgres, pytest.mark.broker]

RABBITMQ_URL: Final = os.environ.get(
    "ORDERHUB_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"
)
STORY_SECONDS: Final = 60.0
SHOP: Final = "shop"
SHOP_TOKEN: Final = "compose-shop-webhook-token"


def operator_dotenv(*extra: str) -> str:
    """``cp compose/example.env .env``, every ``change-me`` value changed, ``extra`` lines
    added (deploy/README.md)."""
    text = (DEPLOY / "compose" / "example.env").read_text(encoding="utf-8")
    text = re.sub(r"change-me-[\w-]*", lambda _: secrets.token_urlsafe(24), text)
    return text + "".join(f"{line}\n" for line in extra)


def env_keys(dotenv: str) -> dict[str, str]:
    """The API keys the ``.env`` defines, by name."""
    line = next(line for line in dotenv.splitlines() if line.startswith("ORDERHUB_API__KEYS="))
    return {key["name"]: key["key"] for key in json.loads(line.split("=", 1)[1])}


def _rabbitmq_delete(prefix: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        channel = connection.channel()
        for queue in ("commands", "inbox"):
            for suffix in ("", ".DQ", ".XQ"):
                channel.queue_delete(f"{prefix}.{queue}{suffix}")
    finally:
        connection.close()


@pytest.fixture
def rabbitmq() -> str:
    try:
        pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL)).close()
    except Exception as exc:
        pytest.fail(
            f"RabbitMQ at {RABBITMQ_URL} cannot be reached ({type(exc).__name__}: {exc}): "
            'start it or set ORDERHUB_TEST_RABBITMQ_URL; run pytest -m "not broker" to leave '
            "these tests out on purpose",
            pytrace=False,
        )
    return RABBITMQ_URL


@pytest.fixture
def processes(request: pytest.FixtureRequest, backends: Backends) -> Iterator[ProcessSet]:
    """Stopped before the backends' database and queues are removed."""
    found = ProcessSet()
    request.node.stash[PROCESSES_KEY] = found
    try:
        yield found
    finally:
        found.stop_all()


@pytest.fixture
def backends(empty_postgres_url: str, redis_db: redis.Redis, rabbitmq: str) -> Iterator[Backends]:
    prefix = f"compose-{secrets.token_hex(4)}"
    yield Backends(
        postgres_url=empty_postgres_url,
        rabbitmq_url=rabbitmq,
        redis_url=REDIS_URL,
        queue_prefix=prefix,
    )
    for key in redis_db.scan_iter(f"dramatiq:{prefix}.*"):
        redis_db.delete(key)
    _rabbitmq_delete(prefix)


class Wms:
    """The warehouse, through the stack's published API ports, with the ``.env``'s key."""

    def __init__(self, urls: list[str], key: str) -> None:
        self.clients = [
            httpx.Client(base_url=url, timeout=15.0, headers={"Authorization": f"Bearer {key}"})
            for url in urls
        ]

    def close(self) -> None:
        for client in self.clients:
            client.close()

    def find(self, channel: str, account: str, channel_order_id: str) -> dict[str, Any]:
        response = self.clients[0].get(
            "/api/v1/orders", params={"channel": channel, "account": account}
        )
        response.raise_for_status()
        for order in response.json()["orders"]:
            if order["channel_order_id"] == channel_order_id:
                return dict(order)
        raise NotYet(f"{channel}/{account} {channel_order_id} is not in the hub's list")

    def events(self, order_id: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        after = 0
        while True:
            response = self.clients[0].get("/api/v1/feed", params={"after": after, "limit": 500})
            response.raise_for_status()
            page = response.json()
            if not page["events"]:
                return [e for e in events if e.get("order_id") == order_id]
            events += page["events"]
            after = page["next_cursor"]

    def command_event(self, order_id: str, kind: str) -> dict[str, Any]:
        for event in self.events(order_id):
            if event["type"].startswith("command.") and event["data"].get("kind") == kind:
                return event
        raise NotYet(f"no {kind} command on the feed for {order_id}")

    def accept(self, order_id: str) -> dict[str, Any]:
        """Through the second API container."""
        response = self.clients[-1].post(
            f"/api/v1/orders/{order_id}/accept",
            headers={"Idempotency-Key": f"compose-{uuid.uuid4()}"},
        )
        assert response.status_code == 202, response.text
        return dict(response.json())


def run_story(
    alive: Watch,
    wms: Wms,
    channel: str,
    account: str,
    place_order: Callable[[], str],
) -> None:
    """An order arrives, the WMS accepts it, the feed shows both."""
    channel_order_id = place_order()
    order = eventually(
        f"the {channel} order {channel_order_id} to reach the hub",
        lambda: wms.find(channel, account, channel_order_id),
        timeout=STORY_SECONDS,
        alive=alive,
    )
    assert order["status"] == "awaiting_acceptance", order
    if channel == "topi":  # the hub acknowledges a topi order by itself, first
        ack = eventually(
            "the hub's acknowledge",
            lambda: wms.command_event(order["id"], "acknowledge"),
            timeout=STORY_SECONDS,
            alive=alive,
        )
        assert ack["type"] == "command.succeeded", ack
    receipt = wms.accept(order["id"])
    event = eventually(
        "the accept command to reach the marketplace",
        lambda: wms.command_event(order["id"], "accept"),
        timeout=STORY_SECONDS,
        alive=alive,
    )
    assert event["type"] == "command.succeeded", event
    assert event["data"]["command_id"] == receipt["command_id"]
    types = [e["type"] for e in wms.events(order["id"])]
    assert "order.received" in types, types


def _bring_up(
    tmp_path: Path,
    processes: ProcessSet,
    backends: Backends,
    dotenv: str,
    profiles: tuple[str, ...] = (),
) -> ComposeUp:
    """``cd deploy && docker compose [--profile ...] up -d`` with this ``.env``."""
    project = load_project(dotenv=dotenv, profiles=profiles)
    stack = ComposeUp(project, backends, processes, tmp_path, LAUNCH)
    stack.up()
    return stack


def test_compose_demo_profile_on_rabbitmq(
    tmp_path: Path, processes: ProcessSet, backends: Backends
) -> None:
    """``docker compose --profile demo up`` (ORDERHUB_TARGET, ORDERHUB_IMAGE and
    ORDERHUB_CONFIG_FILE in .env, as deploy/README.md says): the topi simulator is the
    marketplace, and every simulator runs from the image the demo target builds."""
    from orderhub_topi.simulator.control import SimulatorControl

    dotenv = operator_dotenv(
        "ORDERHUB_TARGET=demo",
        "ORDERHUB_IMAGE=orderhub-demo:latest",
        "ORDERHUB_CONFIG_FILE=demo.toml",
    )
    stack = _bring_up(tmp_path, processes, backends, dotenv, ("demo",))
    assert len(stack.scrape_all()) == 6, "2 API, 2 workers, 2 schedulers"
    simulators = {"topi-simulator", "octopia-simulator", "spresso-simulator"}
    assert simulators <= set(stack.running)
    services = stack.project.services
    assert services["migrate"]["build"]["target"] == "demo"
    for name in simulators:  # the image migrate builds, not the runtime one
        assert services[name]["image"] == services["migrate"]["image"] == "orderhub-demo:latest"
    wms = Wms([stack.url("api-1", 8000), stack.url("api-2", 8000)], env_keys(dotenv)["wms"])
    topi_port = stack.network.ports["topi-simulator"][8701]
    topi = SimulatorControl(f"http://127.0.0.1:{topi_port}")
    try:
        run_story(
            stack.watch(),
            wms,
            "topi",
            "demo",
            lambda: str(
                topi.create_order(lines=[{"title": "Mouse", "sku": "MOU-1", "quantity": 1}])["id"]
            ),
        )
    finally:
        topi.close()
        wms.close()
    stack.down()


def test_compose_redis_variant_with_accounts_from_env(
    tmp_path: Path, processes: ProcessSet, backends: Backends
) -> None:
    """The Redis variant as deploy/README.md sets it up (COMPOSE_FILE in .env), the shop's
    account in .env as ORDERHUB_CHANNELS__ACCOUNTS, at the test channel server."""
    channel = ChannelServer(processes, tmp_path).start()
    accounts = json.dumps([shop_account(channel)])
    dotenv = operator_dotenv(
        "COMPOSE_FILE=compose.yaml:compose.redis.yaml", f"ORDERHUB_CHANNELS__ACCOUNTS={accounts}"
    )
    stack = _bring_up(tmp_path, processes, backends, dotenv)
    assert stack.project.services["broker"]["image"].startswith("redis:")
    assert len(stack.scrape_all()) == 6, "2 API, 2 workers, 2 schedulers"
    api = [stack.url("api-1", 8000), stack.url("api-2", 8000)]
    wms = Wms(api, env_keys(dotenv)["wms"])
    try:
        run_story(
            stack.watch(),
            wms,
            "testchannel",
            SHOP,
            lambda: send_order(channel, api[0], "CO-COMPOSE-1"),
        )
    finally:
        channel.close()
        wms.close()
    stack.down()


def shop_account(channel: ChannelServer) -> dict[str, Any]:
    """The shop's account at the test channel server, as an operator writes it."""
    return {
        "channel": "testchannel",
        "name": SHOP,
        "settings": {"profile": "topi", "base_url": channel.url},
        "webhook": {"bearer_tokens": [SHOP_TOKEN]},
    }


def send_order(channel: ChannelServer, api_url: str, channel_order_id: str) -> str:
    """The marketplace pushes an order to the hub's webhook."""
    response = channel.client.post(
        "/_send_order",
        json={
            "order": order_document(channel_order_id, "created", [("L1", 1)]),
            "webhook_url": f"{api_url}/webhooks/testchannel/{SHOP}",
            "token": SHOP_TOKEN,
        },
    )
    assert response.status_code == 200, response.text
    return channel_order_id


@pytest.mark.parametrize("overlay", ["small", "trial"])
def test_kubernetes_overlay(
    overlay: str, tmp_path: Path, processes: ProcessSet, backends: Backends
) -> None:
    """``kubectl apply -k deploy/kubernetes/overlays/<overlay>`` with the Secret of
    deploy/README.md: the migrate Job to its end, then one pod of the API, the workers and
    the scheduler; every probe and scrape annotation answers; the story runs. ``small`` on
    RabbitMQ (the ConfigMap's broker); ``trial`` on Redis, with the README's URLs, which
    must name the trial's own PostgreSQL and Redis (standing in: the local ones)."""
    objects = render(overlay)
    channel = ChannelServer(processes, tmp_path).start()
    wms_key = secrets.token_urlsafe(32)
    keys = [
        {"name": "wms", "key": wms_key, "scopes": ["orders:read", "orders:write"]},
        {"name": "ops", "key": secrets.token_urlsafe(32), "scopes": ["orders:read", "ops"]},
    ]
    config = find(objects, "ConfigMap", "orderhub-config")["data"]["orderhub.toml"]
    if overlay == "trial":
        password = secrets.token_urlsafe(24)
        urls = trial_backends(objects, readme_trial_urls(password), password, backends)
        assert 'kind = "redis"' in config, "the trial's broker-url is redis://"
    else:
        urls = {"database-url": backends.postgres_url, "broker-url": backends.rabbitmq_url}
        assert 'kind = "rabbitmq"' in config, "the README's Secret gives an amqp:// broker-url"
    secret = {
        **urls,
        "api-keys": json.dumps(keys),
        "channel-accounts": json.dumps([shop_account(channel)]),
    }
    network = Network()
    launch = LAUNCH.with_env({"ORDERHUB_BROKER__QUEUE_PREFIX": backends.queue_prefix})

    def pod(kind: str, name: str) -> Pod:
        return Pod(
            find(objects, kind, name), objects, {"orderhub-secrets": secret}, network, tmp_path
        )

    migrate = pod("Job", "orderhub-migrate")
    job = migrate.start(processes, launch)
    code = job.wait(90.0)
    assert code == 0, f"the migrate Job failed (exit {code}):\n{job.tail(40)}"
    pods = [pod("Deployment", f"orderhub-{role}") for role in ("api", "worker", "scheduler")]
    for each in pods:
        each.start(processes, launch)
    alive = Watch(*(each.process for each in pods))
    for each in pods:
        for probe, url in each.probes().items():
            wait_for_http(url, what=f"{each.name}'s {probe} {url}", timeout=90.0, alive=alive)
        annotations = each.annotations
        assert annotations.get("prometheus.io/scrape") == "true", each.name
        scrape = (
            each.url(int(annotations["prometheus.io/port"])) + annotations["prometheus.io/path"]
        )
        wait_for_http(scrape, what=f"Prometheus' scrape of {each.name}", timeout=90.0, alive=alive)
    # deploy/README.md: kubectl logs deployment/orderhub-scheduler | grep scheduler.leader
    scheduler = pods[2].process
    assert scheduler is not None
    scheduler.wait_for_event("scheduler.leader", timeout=90.0, alive=alive)
    api = pods[0].url("http")
    wms = Wms([api], wms_key)
    try:
        run_story(alive, wms, "testchannel", SHOP, lambda: send_order(channel, api, "CO-K8S-1"))
    finally:
        channel.close()
        wms.close()


@pytest.mark.parametrize("overlay", ["small", "large", "trial"])
def test_every_scraped_port_is_one_the_pod_listens_on(overlay: str) -> None:
    """Without running them (the large overlay's pods are too many for this machine):
    each Deployment's ``prometheus.io/port`` is a port its container declares and its
    command listens on. A patch replaces a container's whole ``args``."""
    for obj in render(overlay):
        template = obj.get("spec", {}).get("template", {})
        port = template.get("metadata", {}).get("annotations", {}).get("prometheus.io/port")
        if obj["kind"] != "Deployment" or port is None:
            continue
        (container,) = template["spec"]["containers"]
        declared = [p["containerPort"] for p in container.get("ports", [])]
        assert int(port) in declared, f"{obj['metadata']['name']}: ports {declared}"
        listens = listening_ports(container["args"])
        assert int(port) in listens, f"{obj['metadata']['name']} {container['args']}: {listens}"
