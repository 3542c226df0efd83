"""Micro-batched inserts against the real Postgres."""

import asyncio
import uuid
from typing import Any

import pytest
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from services.gateway.jobs.batching import JobInserter
from tests.support import environment

pytestmark = pytest.mark.integration


class RecordingInserter(JobInserter):
    """Records the size of every batch it flushes."""

    batches: list[int]

    async def _flush(self, batch: list[Any]) -> None:
        self.batches.append(len(batch))
        await super()._flush(batch)


async def test_concurrent_inserts_share_statements_and_each_gets_its_row(clean: None) -> None:
    async with AsyncConnectionPool(environment.DATABASE_URL, kwargs={"autocommit": True}) as pool:
        inserter = RecordingInserter(pool, flushers=1, max_batch=50)
        inserter.batches = []
        ids = [uuid.uuid4() for _ in range(120)]
        rows = await asyncio.gather(
            *(
                inserter.insert((job_id, "analysis", Jsonb({"n": i}), 5, f"req-{i}", None, None))
                for i, job_id in enumerate(ids)
            )
        )
        await inserter.close()
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM jobs")
            stored = (await cur.fetchone() or [0])[0]
    assert [row["id"] for row in rows] == ids
    assert [row["payload"] for row in rows] == [{"n": i} for i in range(120)]
    assert all(row["status"] == "queued" for row in rows)
    assert stored == 120
    assert sum(inserter.batches) == 120
    assert max(inserter.batches) == 50  # never more than max_batch in one statement
    assert len(inserter.batches) <= 12, f"not batched: {inserter.batches}"


async def test_a_failed_batch_fails_every_waiter(clean: None) -> None:
    async with AsyncConnectionPool(environment.DATABASE_URL, kwargs={"autocommit": True}) as pool:
        inserter = JobInserter(pool, flushers=1)
        duplicate = uuid.uuid4()
        results = await asyncio.gather(
            inserter.insert((duplicate, "analysis", Jsonb({}), 5, None, None, None)),
            inserter.insert((duplicate, "analysis", Jsonb({}), 5, None, None, None)),
            return_exceptions=True,
        )
        ok = await inserter.insert((uuid.uuid4(), "analysis", Jsonb({}), 5, None, None, None))
        await inserter.close()
    failures = [r for r in results if isinstance(r, Exception)]
    assert failures, "a duplicate key must fail its batch"
    assert ok["status"] == "queued"  # the inserter keeps working after a failed batch
