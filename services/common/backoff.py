"""Retry delays: exponential backoff with jitter, for tasks and for the pusher's batches."""

import random


def backoff_delay(retries: int, base_s: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with equal jitter: base*2^n, half fixed and half random."""
    ceiling = base_s * 2.0**retries
    jitter: float = (rng or random).uniform(0, ceiling / 2)
    return ceiling / 2 + jitter
