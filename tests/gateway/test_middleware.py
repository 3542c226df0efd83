"""The request guard without a server: which routes it keys, its limits, one answer per request."""

from collections.abc import Awaitable, Callable

import pytest
from starlette.types import Message, Receive, Scope, Send

from services.gateway.app import create_app
from services.gateway.config import GatewaySettings
from services.gateway.errors import PayloadTooLarge
from services.gateway.limits import BODY_LIMITS, BodyLimits
from services.gateway.middleware import KEYED_PREFIX, RequestGuardMiddleware

SETTINGS = GatewaySettings(environment="test", api_keys="k", body_max_bytes=10)
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def test_the_guard_keys_exactly_the_routes_that_declare_the_api_key() -> None:
    paths = create_app(SETTINGS).openapi()["paths"]
    keyed = {
        (method.upper(), path): "security" in operation
        for path, operations in paths.items()
        for method, operation in operations.items()
    }
    assert keyed, "no routes"
    assert keyed == {route: route[1].startswith(KEYED_PREFIX) for route in keyed}


def test_each_listed_body_limit_names_a_route() -> None:
    paths = create_app(SETTINGS).openapi()["paths"]
    for method, path in BODY_LIMITS:
        assert method.lower() in paths.get(path, {}), (method, path)


def test_limits_come_from_the_settings() -> None:
    limits = BodyLimits(GatewaySettings())
    assert limits.of("POST", "/v1/analyses").max_bytes == 2**20
    assert limits.of("POST", "/v1/reports").max_bytes == 8 * 2**20
    assert limits.of("POST", "/v1/uploads").max_bytes == 2 * 2**30
    assert limits.of("POST", "/v1/devices/import").max_bytes == 2**30
    assert limits.of("GET", "/v1/reports").max_bytes == 2**20


def scope(path: str = "/v1/analyses", **headers: str) -> Scope:
    raw = [(b"authorization", b"Bearer k")] + [
        (name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()
    ]
    return {"type": "http", "method": "POST", "path": path, "headers": raw}


async def run(app: App, request: Scope, chunks: list[bytes]) -> list[Message]:
    """Drive the guard around `app` with a body of `chunks`; the messages it sends."""
    incoming = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    incoming.append({"type": "http.request", "body": b"", "more_body": False})
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await RequestGuardMiddleware(app, SETTINGS)(request, receive, send)
    return sent


async def reads_then_answers(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that reads the whole body, then answers 200 (or 400 if the read failed)."""
    status = 200
    try:
        while (await receive())["more_body"]:
            pass
    except PayloadTooLarge:
        status = 400
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_a_body_within_the_limit_reaches_the_app() -> None:
    sent = await run(reads_then_answers, scope(), [b"12345", b"67890"])
    assert [m.get("status") for m in sent] == [200, None]


async def test_past_the_limit_the_guard_answers_once_and_drops_the_apps_answer() -> None:
    sent = await run(reads_then_answers, scope(), [b"12345", b"678901"])
    assert sent[0]["status"] == 413
    assert b"payload_too_large" in sent[1]["body"]
    assert len(sent) == 2


async def test_the_413_goes_out_once_the_app_has_unwound() -> None:
    events: list[str] = []

    async def cleans_up(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            while (await receive())["more_body"]:
                pass
        except PayloadTooLarge:
            events.append("cleaned up")
            raise

    async def record(message: Message) -> None:
        events.append(f"sent {message.get('status', 'body')}")

    incoming = [{"type": "http.request", "body": b"x" * 11, "more_body": True}]
    await RequestGuardMiddleware(cleans_up, SETTINGS)(scope(), _pop(incoming), record)
    assert events == ["cleaned up", "sent 413", "sent body"]


def _pop(messages: list[Message]) -> Receive:
    async def receive() -> Message:
        return messages.pop(0)

    return receive


async def test_an_app_that_does_not_catch_the_error_ends_quietly() -> None:
    async def reads(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive())["more_body"]:
            pass

    sent = await run(reads, scope(), [b"x" * 11])
    assert sent[0]["status"] == 413


async def test_a_response_already_started_is_cut_short() -> None:
    async def answers_while_reading(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while (await receive())["more_body"]:
            await send({"type": "http.response.body", "body": b".", "more_body": True})

    with pytest.raises(PayloadTooLarge):
        await run(answers_while_reading, scope(), [b"x" * 6, b"x" * 6])


@pytest.mark.parametrize(
    ("request_scope", "status"),
    [
        (scope(content_length="11"), 413),
        ({**scope(), "headers": []}, 401),
        ({**scope(), "headers": [(b"authorization", b"Bearer other")]}, 401),
        ({**scope(), "headers": [(b"authorization", b"Basic k")]}, 401),
    ],
)
async def test_refusals_come_before_the_app_or_the_body(request_scope: Scope, status: int) -> None:
    async def never(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("the app was called")

    async def no_body() -> Message:
        raise AssertionError("the body was read")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await RequestGuardMiddleware(never, SETTINGS)(request_scope, no_body, send)
    assert sent[0]["status"] == status


async def test_operational_routes_need_no_key() -> None:
    sent = await run(reads_then_answers, {**scope("/healthz"), "headers": []}, [])
    assert sent[0]["status"] == 200
