"""The FCM sandbox as a real process: FCM's error shapes, validation, recording, rules."""

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.fcm_sandbox import FcmSandbox

FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
AUTH = {"Authorization": "Bearer test-token"}
SEND = "/v1/projects/demo/messages:send"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[FcmSandbox]:
    with FcmSandbox() as server:
        yield server


@pytest.fixture
def fcm(sandbox: FcmSandbox) -> Iterator[httpx.Client]:
    sandbox.reset()
    with httpx.Client(base_url=sandbox.base_url, headers=AUTH, timeout=10) as client:
        yield client


def message(token: str = "tok-1", campaign: str | None = "c1", **extra: Any) -> dict[str, Any]:
    data = {"campaign_id": campaign} if campaign else {}
    return {
        "token": token,
        "notification": {"title": "Hi", "body": "There"},
        "data": data,
        **extra,
    }


def send(fcm: httpx.Client, msg: dict[str, Any], **body: Any) -> httpx.Response:
    return fcm.post(SEND, json={"message": msg, **body})


def test_accepts_a_message_and_names_it(fcm: httpx.Client, sandbox: FcmSandbox) -> None:
    response = send(fcm, message())
    assert response.status_code == 200
    assert response.json()["name"].startswith("projects/demo/messages/")
    stats = sandbox.stats()
    assert (stats["requests"], stats["accepted"], stats["rejected_total"]) == (1, 1, 0)
    assert stats["campaigns"] == {"c1": {"accepted": 1, "distinct": 1, "duplicates": 0}}


def test_without_bearer_token_answers_unauthenticated(
    fcm: httpx.Client, sandbox: FcmSandbox
) -> None:
    response = httpx.post(f"{sandbox.base_url}{SEND}", json={"message": message()})
    assert response.status_code == 401
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (401, "UNAUTHENTICATED")
    assert sandbox.stats()["accepted"] == 0


def test_non_string_data_value_is_fcms_bad_request_shape(fcm: httpx.Client) -> None:
    response = send(fcm, message(data={"campaign_id": "c1", "n": 12}))
    assert response.status_code == 400
    where = "message.data[1].value"
    text = f"Invalid value at '{where}' (TYPE_STRING), 12"
    assert response.json() == {
        "error": {
            "code": 400,
            "message": text,
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [{"field": where, "description": text}],
                }
            ],
        }
    }


@pytest.mark.parametrize(
    "msg",
    [
        {"notification": {"title": "no target"}},
        {"token": "a", "topic": "news"},
        {"topic": "news", "condition": "'a' in topics"},
        {"token": "a", "unknown_field": 1},
    ],
)
def test_target_and_fields_are_validated(fcm: httpx.Client, msg: dict[str, Any]) -> None:
    response = send(fcm, msg)
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_payload_limit_is_4096_bytes_of_keys_and_values(fcm: httpx.Client) -> None:
    # "campaign_id"+"c1" = 13, "title"+"Hi" = 7, "body"+"There" = 9, "x" = 1.
    fits = message(data={"campaign_id": "c1", "x": "v" * (4096 - 30)})
    assert send(fcm, fits).status_code == 200
    too_big = message(data={"campaign_id": "c1", "x": "v" * (4096 - 29)})
    response = send(fcm, too_big)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Message is too big"


def test_topic_messages_have_a_2048_byte_limit(fcm: httpx.Client) -> None:
    response = send(fcm, {"topic": "news", "data": {"x": "v" * 2048}})
    assert response.status_code == 400


def test_validate_only_is_not_recorded(fcm: httpx.Client, sandbox: FcmSandbox) -> None:
    response = send(fcm, message(), validate_only=True)
    assert response.json() == {"name": "projects/demo/messages/fake_message_id"}
    stats = sandbox.stats()
    assert (stats["accepted"], stats["validate_only"]) == (0, 1)


def test_records_counts_last_message_and_duplicates(fcm: httpx.Client, sandbox: FcmSandbox) -> None:
    send(fcm, message("a", "c1"))
    send(fcm, message("b", "c1"))
    send(fcm, message("a", "c1", notification={"title": "Again", "body": "!"}))
    send(fcm, message("a", "c2"))  # another campaign: not a duplicate
    stats = sandbox.stats()
    assert stats["accepted"] == 4
    assert stats["distinct"] == 3
    assert stats["duplicates"] == {
        "messages": 1,
        "pairs": 1,
        "sample": [{"campaign_id": "c1", "token": "a"}],
    }
    assert stats["campaigns"]["c1"] == {"accepted": 3, "distinct": 2, "duplicates": 1}
    received = sandbox.received("a")
    assert received["count"] == 3
    assert received["by_campaign"] == {"c1": 2, "c2": 1}
    assert received["last_message"] == message("a", "c2")
    assert sandbox.received("b")["last_message"] == message("b", "c1")
    assert sandbox.received("nobody") == {
        "token": "nobody",
        "count": 0,
        "by_campaign": {},
        "last_message": None,
    }


def test_rate_counts_recent_seconds(fcm: httpx.Client, sandbox: FcmSandbox) -> None:
    for i in range(50):
        send(fcm, message(f"r{i}"))
    time.sleep(1.1)  # the rate is over complete seconds
    assert sandbox.stats()["rate_per_s"] > 0


EXPECTED = {
    "UNREGISTERED": (404, "NOT_FOUND"),
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT"),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED"),
    "QUOTA_EXCEEDED": (429, "RESOURCE_EXHAUSTED"),
    "UNAVAILABLE": (503, "UNAVAILABLE"),
    "INTERNAL": (500, "INTERNAL"),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED"),
}


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_injected_errors_have_fcms_shape(fcm: httpx.Client, sandbox: FcmSandbox, code: str) -> None:
    sandbox.add_rule(tokens=["bad"], error=code)
    response = send(fcm, message("bad"))
    http_status, status = EXPECTED[code]
    assert response.status_code == http_status
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (http_status, status)
    assert error["details"] == [{"@type": FCM_ERROR, "errorCode": code}]
    assert ("retry-after" in response.headers) == (code == "QUOTA_EXCEEDED")
    assert send(fcm, message("good")).status_code == 200
    stats = sandbox.stats()
    assert stats["rejected"] == {code: 1}
    assert stats["accepted"] == 1


def test_rule_times_fails_each_token_n_times_then_succeeds(
    fcm: httpx.Client, sandbox: FcmSandbox
) -> None:
    sandbox.add_rule(prefix="flaky-", error="UNAVAILABLE", times=2, retry_after_s=3)
    for token in ("flaky-1", "flaky-2"):
        first, second, third = (send(fcm, message(token)) for _ in range(3))
        assert (first.status_code, second.status_code, third.status_code) == (503, 503, 200)
        assert first.headers["retry-after"] == "3"
    assert send(fcm, message("steady")).status_code == 200
    assert sandbox.stats()["rejected"] == {"UNAVAILABLE": 4}


def test_rules_are_listed_and_cleared(fcm: httpx.Client, sandbox: FcmSandbox) -> None:
    rule = sandbox.add_rule(tokens=["x"], error="INTERNAL")
    assert rule["id"] >= 1 and rule["tokens"] == ["x"]
    assert sandbox.admin.get("/sandbox/rules").json()[0]["error"] == "INTERNAL"
    sandbox.clear_rules()
    assert send(fcm, message("x")).status_code == 200


def test_bad_rules_are_refused(sandbox: FcmSandbox) -> None:
    for rule in ({"error": "NOPE"}, {"times": -1}, {"tokens": "x"}, {"colour": "red"}):
        assert sandbox.admin.post("/sandbox/rules", json=rule).status_code == 400


def test_reset_forgets_records_and_rules(fcm: httpx.Client, sandbox: FcmSandbox) -> None:
    sandbox.add_rule(error="INTERNAL", tokens=["r"])
    send(fcm, message("a"))
    send(fcm, message("r"))
    sandbox.reset()
    stats = sandbox.stats()
    assert (stats["requests"], stats["accepted"], stats["rejected"], stats["rules"]) == (
        0,
        0,
        {},
        0,
    )
    assert sandbox.received("a")["count"] == 0
    assert send(fcm, message("r")).status_code == 200


def test_latency_rule_delays_matching_tokens(fcm: httpx.Client, sandbox: FcmSandbox) -> None:
    sandbox.add_rule(tokens=["slow"], latency_s=0.3)
    started = time.perf_counter()
    assert send(fcm, message("slow")).status_code == 200
    assert time.perf_counter() - started >= 0.3
    started = time.perf_counter()
    send(fcm, message("fast"))
    assert time.perf_counter() - started < 0.3
