"""Blog scores in Postgres, the system of record (the Redis cache is only a shortcut)."""

from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

UPSERT_SCORE = """
INSERT INTO blog_scores (blog_url, score, result, job_id, analyzed_at)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (blog_url) DO UPDATE
SET score = EXCLUDED.score, result = EXCLUDED.result, job_id = EXCLUDED.job_id,
    analyzed_at = EXCLUDED.analyzed_at
WHERE blog_scores.analyzed_at <= EXCLUDED.analyzed_at
"""


def save_score(pool: ConnectionPool, result: dict[str, Any], job_id: UUID) -> None:
    """Record the latest score of a blog (an older result never overwrites a newer one)."""
    with pool.connection() as conn:
        conn.execute(
            UPSERT_SCORE,
            (result["blog_url"], result["score"], Jsonb(result), job_id, result["analyzed_at"]),
        )
