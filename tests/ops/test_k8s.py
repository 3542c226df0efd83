"""deploy/k8s: valid against Kubernetes' own schemas (kubernetes_validate, offline) and KEDA's,
locked down, and running exactly what docker-compose.yml runs: same images, commands,
settings, health checks and grace periods, with a KEDA ScaledObject per worker pool."""

import copy
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import ValidationError

from services.common import topology
from tests.support.deployment import (
    K8S,
    POOLS,
    REPO,
    ROLES,
    command,
    deployed,
    duration_s,
    environment,
    k8s_documents,
    load_settings,
    resolved_compose,
)
from tests.support.keda import SCHEMAS

K8S_VERSION = "1.33.0"
DOCUMENTS = k8s_documents()
MANIFESTS = sorted(path.name for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml")
# Deliberate differences from compose: Kubernetes scales the gateway by pods, not processes, and
# clients reach S3 at the cluster's public address, not the Docker host's loopback.
DIFFERENT_VALUES = {
    ("gateway", "OFFLOAD_GATEWAY_WORKERS"),
    ("gateway", "OFFLOAD_S3_PUBLIC_ENDPOINT_URL"),
    ("pdfgen", "OFFLOAD_S3_PUBLIC_ENDPOINT_URL"),
}
UID = 10001


def _objects(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in DOCUMENTS if doc.get("kind") == kind}


def _workloads() -> dict[str, dict[str, Any]]:
    """Deployments and Jobs by name (each named as its compose service)."""
    return {**_objects("Deployment"), **_objects("Job")}


def _pod(workload: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = workload["spec"]["template"]["spec"]
    return pod


def _container(name: str) -> dict[str, Any]:
    containers = _pod(_workloads()[name])["containers"]
    assert len(containers) == 1, f"{name}: one process per pod"
    container: dict[str, Any] = containers[0]
    return container


def _k8s_environment(container: dict[str, Any]) -> tuple[dict[str, str], set[str]]:
    """The container's environment with the example Secret's values, and the names set from a
    key reference. An optional key the Secret lacks is absent, as in the cluster."""
    config_maps = {name: doc["data"] for name, doc in _objects("ConfigMap").items()}
    secrets = {name: doc["stringData"] for name, doc in _objects("Secret").items()}
    env: dict[str, str] = {}
    referenced: set[str] = set()
    for source in container.get("envFrom", []):
        env.update(config_maps[source["configMapRef"]["name"]])
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        ref = entry["valueFrom"].get("secretKeyRef") or entry["valueFrom"]["configMapKeyRef"]
        values = secrets if "secretKeyRef" in entry["valueFrom"] else config_maps
        if ref["key"] in values[ref["name"]]:
            env[entry["name"]] = values[ref["name"]][ref["key"]]
        else:
            assert ref.get("optional"), f"{entry['name']}: {ref['name']} has no {ref['key']}"
        referenced.add(entry["name"])
    return env, referenced


def _argv(container: dict[str, Any]) -> list[str]:
    return [*container["command"], *container.get("args", [])]


@pytest.mark.parametrize("manifest", MANIFESTS)
def test_manifest_is_valid_kubernetes(manifest: str) -> None:
    documents = [doc for path, doc in DOCUMENTS if path.name == manifest]
    assert documents
    for doc in documents:
        assert "namespace" not in doc["metadata"], "kustomization.yaml sets the namespace"
        if doc["apiVersion"].startswith("keda.sh/"):
            jsonschema.validate(doc, SCHEMAS[doc["kind"]])
        else:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_validators_reject_a_misspelt_field() -> None:
    deployment = copy.deepcopy(_workloads()["gateway"])
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    scaled = copy.deepcopy(_objects("ScaledObject")["pdfgen"])
    scaled["spec"]["minReplicas"] = scaled["spec"].pop("minReplicaCount")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, SCHEMAS["ScaledObject"])
    scaled = copy.deepcopy(_objects("ScaledObject")["pdfgen"])
    scaled["spec"]["triggers"][0]["metadata"]["excludeUnacked"] = "false"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, SCHEMAS["ScaledObject"])


def test_kustomization_lists_every_manifest_and_image() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == _objects("Namespace").popitem()[0]
    assert sorted(kustomization["resources"]) == MANIFESTS
    used = {_container(name)["image"] for name in _workloads()}
    listed = {f"{image['name']}:{image['newTag']}" for image in kustomization["images"]}
    assert listed == used


def test_workloads_run_what_compose_runs() -> None:
    services = resolved_compose()["services"]
    assert set(_workloads()) == set(ROLES)
    for name in ROLES:
        service, container = services[name], _container(name)
        assert container["image"] == service["image"], name
        assert _argv(container) == command(service), name
        grace = _pod(_workloads()[name])["terminationGracePeriodSeconds"]
        assert grace == duration_s(service["stop_grace_period"]), name

        # The same variables (optional ones included), and the same values but for secrets.
        k8s_env, referenced = _k8s_environment(container)
        assert set(k8s_env) | referenced == set(service.get("environment") or {}), name
        for key, value in k8s_env.items():
            if key not in referenced and (name, key) not in DIFFERENT_VALUES:
                assert value == environment(service)[key], f"{name}: {key}"


def test_settings_accept_the_kubernetes_environment() -> None:
    for name, role in ROLES.items():
        env, _ = _k8s_environment(_container(name))
        load_settings(role.settings, deployed(env))


def test_production_refuses_the_example_secret_as_it_stands() -> None:
    env, _ = _k8s_environment(_container("gateway"))
    with pytest.raises(ValidationError, match="placeholder"):
        load_settings(ROLES["gateway"].settings, env)


def test_pods_run_as_uid_10001_on_a_read_only_root() -> None:
    for name, workload in _workloads().items():
        pod = _pod(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == UID, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        container = _container(name)
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        for path in ("/tmp", "/run/offload/metrics"):
            assert "emptyDir" in mounts[path], f"{name}: {path} is not writable"
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}, name
    assert _container("pdfgen")["resources"]["limits"]["memory"] == "512Mi"


def test_a_process_starts_with_its_metrics_directory_as_a_mount_point(tmp_path: Path) -> None:
    """Pods mount an emptyDir at /run/offload/metrics (the root filesystem is read-only): the
    launcher must empty that directory, since it cannot remove a mount point."""
    metrics = shlex.quote(str(tmp_path / "metrics"))
    launch = (
        "from services.common.config import ServiceSettings as S;"
        "from services.common.launch import prepare_metrics_dir as p;"
        "p(S(), 'analyzer')"
    )
    (tmp_path / "metrics").mkdir()
    # A private mount namespace: the tmpfs disappears with the shell.
    script = (
        f"mount -t tmpfs -o size=1m tmpfs {metrics} && touch {metrics}/stale.db"
        f" && {shlex.quote(sys.executable)} -c {shlex.quote(launch)}"
        f" && mountpoint -q {metrics} && test ! -e {metrics}/stale.db"
    )
    done = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script],
        cwd=REPO,
        env={"PATH": os.environ["PATH"], "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_probes_run_the_compose_health_checks() -> None:
    services = resolved_compose()["services"]
    for name in ROLES:
        if name == "migrate":
            continue
        container = _container(name)
        probes = [container[p] for p in ("startupProbe", "livenessProbe") if p in container]
        assert "livenessProbe" in container, name
        for probe in probes:
            if "exec" in probe:
                assert probe["exec"]["command"] == services[name]["healthcheck"]["test"][1:]
    gateway = _container("gateway")
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for name in (*POOLS, "beat"):
        assert "exec" in _container(name)["livenessProbe"], name


def test_singletons_and_scaled_pools() -> None:
    deployments = _objects("Deployment")
    beat = deployments["beat"]["spec"]
    assert (beat["replicas"], beat["strategy"]["type"]) == (1, "Recreate")
    assert deployments["exporter"]["spec"]["replicas"] == 1
    for name in POOLS:
        # A replicas field would reset KEDA's count on every apply.
        assert "replicas" not in deployments[name]["spec"], name


def _consumed_queue(name: str) -> str:
    argv = _argv(_container(name))
    if "--queues" in argv:
        return argv[argv.index("--queues") + 1]
    (queue,) = topology.queues_for(name)
    return queue.name


def test_each_pool_scales_on_its_own_queue_through_the_management_api() -> None:
    scaled = _objects("ScaledObject")
    authentications = _objects("TriggerAuthentication")
    secrets = {name: doc["stringData"] for name, doc in _objects("Secret").items()}
    assert {doc["spec"]["scaleTargetRef"]["name"] for doc in scaled.values()} == set(POOLS)
    for name, doc in scaled.items():
        spec = doc["spec"]
        target = spec["scaleTargetRef"]["name"]
        assert target in _objects("Deployment"), name
        expected_min = 0 if target == "pdfgen" else 1
        assert spec["minReplicaCount"] == expected_min, name
        assert spec["maxReplicaCount"] > max(spec["minReplicaCount"], 1), name
        assert spec["cooldownPeriod"] > 0, name
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "rabbitmq"
        metadata = trigger["metadata"]
        assert metadata["protocol"] == "http", name
        assert metadata["mode"] == "QueueLength", name
        # Messages being worked on (unacknowledged) count: no scale-in under running tasks.
        assert metadata["excludeUnacknowledged"] == "false", name
        assert metadata["queueName"] == _consumed_queue(target), name
        assert metadata["queueName"] in {q.name for q in topology.QUEUES}, name
        assert metadata["vhostName"] == topology.DEPLOY_VHOST, name
        assert int(metadata["value"]) >= 1, name
        authentication = authentications[trigger["authenticationRef"]["name"]]
        (ref,) = authentication["spec"]["secretTargetRef"]
        assert ref["parameter"] == "host"
        # The trailing slash: KEDA appends the vhost to a management URL without one.
        assert secrets[ref["name"]][ref["key"]].startswith("http://")
        assert secrets[ref["name"]][ref["key"]].endswith(":15672/")


def test_the_secret_example_is_only_placeholders() -> None:
    (secret,) = _objects("Secret").values()
    assert secret["metadata"]["name"] == "offload-secrets"
    for key, value in secret["stringData"].items():
        assert "CHANGE-ME" in value, f"{key} holds a real-looking value"
    text = (K8S / "secret.example.yaml").read_text()
    assert text.startswith("# EXAMPLE ONLY")


def test_only_the_gateway_and_sandbox_have_services() -> None:
    services = _objects("Service")
    assert set(services) == {"gateway", "fcm-sandbox"}
    for name, service in services.items():
        (port,) = service["spec"]["ports"]
        named = {p["name"]: p for p in _container(name)["ports"]}
        assert named[port["targetPort"]]["containerPort"] == port["port"], name
    # The pushers reach the sandbox through its Service.
    for name in ("pusher-bulk", "pusher-urgent"):
        env, _ = _k8s_environment(_container(name))
        assert env["OFFLOAD_SANDBOX_HOST"] == "fcm-sandbox", name
