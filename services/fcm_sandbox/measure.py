"""Measure FCM transports against a running sandbox: `python -m services.fcm_sandbox.measure`.

Each transport sends the same 500-push batches (one campaign payload, distinct tokens) and the
result is printed as JSON: msg/s and client CPU per message. firebase-admin is pointed at the
sandbox by overriding its private send URL and giving it a fixed token: good enough to time it,
never done in the service.
"""

import argparse
import asyncio
import json
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import firebase_admin
import httpx
import requests
from firebase_admin import credentials, messaging
from google.oauth2.credentials import Credentials

from services.pusher.config import PusherSettings
from services.pusher.fcm import SEND_PATH, FcmClient, Push, build_message

BATCH = 500


class _FixedToken(credentials.Base):  # type: ignore[misc]
    def get_credential(self) -> Credentials:
        return Credentials(token="offload-sandbox")  # type: ignore[no-untyped-call]


def _pushes(run: str, batch: int) -> list[Push]:
    return [
        Push(f"measure-{run}-{batch}-{i}", "Hello", "A campaign body", {"campaign_id": run}, "high")
        for i in range(BATCH)
    ]


def _messages(pushes: list[Push]) -> list[messaging.Message]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return [
            messaging.Message(
                token=p.token,
                notification=messaging.Notification(title=p.title, body=p.body),
                data=dict(p.data),
                android=messaging.AndroidConfig(priority=p.priority),
                apns=messaging.APNSConfig(headers={"apns-priority": "10"}),
            )
            for p in pushes
        ]


def _firebase_app(settings: PusherSettings) -> Any:
    app = firebase_admin.initialize_app(
        _FixedToken(), {"projectId": settings.fcm_project}, name=f"measure-{time.time_ns()}"
    )
    service = messaging._get_messaging_service(app)
    service._fcm_url = settings.fcm_base_url() + SEND_PATH.format(project=settings.fcm_project)
    adapter = requests.adapters.HTTPAdapter(pool_connections=100, pool_maxsize=100)
    service._client.session.mount(settings.fcm_base_url(), adapter)
    return app


def _timed(name: str, batches: int, run: Callable[[int], int]) -> dict[str, Any]:
    cpu, wall = time.process_time(), time.perf_counter()
    ok = sum(run(batch) for batch in range(batches))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    sent = batches * BATCH
    return {
        "transport": name,
        "messages": sent,
        "ok": ok,
        "msg_per_s": round(sent / wall),
        "client_cpu_us_per_msg": round(cpu / sent * 1e6, 1),
    }


def measure(transport: str, settings: PusherSettings, batches: int) -> dict[str, Any]:
    """Send `batches` batches of 500 with one transport; its rate and CPU cost."""
    run = f"{transport}-{time.time_ns()}"
    if transport == "send_each":
        app = _firebase_app(settings)

        def send_each(batch: int) -> int:
            response = messaging.send_each(_messages(_pushes(run, batch)), app=app)
            return int(response.success_count)

        return _timed(transport, batches, send_each)
    if transport == "send_each_async":
        app = _firebase_app(settings)
        loop = asyncio.new_event_loop()

        def send_each_async(batch: int) -> int:
            messages = _messages(_pushes(run, batch))
            response = loop.run_until_complete(messaging.send_each_async(messages, app=app))
            return int(response.success_count)

        return _timed(transport, batches, send_each_async)
    if transport == "httpx":
        return _in_loop(transport, batches, lambda: _httpx_sender(settings, run))
    if transport == "fcm_client":
        return _in_loop(transport, batches, lambda: _client_sender(settings, run))
    raise ValueError(f"unknown transport {transport!r}")


Sender = Callable[[int], Coroutine[Any, Any, int]]


def _in_loop(name: str, batches: int, make: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    import uvloop

    async def main() -> dict[str, Any]:
        sender, close = await make()
        loop = asyncio.get_running_loop()
        try:
            await sender(-1)  # warm the connections
            return await loop.run_in_executor(
                None, lambda: _timed(name, batches, _bridge(loop, sender))
            )
        finally:
            await close()

    return uvloop.run(main())


def _bridge(loop: asyncio.AbstractEventLoop, sender: Sender) -> Callable[[int], int]:
    return lambda batch: asyncio.run_coroutine_threadsafe(sender(batch), loop).result()


async def _client_sender(settings: PusherSettings, run: str) -> tuple[Sender, Any]:
    client = await FcmClient(settings).__aenter__()

    async def send(batch: int) -> int:
        return sum(r.ok for r in await client.send(_pushes(run, batch)))

    return send, client.__aexit__


async def _httpx_sender(settings: PusherSettings, run: str) -> tuple[Sender, Any]:
    concurrency = settings.push_http_concurrency
    http = httpx.AsyncClient(
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        timeout=settings.push_timeout_s,
    )
    url = settings.fcm_base_url() + SEND_PATH.format(project=settings.fcm_project)
    headers = {"Authorization": "Bearer offload-sandbox"}

    async def send(batch: int) -> int:
        pushes = iter(_pushes(run, batch))
        ok = 0

        async def worker() -> None:
            nonlocal ok
            for push in pushes:
                body = {"message": build_message(push)}
                response = await http.post(url, json=body, headers=headers)
                ok += response.status_code == 200

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ok

    async def close(*_: object) -> None:
        await http.aclose()

    return send, close


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.fcm_sandbox.measure")
    parser.add_argument(
        "transports",
        nargs="*",
        default=["send_each", "send_each_async", "httpx", "fcm_client"],
    )
    parser.add_argument("--batches", type=int, default=10)
    args = parser.parse_args()
    settings = PusherSettings()
    for transport in args.transports:
        print(json.dumps(measure(transport, settings, args.batches)), flush=True)


if __name__ == "__main__":
    main()
