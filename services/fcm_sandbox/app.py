"""The sandbox as a bare ASGI callable: the send path does no more work than FCM's contract needs.

Starlette's request and response objects cost more per request than the whole send path, so
routing, body reading and responses are done by hand here.
"""

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from services.fcm_sandbox.fcm_errors import UNAUTHENTICATED, fcm_error_body, invalid_argument
from services.fcm_sandbox.recorder import Recorder
from services.fcm_sandbox.rules import Rule, RuleError, parse_rule
from services.fcm_sandbox.validation import validate

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = (b"content-type", b"application/json; charset=UTF-8")
_SEND_PREFIX = "/v1/projects/"
_SEND_SUFFIX = "/messages:send"


class Sandbox:
    """State shared by every request: the recorder and the injection rules."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self.rules: list[Rule] = []
        self._rule_ids = itertools.count(1)
        self._message_ids = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan and websockets: nothing to do
        path: str = scope["path"]
        method: str = scope["method"]
        if method == "POST" and path.startswith(_SEND_PREFIX) and path.endswith(_SEND_SUFFIX):
            project = path[len(_SEND_PREFIX) : -len(_SEND_SUFFIX)]
            await self._send_message(project, scope, receive, send)
        elif path.startswith("/sandbox/"):
            await self._admin(method, path, scope, receive, send)
        else:
            await _respond(send, 404, _not_found(path))

    async def _send_message(self, project: str, scope: Scope, receive: Receive, send: Send) -> None:
        recorder = self.recorder
        recorder.requests += 1
        recorder.in_flight += 1
        if recorder.in_flight > recorder.max_in_flight:
            recorder.max_in_flight = recorder.in_flight
        try:
            status, body, headers = await self._handle_send(project, scope, receive)
        finally:
            recorder.in_flight -= 1
        await _respond(send, status, body, headers)

    async def _handle_send(
        self, project: str, scope: Scope, receive: Receive
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        recorder = self.recorder
        raw = await _read_body(receive)
        if not _has_bearer(scope):
            recorder.rejected["UNAUTHENTICATED"] += 1
            return 401, UNAUTHENTICATED, []
        if not project or "/" in project:
            recorder.rejected["NOT_FOUND"] += 1
            return 404, _not_found(scope["path"]), []
        try:
            request = json.loads(raw)
        except ValueError:
            recorder.rejected["INVALID_ARGUMENT"] += 1
            return (*invalid_argument("Invalid JSON payload received."), [])
        message, rejection = validate(request)
        if rejection is not None:
            recorder.rejected["INVALID_ARGUMENT"] += 1
            return (*rejection, [])
        # Registration token, or (firebase-admin 7.7+) Firebase installation id.
        token = message.get("token") or message.get("fid")
        if self.rules and isinstance(token, str):
            latency, failing = self._apply_rules(token)
            if latency:
                await asyncio.sleep(latency)
            if failing is not None and failing.error is not None:
                recorder.rejected[failing.error] += 1
                status, body = fcm_error_body(failing.error)
                retry_after = failing.retry_after()
                headers = []
                if retry_after is not None:
                    headers.append((b"retry-after", _seconds(retry_after)))
                return status, body, headers
        if request.get("validate_only") is True:
            recorder.validated += 1
            name = f"projects/{project}/messages/fake_message_id"
        else:
            data = message.get("data")
            campaign_id = data.get("campaign_id") if data else None
            recorder.accept(campaign_id, token or message.get("topic") or "", raw)
            name = f"projects/{project}/messages/{next(self._message_ids)}"
        return 200, b'{"name": "' + name.encode() + b'"}', []

    def _apply_rules(self, token: str) -> tuple[float, Rule | None]:
        """The latency to add and the rule that fails this request, if any."""
        latency = 0.0
        failing: Rule | None = None
        for rule in self.rules:
            if not rule.matches(token):
                continue
            latency = max(latency, rule.latency_s)
            if failing is None and rule.take_failure(token):
                failing = rule
        return latency, failing

    async def _admin(
        self, method: str, path: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        raw = await _read_body(receive)
        route = (method, path.rstrip("/"))
        if route == ("GET", "/sandbox/stats"):
            stats = self.recorder.stats()
            stats["rules"] = len(self.rules)
            await _respond_json(send, 200, stats)
        elif route == ("GET", "/sandbox/received"):
            query = parse_qs(scope.get("query_string", b"").decode())
            tokens = query.get("token")
            if not tokens:
                await _respond_json(send, 400, {"detail": "token is required"})
                return
            await _respond_json(send, 200, self.recorder.received(tokens[0]))
        elif route == ("POST", "/sandbox/reset"):
            self.recorder.reset()
            self.rules.clear()
            await _respond_json(send, 200, {"reset": True})
        elif route == ("GET", "/sandbox/rules"):
            await _respond_json(send, 200, [rule.describe() for rule in self.rules])
        elif route == ("POST", "/sandbox/rules"):
            try:
                rule = parse_rule(next(self._rule_ids), json.loads(raw or b"null"))
            except (ValueError, RuleError) as exc:
                await _respond_json(send, 400, {"detail": str(exc)})
                return
            self.rules.append(rule)
            await _respond_json(send, 201, rule.describe())
        elif route == ("DELETE", "/sandbox/rules"):
            self.rules.clear()
            await _respond_json(send, 200, {"rules": 0})
        else:
            await _respond_json(send, 404, {"detail": f"no route {method} {path}"})


def create_app() -> Sandbox:
    """A fresh sandbox (its state lives as long as the process)."""
    return Sandbox()


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    chunks = [body]
    while message.get("more_body", False):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


def _has_bearer(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credential = value.partition(b" ")
            return scheme.lower() == b"bearer" and bool(credential.strip())
    return False


def _seconds(value: float) -> bytes:
    return str(int(value) if value == int(value) else value).encode()


def _not_found(path: str) -> bytes:
    return json.dumps(
        {"error": {"code": 404, "message": f"Not found: {path}", "status": "NOT_FOUND"}}
    ).encode()


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    all_headers = [_JSON, (b"content-length", str(len(body)).encode())]
    if headers:
        all_headers.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def _respond_json(send: Send, status: int, payload: Any) -> None:
    await _respond(send, status, json.dumps(payload).encode())
