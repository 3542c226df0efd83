"""The global rate limit against the real Redis, from several processes at once."""

import multiprocessing
import time
import uuid

import pytest
import redis

from services.pusher.ratelimit import RateLimiter
from tests.support import environment

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("server_sources")]


def _hammer(
    key: str, rate: float, seconds: float, chunk: int, out: "multiprocessing.Queue[list[float]]"
) -> None:
    client = redis.Redis.from_url(environment.REDIS_URL)
    limiter = RateLimiter(client, key, rate)
    stamps: list[float] = []
    deadline = time.time() + seconds
    while time.time() < deadline:
        limiter.acquire(chunk)
        stamps.extend([time.time()] * chunk)
    out.put(stamps)


def test_the_limit_holds_across_processes() -> None:
    key, rate, seconds = f"test:bucket:{uuid.uuid4()}", 2000.0, 3.0
    out: multiprocessing.Queue[list[float]] = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(target=_hammer, args=(key, rate, seconds, 50, out))
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    stamps = sorted(s for _ in workers for s in out.get(timeout=30))
    for worker in workers:
        worker.join(10)
    # Measure in the steady window, after the initial burst.
    start, end = stamps[0] + 0.5, stamps[-1]
    window = [s for s in stamps if start <= s <= end]
    measured = len(window) / (end - start)
    assert measured == pytest.approx(rate, rel=0.10), (
        f"{measured:.0f}/s against a limit of {rate}/s"
    )


def test_waits_grow_with_the_backlog() -> None:
    limiter = RateLimiter(
        redis.Redis.from_url(environment.REDIS_URL), f"t:{uuid.uuid4()}", 100.0, burst=10
    )
    assert limiter.reserve(10) == 0
    first, second = limiter.reserve(50), limiter.reserve(50)
    assert 0.45 <= first <= 0.55
    assert 0.95 <= second <= 1.05
