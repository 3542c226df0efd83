"""The FCM client: message building, response mapping, and sending to the real sandbox."""

import json
import warnings
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import google.auth
import httpx
import pytest
from firebase_admin import messaging
from google.auth.exceptions import RefreshError

from services.common.contracts.push import payload_size
from services.pusher.config import PusherSettings
from services.pusher.errors import AccessTokenError, CredentialsError, InvalidMessage
from services.pusher.fcm import (
    MAX_PAYLOAD_BYTES,
    AccessTokens,
    FcmClient,
    Push,
    SendResult,
    build_message,
    encode_message,
    parse_response,
    parse_retry_after,
)
from services.pusher.metrics import MESSAGES
from tests.integration.test_fcm_access_token import TokenEndpoint
from tests.support.fcm_sandbox import FcmSandbox
from tests.support.processes import free_port
from tests.support.service_account import service_account_file


def push(token: str = "tok-1", **changes: Any) -> Push:
    values: dict[str, Any] = {
        "token": token,
        "title": "Sale",
        "body": "Everything must go",
        "data": {"campaign_id": "c1"},
        "priority": "high",
    }
    values.update(changes)
    return Push(**values)


# --- building messages -------------------------------------------------------------------


def test_high_priority_maps_to_android_high_and_apns_10() -> None:
    assert build_message(push()) == {
        "token": "tok-1",
        "notification": {"title": "Sale", "body": "Everything must go"},
        "data": {"campaign_id": "c1"},
        "android": {"priority": "high"},
        "apns": {"headers": {"apns-priority": "10"}},
    }


def test_normal_priority_maps_to_android_normal_and_apns_5() -> None:
    message = build_message(push(priority="normal"))
    assert message["android"] == {"priority": "normal"}
    assert message["apns"] == {"headers": {"apns-priority": "5"}}


def test_data_values_must_be_strings() -> None:
    with pytest.raises(InvalidMessage, match="non-string values"):
        build_message(push(data={"campaign_id": "c1", "count": 3}))


def test_payload_size_counts_keys_and_values_of_what_reaches_the_device() -> None:
    message = {
        "token": "not payload",
        "notification": {"title": "Hé", "body": "b"},
        "data": {"k": "vv"},
        "android": {"priority": "high", "notification": {"tag": "t1"}},
        "apns": {"headers": {"apns-collapse-id": "not payload"}},
    }
    assert payload_size(message) == len("title") + 3 + len("body") + 1 + 3 + len("tag") + 2


def test_payload_limit_is_4096_bytes_of_the_built_message() -> None:
    base = payload_size(build_message(push(data={"campaign_id": "c1", "x": ""})))
    fits = push(data={"campaign_id": "c1", "x": "v" * (MAX_PAYLOAD_BYTES - base)})
    build_message(fits)
    too_big = push(data={"campaign_id": "c1", "x": "v" * (MAX_PAYLOAD_BYTES - base + 1)})
    with pytest.raises(InvalidMessage, match="4096"):
        build_message(too_big)


def test_payload_limit_counts_the_android_tag() -> None:
    # title+body+data alone are exactly 4096 bytes; the collapse id adds "tag" + 36.
    alone = len("titleSalebodyEverything must gocampaign_idc1x")
    data = {"campaign_id": "c1", "x": "v" * (MAX_PAYLOAD_BYTES - alone)}
    build_message(push(data=data))
    with pytest.raises(InvalidMessage, match="4135 bytes"):
        build_message(push(data=data, collapse_id="0" * 36))


@pytest.mark.parametrize(
    "key", ["from", "message_type", "notification", "google.c.a.e", "gcm.n.e", "gcmx", ""]
)
def test_data_keys_reserved_by_fcm_are_refused(key: str) -> None:
    with pytest.raises(InvalidMessage, match=f"reserved by FCM: '{key}'"):
        build_message(push(data={"campaign_id": "c1", key: "x"}))


def test_token_and_topic_are_exclusive() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        both = messaging.Message(token="t", topic="news")
        neither = messaging.Message(data={"a": "b"})
    for message in (both, neither):
        with pytest.raises(InvalidMessage, match="Exactly one of"):
            encode_message(message)


def test_encode_message_is_firebase_admins_encoding() -> None:
    # Guards the private helper: topics lose their /topics/ prefix, None fields disappear.
    encoded = encode_message(messaging.Message(topic="/topics/news", data={"a": "b"}))
    assert encoded == {"topic": "news", "data": {"a": "b"}}


def test_empty_token_is_refused() -> None:
    with pytest.raises(InvalidMessage):
        build_message(push(token=""))


# --- mapping FCM answers -----------------------------------------------------------------


def fcm_error(status: int, canonical: str, code: str | None, message: str = "x") -> bytes:
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}]
    error = {"code": status, "message": message, "status": canonical}
    if code is not None:
        error["details"] = details
    return json.dumps({"error": error}).encode()


def test_success_keeps_the_message_name() -> None:
    result = parse_response("t", 200, b'{"name": "projects/p/messages/1"}', None)
    assert result == SendResult("t", True, "projects/p/messages/1", None, False, False, None)


def test_invalid_argument_deactivates_only_for_a_bad_token() -> None:
    bad_token = fcm_error(
        400,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
    )
    assert parse_response("t", 400, bad_token, None).deactivate
    too_big = fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Message is too big")
    result = parse_response("t", 400, too_big, None)
    assert (result.error_code, result.deactivate, result.retryable) == (
        "INVALID_ARGUMENT",
        False,
        False,
    )


def test_errors_without_an_fcm_code_fall_back_to_status() -> None:
    expired = parse_response("t", 401, fcm_error(401, "UNAUTHENTICATED", None), None)
    assert (expired.error_code, expired.retryable) == ("UNAUTHENTICATED", True)
    gateway = parse_response("t", 502, b"<html>bad gateway</html>", "2")
    assert (gateway.error_code, gateway.retryable, gateway.retry_after_s) == ("HTTP_502", True, 2)
    exhausted = parse_response("t", 429, fcm_error(429, "RESOURCE_EXHAUSTED", None), None)
    assert (exhausted.error_code, exhausted.retryable) == ("RESOURCE_EXHAUSTED", True)


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    assert 55 <= (parse_retry_after(later) or 0) <= 60
    earlier = format_datetime(datetime.now(UTC) - timedelta(seconds=60), usegmt=True)
    assert parse_retry_after(earlier) == 0.0


# --- access tokens -----------------------------------------------------------------------


def token_info(token: str, lifetime_s: float) -> SimpleNamespace:
    expiry = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=lifetime_s)
    return SimpleNamespace(access_token=token, expiry=expiry)


async def test_sandbox_gets_a_fixed_bearer_token() -> None:
    assert await AccessTokens(PusherSettings()).get() == "offload-sandbox"


async def test_access_tokens_are_cached_and_refreshed_before_expiry() -> None:
    issued = iter([token_info("one", 3600), token_info("two", 200), token_info("three", 3600)])
    calls: list[int] = []

    def fetch() -> SimpleNamespace:
        calls.append(1)
        return next(issued)

    tokens = AccessTokens(PusherSettings(), fetch=fetch)
    assert [await tokens.get(), await tokens.get()] == ["one", "one"]
    tokens.invalidate()  # as after a 401
    assert await tokens.get() == "two"  # expires within the margin: not cached
    assert await tokens.get() == "three"
    assert len(calls) == 3


async def test_access_token_failure_is_a_retryable_error() -> None:
    def fetch() -> SimpleNamespace:
        raise RefreshError("no network")

    with pytest.raises(AccessTokenError) as caught:
        await AccessTokens(PusherSettings(), fetch=fetch).get()
    assert caught.value.retryable


def test_service_account_file_names_the_project(tmp_path: Path) -> None:
    path = service_account_file(tmp_path / "sa.json", project_id="acme-prod")
    settings = PusherSettings(GOOGLE_APPLICATION_CREDENTIALS=str(path))
    assert AccessTokens(settings).project == "acme-prod"
    assert settings.fcm_base_url() == "https://fcm.googleapis.com"
    explicit = PusherSettings(GOOGLE_APPLICATION_CREDENTIALS=str(path), fcm_project="other")
    assert AccessTokens(explicit).project == "other"


# --- against the sandbox -----------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[FcmSandbox]:
    with FcmSandbox() as server:
        yield server


@pytest.fixture
def fresh(sandbox: FcmSandbox) -> FcmSandbox:
    sandbox.reset()
    return sandbox


async def send(sandbox: FcmSandbox, pushes: list[Push], **settings: Any) -> list[SendResult]:
    async with FcmClient(sandbox.settings(**settings)) as client:
        return await client.send(pushes)


async def test_sends_every_push_in_order(fresh: FcmSandbox) -> None:
    pushes = [push(f"tok-{i}") for i in range(120)]
    results = await send(fresh, pushes, push_http_concurrency=8)
    assert [r.token for r in results] == [p.token for p in pushes]
    assert all(r.ok and r.message_id and r.error_code is None for r in results)
    assert len({r.message_id for r in results}) == 120
    stats = fresh.stats()
    assert stats["accepted"] == 120 and stats["duplicates"]["messages"] == 0
    last = fresh.received("tok-7")["last_message"]
    assert last == build_message(push("tok-7"))


OUTCOMES = {
    # code: (retryable, deactivate)
    "UNREGISTERED": (False, True),
    "INVALID_ARGUMENT": (False, True),
    "QUOTA_EXCEEDED": (True, False),
    "UNAVAILABLE": (True, False),
    "INTERNAL": (True, False),
    "SENDER_ID_MISMATCH": (False, False),
    "THIRD_PARTY_AUTH_ERROR": (False, False),
}


async def test_each_fcm_error_maps_to_its_outcome(fresh: FcmSandbox) -> None:
    for code in OUTCOMES:
        fresh.add_rule(tokens=[f"bad-{code}"], error=code)
    pushes = [push("ok-1"), *(push(f"bad-{code}") for code in OUTCOMES), push("ok-2")]
    results = await send(fresh, pushes)
    assert [r.token for r in results] == [p.token for p in pushes]
    assert results[0].ok and results[-1].ok
    for result, code in zip(results[1:-1], OUTCOMES, strict=True):
        assert not result.ok and result.message_id is None
        assert result.error_code == code
        assert (result.retryable, result.deactivate) == OUTCOMES[code], code
    by_code = {r.error_code: r for r in results}
    assert by_code["QUOTA_EXCEEDED"].retry_after_s == 1.0  # the sandbox's default
    assert by_code["UNAVAILABLE"].retry_after_s is None


async def test_retry_after_is_parsed_and_times_lets_the_retry_through(fresh: FcmSandbox) -> None:
    fresh.add_rule(prefix="busy-", error="QUOTA_EXCEEDED", times=1, retry_after_s=7)
    pushes = [push("busy-1"), push("calm"), push("busy-2")]
    first = await send(fresh, pushes)
    assert [(r.ok, r.retry_after_s) for r in first] == [(False, 7.0), (True, None), (False, 7.0)]
    retry = [p for p, r in zip(pushes, first, strict=True) if r.retryable]
    second = await send(fresh, retry)
    assert all(r.ok for r in second)
    assert fresh.stats()["duplicates"]["messages"] == 0


async def test_concurrency_cap_is_honoured(fresh: FcmSandbox) -> None:
    fresh.add_rule(latency_s=0.05)
    results = await send(fresh, [push(f"t{i}") for i in range(40)], push_http_concurrency=4)
    assert all(r.ok for r in results)
    assert fresh.stats()["max_in_flight"] == 4


async def test_slow_answers_time_out_as_retryable(fresh: FcmSandbox) -> None:
    fresh.add_rule(tokens=["slow"], latency_s=2)
    results = await send(fresh, [push("slow"), push("quick")], push_timeout_s=0.3)
    slow, quick = results
    assert (slow.ok, slow.error_code, slow.retryable, slow.deactivate) == (
        False,
        "TIMEOUT",
        True,
        False,
    )
    assert quick.ok


async def test_refused_connection_is_retryable() -> None:
    settings = PusherSettings(fcm_url=f"http://127.0.0.1:{free_port()}", push_timeout_s=2)
    async with FcmClient(settings) as client:
        results = await client.send([push("a"), push("b")])
    assert [(r.error_code, r.retryable) for r in results] == [("CONNECTION", True)] * 2


async def test_one_invalid_push_does_not_sink_the_batch(fresh: FcmSandbox) -> None:
    results = await send(fresh, [push("a"), push(""), push("c")])
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].error_code == "INVALID_MESSAGE" and not results[1].retryable


async def test_a_client_reuses_connections_across_batches(fresh: FcmSandbox) -> None:
    async with FcmClient(fresh.settings(push_http_concurrency=2)) as client:
        for batch in range(3):
            results = await client.send([push(f"b{batch}-{i}") for i in range(10)])
            assert all(r.ok for r in results)
    assert fresh.stats()["accepted"] == 30


async def test_outcomes_are_counted(fresh: FcmSandbox) -> None:
    fresh.add_rule(tokens=["gone"], error="UNREGISTERED")
    fresh.add_rule(tokens=["later"], error="UNAVAILABLE")
    sent = MESSAGES.labels(outcome="sent", code="")
    failed = MESSAGES.labels(outcome="failed", code="UNREGISTERED")
    retried = MESSAGES.labels(outcome="retried", code="UNAVAILABLE")
    before = [sent._value.get(), failed._value.get(), retried._value.get()]
    await send(fresh, [push("a"), push("gone"), push("later"), push("b")])
    after = [sent._value.get(), failed._value.get(), retried._value.get()]
    assert [b - a for a, b in zip(before, after, strict=True)] == [2, 1, 1]


async def test_client_and_sandbox_agree_on_the_payload_limit(fresh: FcmSandbox) -> None:
    """Right at 4096 bytes (multi-byte text, the Android tag included) both accept; one byte
    more and both refuse."""
    shaped = push("big", title="Été", data={"campaign_id": "c1", "x": ""}, collapse_id="c" * 36)
    room = MAX_PAYLOAD_BYTES - payload_size(build_message(shaped))
    largest = replace(shaped, data={"campaign_id": "c1", "x": "é" * (room // 2) + "v" * (room % 2)})
    assert payload_size(build_message(largest)) == MAX_PAYLOAD_BYTES
    assert [r.ok for r in await send(fresh, [largest])] == [True]
    over = replace(largest, data={**largest.data, "x": largest.data["x"] + "v"})
    with pytest.raises(InvalidMessage):
        build_message(over)
    message = build_message(largest)
    message["data"]["x"] += "v"
    async with httpx.AsyncClient(base_url=fresh.base_url) as raw:
        response = await raw.post(
            "/v1/projects/p/messages:send",
            json={"message": message},
            headers={"Authorization": "Bearer t"},
        )
    assert response.status_code == 400 and "too big" in response.text


@pytest.mark.parametrize("key", ["", "from", "gcm.n.e", "google.c.a.e"])
async def test_client_and_sandbox_agree_on_reserved_data_keys(fresh: FcmSandbox, key: str) -> None:
    with pytest.raises(InvalidMessage, match="reserved by FCM"):
        build_message(push(data={"campaign_id": "c1", key: "x"}))
    message = {**build_message(push()), "data": {"campaign_id": "c1", key: "x"}}
    async with httpx.AsyncClient(base_url=fresh.base_url) as raw:
        response = await raw.post(
            "/v1/projects/p/messages:send",
            json={"message": message},
            headers={"Authorization": "Bearer t"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == f"Invalid data payload key: {key}"


# --- application-default credentials (issue 12, item 10) ---------------------------------


@pytest.fixture
def adc_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """google.auth.default, called through, with the arguments of each call."""
    calls: list[dict[str, Any]] = []
    real = google.auth.default

    def spy(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(google.auth, "default", spy)
    return calls


async def test_application_default_credentials_give_the_token_and_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, adc_calls: list[dict[str, Any]]
) -> None:
    with TokenEndpoint(failures=0) as endpoint:
        key_file = service_account_file(
            tmp_path / "sa.json", project_id="acme-adc", token_uri=endpoint.url
        )
        # ADC finds a key file through this variable, as on a machine without a metadata server.
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
        settings = PusherSettings(fcm_credentials="adc")
        tokens = AccessTokens(settings)
        assert tokens.project == "acme-adc"
        assert [await tokens.get(), await tokens.get()] == ["ya29.t", "ya29.t"]
    assert endpoint.requests == 1  # cached for the token's lifetime
    assert adc_calls == [{"scopes": ("https://www.googleapis.com/auth/firebase.messaging",)}]
    assert settings.fcm_base_url() == "https://fcm.googleapis.com"
    explicit = PusherSettings(fcm_credentials="adc", fcm_project="other")
    assert AccessTokens(explicit).project == "other"


def test_application_default_credentials_not_found_is_a_credentials_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(CredentialsError, match="application-default credentials"):
        AccessTokens(PusherSettings(fcm_credentials="adc"))
