"""Where the test suite's real servers are, isolated from a developer's `make run`.

Tests use their own database, Redis database and RabbitMQ vhost, so a running development
stack neither sees nor consumes test jobs. OFFLOAD_TEST_NAMESPACE=name gives a run its own
vhost, database and Redis database, so two suites can run side by side; the
OFFLOAD_TEST_*_URL variables override each URL outright. Where one is not set and its local
server does not answer, the session starts a container for it if Docker answers (containers.py).
"""

import os
import subprocess
import zlib

NAMESPACE = os.environ.get("OFFLOAD_TEST_NAMESPACE", "")
_SUFFIX = f"-{NAMESPACE}" if NAMESPACE else ""
AMQP_VHOST = f"offload-test{_SUFFIX}"
# Databases 1-12 for namespaces (0 is development, 13 benchmarks, 15 the default test run).
_REDIS_DB = 1 + zlib.crc32(NAMESPACE.encode()) % 12 if NAMESPACE else 15
# The local servers (`make services`); a container stands in where none answers (containers.py).
LOCAL_AMQP_URL = f"amqp://guest:guest@127.0.0.1:5672/{AMQP_VHOST}"
LOCAL_REDIS_URL = f"redis://127.0.0.1:6379/{_REDIS_DB}"
LOCAL_DATABASE_URL = f"postgresql://postgres@127.0.0.1:5432/offload_test{_SUFFIX.replace('-', '_')}"
AMQP_URL = os.environ.get("OFFLOAD_TEST_AMQP_URL", LOCAL_AMQP_URL)
REDIS_URL = os.environ.get("OFFLOAD_TEST_REDIS_URL", LOCAL_REDIS_URL)
DATABASE_URL = os.environ.get("OFFLOAD_TEST_DATABASE_URL", LOCAL_DATABASE_URL)
API_KEY = "test-key"


def service_env(**extra: str) -> dict[str, str]:
    """The environment for a gateway or worker process started by a test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")}
    env.update(
        {
            "OFFLOAD_ENVIRONMENT": "test",
            "OFFLOAD_AMQP_URL": AMQP_URL,
            "OFFLOAD_REDIS_URL": REDIS_URL,
            "OFFLOAD_DATABASE_URL": DATABASE_URL,
            "OFFLOAD_API_KEYS": API_KEY,
            "OFFLOAD_LOG_JSON": "true",
            "OFFLOAD_CRAWL_ALLOW_PRIVATE": "true",
            "OFFLOAD_RETRY_BACKOFF_S": "0.2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def ensure_vhost() -> None:
    """Create the test vhost on the local RabbitMQ if it is missing (needs rabbitmqctl); a URL
    given outright, or a container's (created with the vhost), is left as it is."""
    if AMQP_URL != LOCAL_AMQP_URL:
        return
    create_vhost(AMQP_VHOST)


def create_vhost(vhost: str) -> None:
    """Add `vhost` for guest on the local RabbitMQ unless it exists (needs rabbitmqctl)."""
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True, check=True, timeout=60
    )
    if vhost in listed.stdout.split():
        return
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, timeout=60)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        timeout=60,
    )
