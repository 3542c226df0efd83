"""Background rounds every gateway process runs (the janitor, the outbox relay)."""

import asyncio
import contextlib
import random


class Periodic:
    """Calls `run_once` every `interval_s` (±10%, so processes spread apart) until closed."""

    name = "offload-periodic"

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        """One round; how many things it handled. Errors it can live with it logs itself."""
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s * random.uniform(0.9, 1.1))
            await self.run_once()
