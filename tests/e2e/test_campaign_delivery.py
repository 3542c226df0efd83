"""Campaign delivery end to end: gateway, pusher pools, the FCM sandbox, real Postgres/Redis."""

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from services.common.contracts.push import FCM_PAYLOAD_LIMIT, campaign_payload_size
from services.fcm_sandbox.validation import payload_bytes
from tests.conftest import api, purge_queues
from tests.support import environment
from tests.support.fcm_sandbox import FcmSandbox
from tests.support.processes import Service, free_port, start_gateway, start_worker
from tests.support.prometheus import metric

pytestmark = pytest.mark.e2e


@dataclass
class PushStack:
    base_url: str
    sandbox: FcmSandbox
    bulk: Service
    log_dir: Path
    metrics_port: int = 0

    def worker_env(self) -> dict[str, str]:
        return {
            "OFFLOAD_SANDBOX_PORT": str(self.sandbox.port),
            "OFFLOAD_PUSH_RETRY_BACKOFF_S": "0.2",
            "OFFLOAD_PUSH_RATE_PER_S": "100000",
            # FCM's Retry-After is honoured up to here (test_a_long_retry_after_is_capped).
            "OFFLOAD_PUSH_RETRY_DELAY_MAX_S": "1",
        }


@pytest.fixture(scope="module")
def push_stack(platform: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PushStack]:
    log_dir = tmp_path_factory.mktemp("logs")
    purge_queues()
    sandbox = FcmSandbox(log_dir).start()
    services: list[Service] = []
    try:
        gateway, base_url = start_gateway(log_dir)
        services.append(gateway)
        stack = PushStack(base_url, sandbox, gateway, log_dir, free_port())
        stack.bulk = start_worker(
            "pusher",
            "pusher.bulk",
            log_dir,
            concurrency=2,
            name="pusher-bulk",
            OFFLOAD_METRICS_PORT=str(stack.metrics_port),
            **stack.worker_env(),
        )
        services.append(stack.bulk)
        yield stack
    finally:
        for service in reversed(services):
            service.stop()
        sandbox.stop()


def import_devices(client: httpx.Client, tokens: list[str], **fields: Any) -> None:
    lines = "\n".join(json.dumps({"token": t, "platform": "android", **fields}) for t in tokens)
    response = client.post(
        "/v1/devices/import",
        content=lines.encode(),
        headers={"Content-Type": "application/x-ndjson"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert response.json()["rejected"] == 0


def send_campaign(client: httpx.Client, **spec: Any) -> tuple[str, str]:
    body = {"title": "Hello", "body": "A message", "target": {"all": True}, **spec}
    campaign_id = client.post("/v1/campaigns", json=body).json()["id"]
    sent = client.post(f"/v1/campaigns/{campaign_id}/send")
    assert sent.status_code == 202, sent.text
    return campaign_id, sent.json()["job_id"]


def wait_completed(client: httpx.Client, campaign_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats: dict[str, Any] = client.get(f"/v1/campaigns/{campaign_id}/stats").json()
        if stats["status"] in ("completed", "cancelled", "failed"):
            return stats
        time.sleep(0.2)
    raise AssertionError(f"campaign {campaign_id} did not finish: {stats}")


def test_ten_thousand_devices_with_unregistered_and_flaky_tokens(
    push_stack: PushStack, clean: None
) -> None:
    sandbox = push_stack.sandbox
    sandbox.reset()
    good = [f"good-{i:05d}" for i in range(9_700)]
    flaky = [f"flaky-{i:03d}" for i in range(200)]
    unregistered = [f"unreg-{i:03d}" for i in range(100)]
    sandbox.add_rule(prefix="unreg-", error="UNREGISTERED")
    sandbox.add_rule(prefix="flaky-", error="UNAVAILABLE", times=1)
    metrics_url = f"http://127.0.0.1:{push_stack.metrics_port}/metrics"
    before = httpx.get(metrics_url).text
    with api(push_stack.base_url) as client:
        import_devices(client, good + flaky + unregistered)
        campaign_id, job_id = send_campaign(client, data={"kind": "promo"})
        stats = wait_completed(client, campaign_id)
        job = client.get(f"/v1/jobs/{job_id}").json()
        gone = client.get("/v1/devices/unreg-007").json()
        kept = client.get("/v1/devices/flaky-007").json()
    assert stats["status"] == "completed", stats
    assert (stats["total"], stats["sent"], stats["succeeded"], stats["failed"]) == (
        10_000,
        10_000,
        9_900,
        100,
    )
    assert stats["failures_by_code"] == {"UNREGISTERED": 100}
    assert stats["progress"] == 100 and stats["eta_s"] == 0
    assert job["status"] == "succeeded"
    assert job["progress"] == {"done": 10_000, "total": 10_000}
    assert job["result"]["failures_by_code"] == {"UNREGISTERED": 100}
    assert not gone["active"] and kept["active"]
    # Every settled batch was recorded as progress (what the exporter's stall gauge reads);
    # concurrent settlements may commit a few ms out of order.
    with psycopg.connect(environment.DATABASE_URL) as conn:
        row = conn.execute(
            "SELECT c.started_at, c.progressed_at, c.completed_at, max(b.settled_at) "
            "FROM campaigns c JOIN campaign_batches b ON b.campaign_id = c.id "
            "WHERE c.id = %s GROUP BY c.id",
            (campaign_id,),
        ).fetchone()
    assert row is not None
    started_at, progressed_at, completed_at, last_settled_at = row
    assert started_at < progressed_at <= completed_at
    assert abs((progressed_at - last_settled_at).total_seconds()) < 1

    record = sandbox.stats()["campaigns"][campaign_id]
    assert record == {"accepted": 9_900, "distinct": 9_900, "duplicates": 0}

    after = httpx.get(metrics_url).text

    def grew(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert grew("offload_pusher_messages_total", outcome="sent", code="") == 9_900
    assert grew("offload_pusher_messages_total", outcome="failed", code="UNREGISTERED") == 100
    assert grew("offload_pusher_messages_total", outcome="retried", code="UNAVAILABLE") == 200
    assert grew("offload_pusher_devices_deactivated_total") == 100
    assert grew("offload_pusher_batch_duration_seconds_count") >= 20
    assert metric(after, "offload_pusher_campaigns_active") == 0
    assert sandbox.received("flaky-007")["count"] == 1  # retried once, delivered once
    message = sandbox.received("good-00042")["last_message"]
    assert message["data"] == {"kind": "promo", "campaign_id": campaign_id}
    assert message["notification"] == {"title": "Hello", "body": "A message"}
    # A resend after a crash replaces the notification on the device instead of repeating it.
    assert message["android"]["notification"]["tag"] == campaign_id
    assert message["apns"]["headers"]["apns-collapse-id"] == campaign_id


def test_a_campaign_targets_users_and_topics_only(push_stack: PushStack, clean: None) -> None:
    sandbox = push_stack.sandbox
    with api(push_stack.base_url) as client:
        import_devices(client, [f"u1-{i}" for i in range(3)], user_id="user-1")
        import_devices(client, [f"u2-{i}" for i in range(2)], user_id="user-2", topics=["news"])
        import_devices(client, [f"other-{i}" for i in range(50)], user_id="user-3")
        by_user, _ = send_campaign(client, target={"user_ids": ["user-1", "user-2"]})
        by_topic, _ = send_campaign(client, target={"topic": "news"})
        users, topic = wait_completed(client, by_user), wait_completed(client, by_topic)
    assert (users["total"], users["succeeded"]) == (5, 5)
    assert (topic["total"], topic["succeeded"]) == (2, 2)
    campaigns = sandbox.stats()["campaigns"]
    assert campaigns[by_user]["distinct"] == 5 and campaigns[by_topic]["distinct"] == 2
    assert sandbox.received("other-0")["count"] == 0


def test_a_campaign_right_at_the_payload_limit_is_delivered(
    push_stack: PushStack, clean: None
) -> None:
    """The gateway counts what the pusher sends: 4096 bytes pass FCM, one more is a 422."""
    sandbox = push_stack.sandbox
    sandbox.reset()
    title, body = "Soldes d'été", "Tout doit partir"
    room = FCM_PAYLOAD_LIMIT - campaign_payload_size(title, body, {"deeplink": "/s", "x": ""})
    fits = {"deeplink": "/s", "x": "v" * room}
    tokens = [f"edge-{i}" for i in range(3)]
    with api(push_stack.base_url) as client:
        import_devices(client, tokens)
        over = {**fits, "x": fits["x"] + "v"}
        refused = client.post(
            "/v1/campaigns",
            json={"title": title, "body": body, "data": over, "target": {"all": True}},
        )
        campaign_id, _ = send_campaign(client, title=title, body=body, data=fits)
        stats = wait_completed(client, campaign_id, timeout=30)
    assert refused.status_code == 422, refused.text
    assert (stats["status"], stats["succeeded"], stats["failures_by_code"]) == ("completed", 3, {})
    assert sandbox.stats()["campaigns"][campaign_id]["accepted"] == 3
    # What FCM (the sandbox) counted in what was sent is what the gateway counted.
    assert payload_bytes(sandbox.received("edge-1")["last_message"]) == FCM_PAYLOAD_LIMIT


def test_a_long_retry_after_is_capped(push_stack: PushStack, clean: None) -> None:
    """An hour's Retry-After waits OFFLOAD_PUSH_RETRY_DELAY_MAX_S (1 s here), not an hour."""
    sandbox = push_stack.sandbox
    sandbox.reset()
    sandbox.add_rule(prefix="busy-", error="QUOTA_EXCEEDED", times=1, retry_after_s=3600)
    with api(push_stack.base_url) as client:
        import_devices(client, ["busy-1", "busy-2", "calm-1"])
        campaign_id, _ = send_campaign(client)
        stats = wait_completed(client, campaign_id, timeout=30)
    assert (stats["status"], stats["succeeded"]) == ("completed", 3)
    assert sandbox.received("busy-1")["count"] == 1
