"""A send-rate limit shared by every worker process and machine: a token bucket in Redis.

Celery's `rate_limit` is per worker process; this bucket is one key in Redis. Each caller
reserves tokens in one round trip (the script may drive the bucket negative) and sleeps for
the wait it is told, so callers queue fairly and the aggregate rate holds at the limit.
"""

import time
from typing import cast

import redis

# KEYS[1]: bucket; ARGV: rate per second, burst, tokens requested. Returns the wait in µs.
_RESERVE = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate / 1000000) - want
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
if tokens >= 0 then return 0 end
return math.ceil(-tokens * 1000000 / rate)
"""


class RateLimiter:
    """Reserve send permits against a global rate (tokens per second)."""

    def __init__(
        self, client: "redis.Redis", key: str, rate_per_s: float, burst: float | None = None
    ) -> None:
        self._client = client
        self._key = key
        self._rate = rate_per_s
        # A small burst keeps the aggregate rate close to the limit over short windows.
        self._burst = burst if burst is not None else max(1.0, rate_per_s / 20)
        self._script = client.register_script(_RESERVE)

    def reserve(self, tokens: int) -> float:
        """Reserve `tokens` permits; the seconds to wait before using them."""
        wait_us = cast(int, self._script(keys=[self._key], args=[self._rate, self._burst, tokens]))
        return wait_us / 1_000_000

    def acquire(self, tokens: int) -> float:
        """Reserve and wait (blocking); the seconds waited."""
        wait = self.reserve(tokens)
        if wait > 0:
            time.sleep(wait)
        return wait
