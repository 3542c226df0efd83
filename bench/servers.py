"""The servers the benchmarks run against, and the machine they run on.

The benchmarks use the same local RabbitMQ, Postgres and Redis as the tests, but their own
vhost, database and Redis database (`offload-bench`, `offload_bench`, 13): the test suite may
be running at the same time, and its analyzer pool must not consume benchmark jobs, nor the
benchmark purge a test's queue. Override with OFFLOAD_BENCH_AMQP_URL, OFFLOAD_BENCH_REDIS_URL
and OFFLOAD_BENCH_DATABASE_URL.
"""

import os
import platform
import re
import subprocess
import sys
from typing import Any

import pika
import psutil
import psycopg
import redis

from services.common import db, topology
from services.common.topology import pika_parameters
from tests.support import environment

AMQP_VHOST = "offload-bench"
AMQP_URL = os.environ.get(
    "OFFLOAD_BENCH_AMQP_URL", environment.AMQP_URL.rsplit("/", 1)[0] + f"/{AMQP_VHOST}"
)
REDIS_URL = os.environ.get(
    "OFFLOAD_BENCH_REDIS_URL", environment.REDIS_URL.rsplit("/", 1)[0] + "/13"
)
DATABASE_URL = os.environ.get(
    "OFFLOAD_BENCH_DATABASE_URL", environment.DATABASE_URL.rsplit("/", 1)[0] + "/offload_bench"
)


def urls() -> dict[str, str]:
    """The OFFLOAD_* variables that point a service at the bench servers."""
    return {
        "OFFLOAD_AMQP_URL": AMQP_URL,
        "OFFLOAD_REDIS_URL": REDIS_URL,
        "OFFLOAD_DATABASE_URL": DATABASE_URL,
    }


def service_env(**extra: str) -> dict[str, str]:
    """The environment of a process the benchmarks start: the tests' one, on bench servers."""
    return environment.service_env(**urls(), **extra)


def _ensure_vhost() -> None:
    if "OFFLOAD_BENCH_AMQP_URL" not in os.environ:
        environment.create_vhost(AMQP_VHOST)


def prepare() -> None:
    """Bench vhost present, topology declared, bench database migrated (as tests/conftest.py)."""
    _ensure_vhost()
    topology.declare(AMQP_URL)
    redis.Redis.from_url(REDIS_URL).ping()
    db.ensure_database(DATABASE_URL)
    db.migrate(DATABASE_URL)


def reset() -> None:
    """Empty the queues, the job tables and the Redis database the benchmarks used."""
    connection = pika.BlockingConnection(pika_parameters(AMQP_URL))
    try:
        channel = connection.channel()
        for spec in topology.QUEUES:
            channel.queue_purge(spec.name)
            channel.queue_purge(spec.dead_letter_queue)
    finally:
        connection.close()
    redis.Redis.from_url(REDIS_URL).flushdb()
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        conn.execute("TRUNCATE jobs, idempotency_keys, blog_scores CASCADE")


def queue_depth(queue: str = "analyzer") -> int:
    """Messages ready in a queue (what the broker confirmed and nobody consumed)."""
    connection = pika.BlockingConnection(pika_parameters(AMQP_URL))
    try:
        method = connection.channel().queue_declare(queue, passive=True).method
        return int(method.message_count)
    finally:
        connection.close()


def job_rows() -> int:
    """Rows in the job table."""
    with psycopg.connect(DATABASE_URL) as conn:
        row = conn.execute("SELECT count(*) FROM jobs").fetchone()
    return int(row[0]) if row else 0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _rabbitmq_version() -> str:
    try:
        out = subprocess.run(
            ["rabbitmqctl", "-q", "version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return out or "unknown"


def _postgres_version() -> str:
    with psycopg.connect(DATABASE_URL) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "unknown"


def _redis_version() -> str:
    info: dict[str, Any] = redis.Redis.from_url(REDIS_URL).info("server")
    return str(info.get("redis_version", "unknown"))


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    release = platform.release()
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {release}",
        "python": re.sub(r"\s+", " ", sys.version.split("(")[0]).strip(),
        "rabbitmq": _rabbitmq_version(),
        "postgres": _postgres_version(),
        "redis": _redis_version(),
        "load_avg_at_start": [round(x, 2) for x in psutil.getloadavg()],
    }
