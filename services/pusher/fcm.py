"""The FCM HTTP v1 client: firebase-admin builds and validates messages, a lean pool sends them.

firebase-admin's own senders (`send_each` on a thread pool, `send_each_async` on httpx) and a
plain httpx pool reach a fraction of the rate of services.pusher.transport against the same
server (docs/pusher-fcm.md has the numbers), so firebase-admin encodes and that pool sends.
"""

import asyncio
import email.utils
import json
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import google.auth
from firebase_admin import credentials, messaging
from google.auth.exceptions import GoogleAuthError
from google.auth.transport.requests import Request

from services.common.contracts.push import FCM_PAYLOAD_LIMIT, fcm_reserved, payload_size
from services.pusher.config import PusherSettings
from services.pusher.errors import AccessTokenError, CredentialsError, InvalidMessage
from services.pusher.metrics import FCM_REQUEST_DURATION, MESSAGES
from services.pusher.transport import Http1Client, TransportFailure, TransportTimeout

# https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode (INVALID_ARGUMENT): keys and
# values count, 4096 bytes for a message to tokens, 2048 for one to a topic (what counts:
# services.common.contracts.push.PAYLOAD_PARTS).
MAX_PAYLOAD_BYTES = FCM_PAYLOAD_LIMIT
MAX_TOPIC_PAYLOAD_BYTES = 2048
APNS_PRIORITY = {"high": "10", "normal": "5"}
SEND_PATH = "/v1/projects/{project}/messages:send"
# The sandbox wants a bearer token, any will do.
SANDBOX_ACCESS_TOKEN = "offload-sandbox"
# What the pusher's tokens may do: send FCM messages, nothing else.
FCM_SCOPES = ("https://www.googleapis.com/auth/firebase.messaging",)
# Refresh an OAuth2 token this long before it expires, so no batch goes out with a stale one.
TOKEN_REFRESH_MARGIN_S = 300.0
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
# Outcomes per https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode: quota and
# server errors are retried (after Retry-After when given); UNAUTHENTICATED without an FCM
# errorCode is our own expired OAuth2 token, retried with a fresh one.
RETRYABLE_CODES = frozenset({"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL", "UNAUTHENTICATED"})


@dataclass(frozen=True)
class Push:
    """One notification to one device."""

    token: str
    title: str
    body: str
    data: Mapping[str, str]  # includes "campaign_id"
    priority: Literal["high", "normal"]
    # Same id on every message of a campaign: a resent duplicate replaces the notification
    # on the device (Android notification tag, APNs collapse id) instead of showing twice.
    collapse_id: str | None = None


@dataclass(frozen=True)
class SendResult:
    """What FCM made of one push."""

    token: str
    ok: bool
    message_id: str | None
    # FCM errorCode (UNREGISTERED, QUOTA_EXCEEDED, ...) or a transport code (TIMEOUT, CONNECTION).
    error_code: str | None
    retryable: bool
    deactivate: bool
    retry_after_s: float | None


def build_message(push: Push) -> dict[str, Any]:
    """The FCM v1 JSON of one push, built and validated by firebase-admin's messaging.Message,
    then checked as FCM checks it (reserved data keys, payload size of what is sent)."""
    if push.priority not in APNS_PRIORITY:
        raise InvalidMessage(f"priority must be 'high' or 'normal', not {push.priority!r}")
    with warnings.catch_warnings():
        # 7.7 deprecates Message.token for Firebase installation ids (fid); devices here
        # register FCM registration tokens, which the v1 API still takes as `token`.
        warnings.simplefilter("ignore", DeprecationWarning)
        message = messaging.Message(
            token=push.token,
            notification=messaging.Notification(title=push.title, body=push.body),
            data=dict(push.data),
            android=messaging.AndroidConfig(
                priority=push.priority,
                collapse_key=push.collapse_id,
                notification=messaging.AndroidNotification(tag=push.collapse_id)
                if push.collapse_id
                else None,
            ),
            apns=messaging.APNSConfig(headers=_apns_headers(push)),
        )
    encoded = encode_message(message)  # data keys and values are strings from here on
    reserved = [key for key in push.data if fcm_reserved(key)]
    if reserved:
        raise InvalidMessage(f"data keys reserved by FCM: {', '.join(map(repr, reserved))}")
    size = payload_size(encoded)
    if size > MAX_PAYLOAD_BYTES:
        raise InvalidMessage(f"payload is {size} bytes, FCM allows {MAX_PAYLOAD_BYTES}")
    return encoded


def _apns_headers(push: Push) -> dict[str, str]:
    headers = {"apns-priority": APNS_PRIORITY[push.priority]}
    if push.collapse_id:
        headers["apns-collapse-id"] = push.collapse_id[:64]
    return headers


def encode_message(message: messaging.Message) -> dict[str, Any]:
    """firebase-admin's JSON encoding (and validation) of a Message.

    firebase-admin has no public encoder. `_MessagingService.encode_message` is the classmethod
    its own send paths call (unchanged from 4.x to 7.x); if it moves, the test of this function
    fails before anything is sent.
    """
    try:
        encoded: dict[str, Any] = messaging._MessagingService.encode_message(message)
    except (ValueError, TypeError) as exc:
        raise InvalidMessage(str(exc)) from exc
    return encoded


class _Bodies:
    """Request bodies of a batch: each distinct payload is built by firebase-admin once, and
    only the token is spliced in per push (a campaign's 500 pushes share one payload)."""

    def __init__(self) -> None:
        self._templates: dict[tuple[Any, ...], tuple[bytes, bytes]] = {}

    def body(self, push: Push) -> bytes:
        key = (push.title, push.body, tuple(push.data.items()), push.priority)
        template = self._templates.get(key)
        if template is None:
            # Validate with this push's own token, then cut a placeholder out of the JSON.
            message = build_message(push)
            message.pop("token")
            tail = ", " + json.dumps(message)[1:] + "}" if message else "}}"
            template = (b'{"message": {"token": ', tail.encode())
            self._templates[key] = template
        if not push.token or not isinstance(push.token, str):
            raise InvalidMessage("Message.token must be a non-empty string.")
        return template[0] + json.dumps(push.token).encode() + template[1]


class FcmClient:
    """Sends pushes to FCM (or the sandbox) over keep-alive HTTP/1.1 connections."""

    def __init__(self, settings: PusherSettings) -> None:
        self._tokens = access_tokens(settings)
        self._path = SEND_PATH.format(project=self._tokens.project)
        self._concurrency = settings.push_http_concurrency
        self._base_url = settings.fcm_base_url()
        self._timeout_s = settings.push_timeout_s
        self._http: Http1Client | None = None

    async def __aenter__(self) -> "FcmClient":
        self._http = Http1Client(self._base_url, self._concurrency, self._timeout_s)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def send(self, pushes: Sequence[Push]) -> list[SendResult]:
        """Send concurrently (at most push_http_concurrency in flight); results in input order."""
        http = self._http
        if http is None:
            raise RuntimeError("FcmClient is used outside `async with`")
        if not pushes:
            return []
        results: list[SendResult | None] = [None] * len(pushes)
        headers = {
            "Authorization": f"Bearer {await self._tokens.get()}",
            "Content-Type": "application/json; charset=UTF-8",
            # The error format firebase-admin asks for: FcmError details with an errorCode.
            "X-GOOG-API-FORMAT-VERSION": "2",
        }
        bodies = _Bodies()
        pending = iter(range(len(pushes)))

        async def worker() -> None:
            for index in pending:
                push = pushes[index]
                try:
                    body = bodies.body(push)
                except InvalidMessage:
                    results[index] = _invalid(push.token)
                    continue
                request = http.request_bytes(self._path, headers, body)
                results[index] = await self._send_one(http, push.token, request)

        await asyncio.gather(*(worker() for _ in range(min(self._concurrency, len(pushes)))))
        done = [result for result in results if result is not None]
        _count(done)
        return done

    async def _send_one(self, http: Http1Client, token: str, request: bytes) -> SendResult:
        started = time.perf_counter()
        try:
            response = await http.post(request)
        except TransportTimeout:
            return transport_failure(token, "TIMEOUT")
        except TransportFailure:
            return transport_failure(token, "CONNECTION")
        finally:
            FCM_REQUEST_DURATION.observe(time.perf_counter() - started)
        result = parse_response(token, response.status, response.body, response.retry_after)
        if result.error_code == "UNAUTHENTICATED":
            self._tokens.invalidate()
        return result


def _invalid(token: str) -> SendResult:
    return SendResult(token, False, None, "INVALID_MESSAGE", False, False, None)


def _count(results: Sequence[SendResult]) -> None:
    """One metric update per (outcome, code) of a batch, not one per push."""
    counts: Counter[tuple[str, str]] = Counter()
    for result in results:
        if result.ok:
            counts["sent", ""] += 1
        else:
            counts["retried" if result.retryable else "failed", result.error_code or ""] += 1
    for (outcome, code), number in counts.items():
        MESSAGES.labels(outcome=outcome, code=code).inc(number)


def parse_response(token: str, status: int, content: bytes, retry_after: str | None) -> SendResult:
    """The SendResult of one FCM answer (status, JSON body, Retry-After header)."""
    if status == 200:
        try:
            name = json.loads(content).get("name")
        except (ValueError, AttributeError):
            name = None
        return SendResult(token, True, name, None, False, False, None)
    error = _error_object(content)
    fcm_code = _fcm_error_code(error)
    code = fcm_code or error.get("status") or f"HTTP_{status}"
    retryable = code in RETRYABLE_CODES or (fcm_code is None and (status == 429 or status >= 500))
    deactivate = code == "UNREGISTERED" or (
        code == "INVALID_ARGUMENT" and _names_invalid_token(error)
    )
    return SendResult(
        token, False, None, code, retryable, deactivate, parse_retry_after(retry_after)
    )


def transport_failure(token: str, code: Literal["TIMEOUT", "CONNECTION"]) -> SendResult:
    """No answer from FCM: always worth retrying."""
    return SendResult(token, False, None, code, True, False, None)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_object(content: bytes) -> dict[str, Any]:
    try:
        body = json.loads(content)
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _fcm_error_code(error: dict[str, Any]) -> str | None:
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and detail.get("@type") == FCM_ERROR_TYPE:
            code = detail.get("errorCode")
            return code if isinstance(code, str) else None
    return None


def _names_invalid_token(error: dict[str, Any]) -> bool:
    """INVALID_ARGUMENT is also a bad payload; only a bad registration token deactivates."""
    if "registration token" in str(error.get("message", "")).lower():
        return True
    for detail in error.get("details") or ():
        for violation in detail.get("fieldViolations") or () if isinstance(detail, dict) else ():
            if isinstance(violation, dict) and violation.get("field") == "message.token":
                return True
    return False


class AccessTokens:
    """OAuth2 bearer tokens for FCM: fixed for the sandbox, else from a service-account key file
    or application-default credentials (settings.credentials_source), cached per process and
    refreshed TOKEN_REFRESH_MARGIN_S before they expire."""

    def __init__(self, settings: PusherSettings, fetch: Callable[[], Any] | None = None) -> None:
        self.project = settings.fcm_project
        self._fetch = fetch
        if fetch is None and settings.credentials_source != "sandbox":
            project, self._fetch = _credentials(settings)
            if "fcm_project" not in settings.model_fields_set:
                if project is None:
                    raise CredentialsError(
                        f"the FCM credentials ({settings.credentials_source}) name no project: "
                        "set OFFLOAD_FCM_PROJECT"
                    )
                self.project = project
        self._token: str | None = None
        self._refresh_at = 0.0
        # A thread lock: the fetch runs in a worker thread, and one client may serve many loops.
        self._lock = threading.Lock()

    async def get(self) -> str:
        """A token valid for at least TOKEN_REFRESH_MARGIN_S more seconds."""
        if self._fetch is None:
            return SANDBOX_ACCESS_TOKEN
        token = self._token
        if token is not None and time.monotonic() < self._refresh_at:
            return token
        return await asyncio.to_thread(self._refresh)

    def invalidate(self) -> None:
        """Forget the cached token (FCM answered UNAUTHENTICATED)."""
        self._refresh_at = 0.0

    def _refresh(self) -> str:
        with self._lock:
            if self._token is not None and time.monotonic() < self._refresh_at:
                return self._token
            assert self._fetch is not None
            try:
                info = self._fetch()
            except GoogleAuthError as exc:
                raise AccessTokenError(f"could not get an FCM access token: {exc}") from exc
            lifetime = 3600.0
            if info.expiry is not None:
                expiry = info.expiry if info.expiry.tzinfo else info.expiry.replace(tzinfo=UTC)
                lifetime = (expiry - datetime.now(UTC)).total_seconds()
            self._token = str(info.access_token)
            self._refresh_at = time.monotonic() + max(0.0, lifetime - TOKEN_REFRESH_MARGIN_S)
            return self._token


def _credentials(settings: PusherSettings) -> tuple[str | None, Callable[[], Any]]:
    """The project the credentials name and their token fetch (an AccessTokenInfo each call)."""
    if settings.credentials_source == "adc":
        try:
            adc, project = google.auth.default(scopes=FCM_SCOPES)
        except GoogleAuthError as exc:
            raise CredentialsError(f"application-default credentials: {exc}") from exc
        request = Request()

        def fetch() -> credentials.AccessTokenInfo:
            adc.refresh(request)  # type: ignore[no-untyped-call]
            return credentials.AccessTokenInfo(adc.token, adc.expiry)

        return project, fetch
    path = str(settings.google_application_credentials)
    try:
        certificate = credentials.Certificate(path)
    except (ValueError, OSError) as exc:
        raise CredentialsError(f"{path}: {exc}") from exc
    return certificate.project_id, certificate.get_access_token


_token_sources: dict[tuple[str, str | None, str], AccessTokens] = {}


def access_tokens(settings: PusherSettings) -> AccessTokens:
    """The process-wide token source of these settings (clients come and go per batch)."""
    key = (
        settings.credentials_source,
        settings.google_application_credentials,
        settings.fcm_project,
    )
    source = _token_sources.get(key)
    if source is None:
        source = _token_sources[key] = AccessTokens(settings)
    return source
