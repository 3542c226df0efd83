"""Per-process async runtime: one event loop and one FCM client (with its keep-alive
connection pool) per pool process, reused by every batch that process runs."""

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

from services.pusher.config import PusherSettings
from services.pusher.fcm import FcmClient

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_client: FcmClient | None = None
_pid: int | None = None


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on this process's event loop."""
    global _loop, _pid, _client
    if _loop is None or _pid != os.getpid():
        _loop, _pid, _client = uvloop.new_event_loop(), os.getpid(), None
    return _loop.run_until_complete(coro)


async def fcm_client(settings: PusherSettings) -> FcmClient:
    """This process's FCM client, opened on first use (call from inside `run`)."""
    global _client
    if _client is None:
        client = FcmClient(settings)
        await client.__aenter__()
        _client = client
    return _client
