"""deploy/rabbitmq: the definitions equal what the code declares, and a broker boots from them.

Both checks run against real RabbitMQ: throwaway vhosts on the machine's broker for the drift
check, and a throwaway node configured like the compose stack's `rabbitmq` service.

The machine's broker is Debian's RabbitMQ 3.10; compose deploys 4.3, whose image cannot be
pulled here. So the node boots 3.10 from rabbitmq.conf, enabled_plugins and the definitions,
but not from deprecated-features.conf (keys 3.10 refuses to start on). What 4.3 would refuse is
checked statically below, against the release notes and source of 4.3 (see
docs/operations.md#rabbitmq-versions).
"""

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pika
import pytest

from services.common import topology
from services.common.config import ServiceSettings
from services.common.worker.app import create_celery
from tests.support import environment
from tests.support.deployment import K8S, REPO, raw_compose
from tests.support.rabbitmq_node import DEPLOY, deployed_node

MANAGEMENT = "http://127.0.0.1:15672"
GUEST = ("guest", "guest")
DEFINITIONS = json.loads((DEPLOY / "definitions.json").read_text())
# The oldest series compose may deploy: 3.10 to 4.2 are past their community support.
SUPPORTED_FROM = (4, 3)
DEPRECATED_FEATURES = DEPLOY / "deprecated-features.conf"
# Queue arguments RabbitMQ 4.3 refuses (x-queue-mode, x-queue-version: classic queue storage v1
# was removed) or denies by default (x-queue-master-locator), and policy keys 4.3's policy
# validators (rabbit_policies) accept. `queue-mode` is still accepted there and ignored: every
# classic queue is CQv2, which keeps messages on disk as lazy mode did on 3.10.
REFUSED_QUEUE_ARGUMENTS = {"x-queue-mode", "x-queue-version", "x-queue-master-locator"}
POLICY_KEYS_4_3 = {
    "alternate-exchange",
    "dead-letter-exchange",
    "dead-letter-routing-key",
    "expires",
    "max-length",
    "max-length-bytes",
    "message-ttl",
    "overflow",
    "queue-mode",
}


def _conf_settings(path: Path) -> dict[str, str]:
    """A rabbitmq.conf-style file's settings (comments and blank lines left out)."""
    settings = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not a setting: {line!r}"
            settings[key.strip()] = value.strip()
    return settings


def _snapshot(client: httpx.Client, vhost: str) -> dict[str, Any]:
    """The vhost's topology as comparable data (no vhost names, no broker-made objects)."""
    v = quote(vhost, safe="")
    queues = client.get(f"/api/queues/{v}").raise_for_status().json()
    exchanges = client.get(f"/api/exchanges/{v}").raise_for_status().json()
    bindings = client.get(f"/api/bindings/{v}").raise_for_status().json()
    policies = client.get(f"/api/policies/{v}").raise_for_status().json()
    return {
        "queues": sorted(
            (q["name"], q["durable"], q["auto_delete"], json.dumps(q["arguments"], sort_keys=True))
            for q in queues
        ),
        "queue_policies": sorted((q["name"], q.get("policy") or "") for q in queues),
        "exchanges": sorted(
            (e["name"], e["type"], e["durable"], e["auto_delete"], e["internal"])
            for e in exchanges
            if e["name"] and not e["name"].startswith("amq.")
        ),
        "bindings": sorted(
            (b["source"], b["destination"], b["destination_type"], b["routing_key"])
            for b in bindings
            if b["source"]
        ),
        "policies": sorted(
            (p["name"], p["pattern"], p["apply-to"], p["priority"], json.dumps(p["definition"]))
            for p in policies
        ),
    }


def _settled_snapshot(client: httpx.Client, vhost: str) -> dict[str, Any]:
    """The snapshot once the management stats show a policy on every dead-letter queue.

    Queue stats (where the applied policy shows) are emitted every few seconds.
    """
    deadline = time.monotonic() + 30
    while True:
        snapshot = _snapshot(client, vhost)
        applied = dict(snapshot["queue_policies"])
        if all(applied.get(q.dead_letter_queue) for q in topology.QUEUES):
            return snapshot
        if time.monotonic() > deadline:
            raise AssertionError(f"policies never showed on {vhost}'s queues: {applied}")
        time.sleep(0.5)


@pytest.fixture
def management() -> Iterator[httpx.Client]:
    with httpx.Client(base_url=MANAGEMENT, auth=GUEST, timeout=30) as client:
        yield client


@pytest.fixture
def throwaway_vhosts(management: httpx.Client) -> Iterator[tuple[str, str]]:
    suffix = f"{environment.NAMESPACE or 'main'}-{uuid.uuid4().hex[:8]}"
    declared, imported = f"offload-drift-code-{suffix}", f"offload-drift-defs-{suffix}"
    try:
        yield declared, imported
    finally:
        for vhost in (declared, imported):
            management.delete(f"/api/vhosts/{quote(vhost, safe='')}")


@pytest.mark.integration
def test_code_declares_exactly_what_definitions_json_holds(
    management: httpx.Client, throwaway_vhosts: tuple[str, str]
) -> None:
    declared, imported = throwaway_vhosts
    # One vhost as the code declares it (AMQP, plus policies through the management API) ...
    environment.create_vhost(declared)
    topology.declare(f"amqp://guest:guest@127.0.0.1:5672/{quote(declared, safe='')}")
    topology.apply_policies("http://guest:guest@127.0.0.1:15672", declared)
    # ... and one imported from the committed definitions file, moved to its own vhost.
    moved = json.loads(
        json.dumps(DEFINITIONS).replace('"vhost": "offload"', f'"vhost": "{imported}"')
    )
    moved["vhosts"] = [{"name": imported}]
    management.post("/api/definitions", json=moved).raise_for_status()

    from_code = _settled_snapshot(management, declared)
    from_file = _settled_snapshot(management, imported)
    assert from_code == from_file
    # And the snapshot is not vacuous: every service queue, its DLQ and the DLQ policy are there.
    names = {name for name, *_ in from_file["queues"]}
    assert names == {q.name for q in topology.QUEUES} | {
        q.dead_letter_queue for q in topology.QUEUES
    }
    policy_of = dict(from_file["queue_policies"])
    for spec in topology.QUEUES:
        assert policy_of[spec.dead_letter_queue] == "offload-dead-letters"
        assert policy_of[spec.name] == ""


def _render(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DEPLOY / "render-definitions.sh")],
        env={
            "PATH": os.environ["PATH"],
            "OFFLOAD_DEFINITIONS_SOURCE": str(DEPLOY / "definitions.json"),
            "OFFLOAD_DEFINITIONS_DIR": str(tmp_path / "definitions"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_render_refuses_to_start_without_credentials(tmp_path: Path) -> None:
    done = _render(tmp_path, RABBITMQ_USER="app")
    assert done.returncode != 0
    assert "RABBITMQ_PASSWORD must be set" in done.stderr
    assert not (tmp_path / "definitions").exists()


def test_render_escapes_credentials_into_valid_json(tmp_path: Path) -> None:
    password = 'p@ss "quoted" back\\slash $HOME `x`'
    done = _render(tmp_path, RABBITMQ_USER="app", RABBITMQ_PASSWORD=password)
    assert done.returncode == 0, done.stderr
    users = json.loads((tmp_path / "definitions/20-users.json").read_text())
    assert users["users"][0]["name"] == "app"
    assert users["users"][0]["password"] == password
    assert users["permissions"][0]["vhost"] == topology.DEPLOY_VHOST
    topology_file = json.loads((tmp_path / "definitions/10-topology.json").read_text())
    assert topology_file == DEFINITIONS
    # Only the owner may read a file holding a password.
    assert (tmp_path / "definitions/20-users.json").stat().st_mode & 0o077 == 0


@pytest.mark.integration
def test_a_broker_boots_from_the_deploy_files_like_compose() -> None:
    # The local 3.10: rabbitmq.conf, enabled_plugins and the definitions, as compose mounts them;
    # deprecated-features.conf is left out (see the module docstring).
    user, password = "offload-app", 'n0t "guest" \\ pass'
    with deployed_node(user, password) as node:
        # Only the application user exists: importing definitions at boot creates no guest.
        with node.management(user, password) as client:
            users = {u["name"] for u in client.get("/api/users").raise_for_status().json()}
            assert users == {user}
            _settled_snapshot(client, topology.DEPLOY_VHOST)  # stats show applied policies
            queues = {
                q["name"]: q for q in client.get("/api/queues/offload").raise_for_status().json()
            }
            assert client.get("/").status_code == 200  # the management UI
        for spec in topology.QUEUES:
            assert queues[spec.name]["arguments"] == spec.arguments()
            dlq = queues[spec.dead_letter_queue]
            assert dlq["policy"] == "offload-dead-letters"
            # Lazy on 3.10; 4.3 accepts the key and ignores it (CQv2 keeps messages on disk).
            assert dlq["effective_policy_definition"] == {"queue-mode": "lazy"}

        # The application user can publish through the task exchange and its bindings route.
        parameters = pika.ConnectionParameters(
            host="127.0.0.1",
            port=node.amqp_port,
            virtual_host=topology.DEPLOY_VHOST,
            credentials=pika.PlainCredentials(user, password),
        )
        connection = pika.BlockingConnection(parameters)
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_publish(
                topology.TASK_EXCHANGE,
                "pdfgen",
                b"{}",
                pika.BasicProperties(priority=5, delivery_mode=2),
                mandatory=True,
            )
            method, _, body = channel.basic_get("pdfgen", auto_ack=False)
            assert method is not None and body == b"{}"
            # Rejected without requeue, it dead-letters into pdfgen.dlq.
            channel.basic_reject(method.delivery_tag, requeue=False)
            dead = None
            for _ in range(50):
                dead, _, _ = channel.basic_get("pdfgen.dlq", auto_ack=True)
                if dead is not None:
                    break
                connection.sleep(0.1)
            assert dead is not None
        finally:
            connection.close()

        # The Prometheus plugin serves per-queue series for the dashboards and alerts.
        detailed = httpx.get(
            f"http://127.0.0.1:{node.prometheus_port}/metrics/detailed",
            params={"vhost": "offload", "family": "queue_coarse_metrics"},
            timeout=10,
        ).text
        for spec in topology.QUEUES:
            assert (
                f'rabbitmq_detailed_queue_messages_ready{{vhost="offload",queue="{spec.name}"}}'
                in detailed
            )


# --- the deployed series (RabbitMQ 4.3), checked without its image -----------------------------


def test_compose_deploys_a_supported_series_named_alike_everywhere() -> None:
    image = raw_compose()["services"]["rabbitmq"]["image"]
    match = re.fullmatch(r"rabbitmq:(\d+)\.(\d+)-management", image)
    assert match, f"compose runs {image}, not the official management image of a series"
    assert tuple(map(int, match.groups())) >= SUPPORTED_FROM
    series = f"{match[1]}.{match[2]}"
    # Kubernetes expects the same broker, and the operator's guide names it.
    kustomization = (K8S / "kustomization.yaml").read_text()
    assert f"RabbitMQ {series} " in kustomization and image in kustomization
    operations = (REPO / "docs/operations.md").read_text()
    assert f"| RabbitMQ {series} | `{image}` |" in operations


def test_keys_3_10_refuses_are_kept_out_of_rabbitmq_conf() -> None:
    conf = _conf_settings(DEPLOY / "rabbitmq.conf")
    assert not [key for key in conf if key.startswith("deprecated_features.")]
    permits = _conf_settings(DEPRECATED_FEATURES)
    assert permits == {"deprecated_features.permit.transient_nonexcl_queues": "true"}
    # Compose loads it after rabbitmq.conf, into the same conf.d directory.
    volumes = raw_compose()["services"]["rabbitmq"]["volumes"]
    targets = {
        str(volume).split(":")[0]: str(volume).split(":")[1]
        for volume in volumes
        if str(volume).startswith("./deploy/rabbitmq/")
    }
    assert targets["./deploy/rabbitmq/rabbitmq.conf"] == "/etc/rabbitmq/conf.d/20-offload.conf"
    assert (
        targets["./deploy/rabbitmq/deprecated-features.conf"]
        == "/etc/rabbitmq/conf.d/30-offload-deprecated-features.conf"
    )


def test_celery_still_declares_the_transient_queues_the_permit_is_for() -> None:
    """RabbitMQ 4.3 refuses non-durable, non-exclusive queues by default. Celery declares its
    remote-control (pidbox) and event queues that way unless told otherwise; when this fails,
    the pools no longer do, and the permit can go once Flower does not either."""
    conf = create_celery("pdfgen", ServiceSettings()).conf
    assert conf.worker_enable_remote_control
    assert not conf.control_queue_durable and not conf.control_queue_exclusive
    assert not conf.event_queue_durable and not conf.event_queue_exclusive


def test_definitions_use_nothing_rabbitmq_4_3_refuses() -> None:
    for queue in DEFINITIONS["queues"]:
        # Definitions cannot declare exclusive queues: a transient one would be refused.
        assert queue["durable"] is True, queue["name"]
        assert not REFUSED_QUEUE_ARGUMENTS & set(queue["arguments"]), queue["name"]
        assert queue["arguments"].get("x-queue-type", "classic") == "classic", queue["name"]
    for policy in DEFINITIONS["policies"]:
        assert set(policy["definition"]) <= POLICY_KEYS_4_3, policy["name"]
    # The code declares the same arguments (the drift test above compares the rest).
    for spec in topology.QUEUES:
        assert not REFUSED_QUEUE_ARGUMENTS & set(spec.arguments()), spec.name
