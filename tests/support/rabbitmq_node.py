"""A throwaway RabbitMQ node on loopback, configured like the compose stack's broker.

It runs beside the machine's shared broker under its own node name, ports and data directory,
is booted with deploy/rabbitmq's configuration and definitions, and is stopped (by node name,
which only ever addresses this node) when the test ends.
"""

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.processes import free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy/rabbitmq"


@dataclass(frozen=True)
class Node:
    name: str
    amqp_port: int
    management_port: int
    prometheus_port: int
    definitions_dir: Path

    def management(self, user: str, password: str) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.management_port}", auth=(user, password), timeout=10
        )

    def ctl(self, *args: str) -> str:
        done = subprocess.run(
            ["rabbitmqctl", "-q", "-n", self.name, *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout


@contextmanager
def deployed_node(user: str, password: str) -> Iterator[Node]:
    """Boot a node the way docker-compose.yml boots `rabbitmq`: render-definitions.sh, then the
    server with deploy/rabbitmq/rabbitmq.conf and enabled_plugins (ports moved to free loopback
    ones, which is all the test overrides)."""
    # rabbitmq-server drops root for the `rabbitmq` user, which must read and write here.
    workdir = Path(tempfile.mkdtemp(prefix="offload-rabbitmq-"))
    plugins = workdir / "enabled_plugins"
    shutil.copy(DEPLOY / "enabled_plugins", plugins)
    name = f"offload-ops-{os.getpid()}@localhost"
    amqp, dist, management, prometheus = (free_port() for _ in range(4))
    definitions_dir = workdir / "definitions"
    overrides = {
        "load_definitions": str(definitions_dir),
        "listeners.tcp.default": f"127.0.0.1:{amqp}",
        "management.tcp.port": str(management),
        "management.tcp.ip": "127.0.0.1",
        "prometheus.tcp.port": str(prometheus),
        "prometheus.tcp.ip": "127.0.0.1",
        # The shared machine's free disk is not this test's subject.
        "disk_free_limit.absolute": "50MB",
    }
    # RabbitMQ rejects a key set twice, so the deploy file's lines for these keys are replaced.
    kept = [
        line
        for line in (DEPLOY / "rabbitmq.conf").read_text().splitlines()
        if line.partition("=")[0].strip() not in overrides
    ]
    config = workdir / "rabbitmq.conf"
    config.write_text("\n".join([*kept, *(f"{k} = {v}" for k, v in overrides.items()), ""]))
    if os.geteuid() == 0:
        for path in (workdir, plugins, config):
            shutil.chown(path, "rabbitmq", "rabbitmq")
    env = {
        **os.environ,
        "RABBITMQ_USER": user,
        "RABBITMQ_PASSWORD": password,
        "OFFLOAD_DEFINITIONS_SOURCE": str(DEPLOY / "definitions.json"),
        "OFFLOAD_DEFINITIONS_DIR": str(definitions_dir),
        "RABBITMQ_NODENAME": name,
        "RABBITMQ_NODE_PORT": str(amqp),
        "RABBITMQ_DIST_PORT": str(dist),
        "RABBITMQ_CONFIG_FILE": str(config),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
        "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
        "RABBITMQ_LOG_BASE": str(workdir / "log"),
    }
    # The compose entry point: render the definitions, then exec the server.
    subprocess.run(
        [str(DEPLOY / "render-definitions.sh"), "rabbitmq-server", "-detached"],
        env=env,
        check=True,
        timeout=60,
    )
    node = Node(name, amqp, management, prometheus, definitions_dir)
    try:
        _wait_until_serving(node, user, password, deadline=time.monotonic() + 90)
        yield node
    finally:
        subprocess.run(
            ["rabbitmqctl", "-q", "-n", name, "stop"], capture_output=True, timeout=60, check=False
        )
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_until_serving(node: Node, user: str, password: str, deadline: float) -> None:
    last = ""
    while time.monotonic() < deadline:
        try:
            with node.management(user, password) as client:
                response = client.get("/api/overview")
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as error:
            last = repr(error)
        time.sleep(0.5)
    raise TimeoutError(f"throwaway RabbitMQ node {node.name} did not serve in time: {last}")
