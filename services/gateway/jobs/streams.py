"""How many job event streams this gateway process keeps open, per API key and in total.

Each open stream polls Postgres through the gateway's small pool for up to ten minutes, so
streams are admitted up to `OFFLOAD_SSE_MAX_STREAMS_PER_KEY` per key and `OFFLOAD_SSE_MAX_STREAMS`
in all; past either a new stream is refused with TooManyStreams (429). The counts live in this
process: with several gateway processes, each admits up to the caps.
"""

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Gauge

from services.gateway.errors import TooManyStreams

STREAMS_OPEN = Gauge(
    "offload_sse_streams_open",
    "Job event streams open in the gateway",
    multiprocess_mode="livesum",
)


class StreamLimiter:
    """Admits a stream while its key and the process are under their caps (one event loop)."""

    def __init__(self, max_streams: int, max_per_key: int, retry_after_s: int) -> None:
        self.max_streams = max_streams
        self.max_per_key = max_per_key
        self.retry_after_s = retry_after_s
        self._per_key: Counter[str] = Counter()

    def open_streams(self) -> int:
        """Streams admitted and not yet released."""
        return self._per_key.total()

    @contextmanager
    def admit(self, key: str) -> Iterator[None]:
        """Hold a slot for `key` while the block runs, whichever way it ends; TooManyStreams
        (nothing held) when the key or the process is at its cap."""
        self._acquire(key)
        try:
            yield
        finally:
            self._release(key)

    def _acquire(self, key: str) -> None:
        # No await between the checks and the count: the event loop admits one at a time.
        headers = {"Retry-After": str(self.retry_after_s)}
        if self._per_key[key] >= self.max_per_key:
            raise TooManyStreams(
                f"this API key has {self.max_per_key} event streams open; close one or poll "
                "GET /v1/jobs/{job_id}",
                headers=headers,
            )
        if self.open_streams() >= self.max_streams:
            raise TooManyStreams(
                f"this gateway has {self.max_streams} event streams open; retry later",
                headers=headers,
            )
        self._per_key[key] += 1
        STREAMS_OPEN.inc()

    def _release(self, key: str) -> None:
        self._per_key[key] -= 1
        if self._per_key[key] <= 0:
            del self._per_key[key]  # a key's entry lives only while it has streams
        STREAMS_OPEN.dec()
