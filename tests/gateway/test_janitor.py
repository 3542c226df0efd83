"""Expired idempotency keys are deleted: by the repository, by the sweep, by a running gateway."""

import asyncio
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from services.gateway.janitor import Janitor
from services.gateway.jobs.idempotency import IdempotencyKeys
from tests.support import environment
from tests.support.processes import free_port, start_gateway, wait_until

pytestmark = pytest.mark.integration

DAY_S = 24 * 3600


def add_keys(conn: psycopg.Connection[tuple[object, ...]], count: int, age_s: int) -> list[str]:
    """`count` jobs with an idempotency key each, created `age_s` seconds ago; the keys."""
    keys = []
    for _ in range(count):
        job_id, key = uuid.uuid4(), f"key-{uuid.uuid4().hex}"
        conn.execute(
            "INSERT INTO jobs (id, kind, status, payload) VALUES (%s, 'analysis', 'queued', '{}')",
            (job_id,),
        )
        conn.execute(
            "INSERT INTO idempotency_keys (scope, key, request_hash, job_id, created_at) "
            "VALUES ('scope', %s, 'hash', %s, now() - make_interval(secs => %s))",
            (key, job_id, age_s),
        )
        keys.append(key)
    return keys


def stored_keys() -> set[str]:
    with psycopg.connect(environment.DATABASE_URL) as conn:
        return {row[0] for row in conn.execute("SELECT key FROM idempotency_keys")}


def job_count() -> int:
    with psycopg.connect(environment.DATABASE_URL) as conn:
        row = conn.execute("SELECT count(*) FROM jobs").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def keys(clean: None) -> Iterator[tuple[list[str], list[str]]]:
    """25 keys two days old and 5 from a minute ago."""
    with psycopg.connect(environment.DATABASE_URL, autocommit=True) as conn:
        old = add_keys(conn, 25, 2 * DAY_S)
        fresh = add_keys(conn, 5, 60)
    yield old, fresh


async def test_purge_deletes_only_expired_keys_in_batches(
    keys: tuple[list[str], list[str]],
) -> None:
    old, fresh = keys
    async with AsyncConnectionPool(environment.DATABASE_URL, kwargs={"autocommit": True}) as pool:
        repo = IdempotencyKeys(pool)
        assert await repo.purge_expired(DAY_S, batch=10) == len(old)
        assert await repo.purge_expired(DAY_S, batch=10) == 0
    assert stored_keys() == set(fresh)
    assert job_count() == len(old) + len(fresh)  # the jobs themselves stay


async def test_concurrent_purges_share_the_work(keys: tuple[list[str], list[str]]) -> None:
    old, fresh = keys
    async with AsyncConnectionPool(
        environment.DATABASE_URL, min_size=4, kwargs={"autocommit": True}
    ) as pool:
        repos = [IdempotencyKeys(pool) for _ in range(4)]
        counts = await asyncio.gather(*(r.purge_expired(DAY_S, batch=3) for r in repos))
    assert sum(counts) == len(old)  # each expired key deleted once, none waited for
    assert stored_keys() == set(fresh)


async def test_a_sweep_without_the_database_logs_and_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/offload"
    async with AsyncConnectionPool(unreachable, open=False, timeout=0.5) as pool:
        await pool.open(wait=False)
        janitor = Janitor(IdempotencyKeys(pool), ttl_s=DAY_S, interval_s=60)
        with caplog.at_level(logging.WARNING, logger="services.gateway.janitor"):
            assert await janitor.sweep() == 0
    assert "expired idempotency keys not purged" in caplog.text


def test_a_running_gateway_purges_expired_keys(
    keys: tuple[list[str], list[str]], log_dir: Path
) -> None:
    old, fresh = keys
    gateway, _ = start_gateway(log_dir, OFFLOAD_IDEMPOTENCY_PURGE_INTERVAL_S="0.2")
    try:
        wait_until(lambda: stored_keys() == set(fresh), 15, "the gateway to purge expired keys")
        # The line is logged just after the delete commits: wait for it too, not only the rows.
        line = f"purged {len(old)} expired idempotency keys"
        wait_until(lambda: line in gateway.log(), 5, "the purge to be logged")
    finally:
        gateway.stop()
