"""The one-hour score cache and the per-blog crawl lock, both in Redis.

The gateway reads the cache to answer repeats at once; workers write it and take the lock so
that two jobs for one blog never crawl it twice at the same time (the second waits and reuses).
"""

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast
from uuid import UUID

import redis

from services.common.contracts.analysis import ScoreCacheEntry, score_cache_key

_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)


def lock_key(blog_url: str) -> str:
    return f"offload:analyzer:crawl-lock:{blog_url}"


def get_fresh(client: "redis.Redis", blog_url: str) -> ScoreCacheEntry | None:
    """The cached score for a blog if it is younger than the cache TTL."""
    raw = cast(bytes | None, client.get(score_cache_key(blog_url)))
    return None if raw is None else ScoreCacheEntry.model_validate_json(raw)


def put(
    client: "redis.Redis", blog_url: str, job_id: UUID, result: dict[str, Any], ttl_s: int
) -> None:
    """Cache a finished score, naming the job that produced it."""
    entry = ScoreCacheEntry(job_id=job_id, result=result)
    client.set(score_cache_key(blog_url), entry.model_dump_json(), ex=ttl_s)


def _take(client: "redis.Redis", key: str, token: str, ttl_s: int) -> bool:
    if client.set(key, token, nx=True, ex=ttl_s):
        return True
    # Held under our own token: a redelivery of a job whose killed worker never released it.
    if client.get(key) == token.encode():
        client.expire(key, ttl_s)
        return True
    return False


@contextmanager
def crawl_lock(
    client: "redis.Redis", blog_url: str, ttl_s: int, wait_s: float, owner: str | None = None
) -> Iterator[bool]:
    """Hold the blog's crawl lock; yields False if another holder kept it for `wait_s`.

    `owner` (the job id) lets a redelivered job take over the lock its dead predecessor held.
    """
    token = owner or uuid.uuid4().hex
    key = lock_key(blog_url)
    deadline = time.monotonic() + wait_s
    acquired = _take(client, key, token, ttl_s)
    while not acquired and time.monotonic() < deadline:
        time.sleep(0.1)
        acquired = _take(client, key, token, ttl_s)
    try:
        yield acquired
    finally:
        if acquired:
            client.eval(_RELEASE, 1, key, token)
