"""The job row is the outbox (issue 12, item 2): a 202 always runs, whatever the insert costs,
and a job whose request died before its publish is published by the relay."""

import asyncio
import uuid
from collections.abc import Iterator

import pika
import psycopg
import pytest
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from services.common.contracts.analysis import ANALYZE_BLOG
from services.common.topology import pika_parameters
from services.gateway.jobs.outbox import OutboxRelay
from services.gateway.messaging.publisher import Publisher
from tests.conftest import api, purge_queues
from tests.integration.conftest import (
    ANALYZER,
    Gateway,
    WorkerFactory,
    job_row,
    submit,
    wait_for_job,
)
from tests.support import environment
from tests.support.blogserver import BlogServer

pytestmark = pytest.mark.integration

SLOW_INSERT_S = 7  # longer than a worker waits for a row it does not find (5 s)


@pytest.fixture
def slow_job_inserts(clean: None) -> Iterator[None]:
    """Every insert into jobs takes SLOW_INSERT_S inside Postgres while the test runs."""
    with psycopg.connect(environment.DATABASE_URL, autocommit=True) as conn:
        conn.execute(
            "CREATE OR REPLACE FUNCTION offload_test_slow_insert() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep({SLOW_INSERT_S}); RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER offload_test_slow_insert BEFORE INSERT ON jobs "
            "FOR EACH ROW EXECUTE FUNCTION offload_test_slow_insert()"
        )
        try:
            yield
        finally:
            conn.execute("DROP TRIGGER offload_test_slow_insert ON jobs")
            conn.execute("DROP FUNCTION offload_test_slow_insert()")


def test_a_202_whose_insert_was_slow_still_runs(
    gateway: Gateway, workers: WorkerFactory, blogs: BlogServer, slow_job_inserts: None
) -> None:
    workers(concurrency=1)
    with api(gateway.base_url) as client:
        client.timeout = SLOW_INSERT_S + 20
        job_id = submit(client, blogs.url("atom"))
        job = wait_for_job(client, job_id, timeout=60)
    assert job["status"] == "succeeded", job
    assert job_row(job_id)["attempts"] == 1


def ready_messages(queue: str) -> list[dict[str, object]]:
    """The messages waiting in `queue` (taken off it)."""
    connection = pika.BlockingConnection(pika_parameters(environment.AMQP_URL))
    try:
        channel = connection.channel()
        bodies = []
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return bodies
            bodies.append({"id": properties.headers["id"], "body": body})
    finally:
        connection.close()


def record(conn: psycopg.Connection[tuple[object, ...]], *, age_s: int, task: str | None) -> str:
    """A queued job recorded `age_s` ago whose message was never published."""
    job_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO jobs (id, kind, status, payload, priority, request_id, task, queue, "
        "created_at) VALUES (%s, 'analysis', 'queued', %s, 5, 'req-outbox', %s, %s, "
        "now() - make_interval(secs => %s))",
        (job_id, Jsonb({"blog_url": "http://127.0.0.1:1/x"}), task, ANALYZER.name, age_s),
    )
    return job_id


async def relay_round() -> int:
    publisher = Publisher(environment.AMQP_URL, channels=1, timeout_s=5, retry_after_s=1)
    await publisher.start()
    try:
        for _ in range(100):
            if publisher.ready:
                break
            await asyncio.sleep(0.05)
        async with AsyncConnectionPool(
            environment.DATABASE_URL, kwargs={"autocommit": True}
        ) as pool:
            relay = OutboxRelay(pool, publisher, grace_s=10, interval_s=60)
            return await relay.run_once()
    finally:
        await publisher.close()


def test_the_relay_publishes_what_was_recorded_but_never_published(clean: None) -> None:
    purge_queues()
    with psycopg.connect(environment.DATABASE_URL, autocommit=True) as conn:
        left_behind = record(conn, age_s=60, task=ANALYZE_BLOG.name)
        in_flight = record(conn, age_s=0, task=ANALYZE_BLOG.name)  # its request may publish yet
        published_elsewhere = record(conn, age_s=60, task=None)  # e.g. beat's scheduled start
        assert asyncio.run(relay_round()) == 1
        marked = conn.execute(
            "SELECT id::text, published_at IS NOT NULL FROM jobs WHERE id = ANY(%s::uuid[])",
            ([left_behind, in_flight, published_elsewhere],),
        ).fetchall()
    assert dict(marked) == {left_behind: True, in_flight: False, published_elsewhere: False}
    messages = ready_messages(ANALYZER.name)
    assert [m["id"] for m in messages] == [left_behind]
    assert left_behind.encode() in messages[0]["body"]  # type: ignore[operator]
    assert asyncio.run(relay_round()) == 0  # published once
