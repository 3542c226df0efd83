import random

from services.common.backoff import backoff_delay


def test_backoff_grows_and_is_jittered_within_bounds() -> None:
    rng = random.Random(1)
    for retries in range(5):
        ceiling = 10 * 2**retries
        delays = [backoff_delay(retries, 10, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len({round(d, 6) for d in delays}) > 100  # jittered, not fixed
    assert backoff_delay(0, 10, rng) < backoff_delay(3, 10, rng)
