"""Fixtures for tests that need the real RabbitMQ, Redis and Postgres.

A missing server fails the test (never skips it): CI must not pass by testing nothing.
"""

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pika
import psycopg
import pytest
import redis

from services.common import db, topology
from services.common.topology import pika_parameters
from tests.support import containers, environment
from tests.support.blogserver import BlogServer


@pytest.fixture(scope="session")
def server_sources() -> Iterator[dict[str, containers.Source]]:
    """Each server from its OFFLOAD_TEST_*_URL, else the local one, else a container if Docker
    answers (tests/support/containers.py); with none, the tests that need it fail."""
    missing = None
    with ExitStack() as stack:
        try:
            sources = stack.enter_context(containers.provided())
        except containers.NoServer as exc:
            missing = str(exc)
        else:
            yield sources
    if missing:
        pytest.fail(missing, pytrace=False)  # outside `except`: the message once, no chain


@pytest.fixture(scope="session")
def platform(server_sources: dict[str, containers.Source]) -> None:
    """Test database migrated, test vhost present, topology declared."""
    try:
        environment.ensure_vhost()
        topology.declare(environment.AMQP_URL)
    except Exception as exc:
        pytest.fail(f"RabbitMQ is not usable at {environment.AMQP_URL}: {exc!r}")
    try:
        redis.Redis.from_url(environment.REDIS_URL).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not usable at {environment.REDIS_URL}: {exc!r}")
    try:
        db.ensure_database(environment.DATABASE_URL)
        db.migrate(environment.DATABASE_URL)
    except psycopg.Error as exc:
        pytest.fail(f"Postgres is not usable at {environment.DATABASE_URL}: {exc!r}")


def purge_queues() -> None:
    connection = pika.BlockingConnection(pika_parameters(environment.AMQP_URL))
    try:
        channel = connection.channel()
        for spec in topology.QUEUES:
            channel.queue_purge(spec.name)
            channel.queue_purge(spec.dead_letter_queue)
    finally:
        connection.close()


@pytest.fixture
def clean(platform: None) -> None:
    """Empty queues, the test Redis database and the job tables before a test."""
    purge_queues()
    redis.Redis.from_url(environment.REDIS_URL).flushdb()
    with psycopg.connect(environment.DATABASE_URL, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE jobs, idempotency_keys, blog_scores, campaigns, devices, reports CASCADE"
        )


@pytest.fixture(scope="session")
def blogs() -> Iterator[BlogServer]:
    """The realistic test blogs, served on loopback for the whole session."""
    with BlogServer() as server:
        yield server


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path


def api(base_url: str, key: str | None = environment.API_KEY) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=base_url, headers=headers, timeout=10)
