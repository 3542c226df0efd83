"""Campaign API end to end: validation, state rules, scheduling and fan-in with a real pool."""

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from services.common.contracts.push import FCM_PAYLOAD_LIMIT
from services.gateway.campaigns.schemas import (
    BODY_MAX_CHARS,
    DATA_KEY_MAX_CHARS,
    DATA_KEYS_MAX,
    DATA_VALUE_MAX_CHARS,
    TITLE_MAX_CHARS,
    USER_IDS_MAX,
)
from services.gateway.devices.schemas import TOPIC_MAX_CHARS, USER_ID_MAX_CHARS
from tests.conftest import api, purge_queues
from tests.support import environment
from tests.support.processes import Service, start_gateway, start_worker

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gateway_and_pusher(
    platform: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Service]]:
    log_dir: Path = tmp_path_factory.mktemp("logs")
    purge_queues()
    gateway, base_url = start_gateway(log_dir)
    try:
        pusher = start_worker("pusher", "pusher.bulk", log_dir, concurrency=1)
    except BaseException:
        gateway.stop()
        raise
    try:
        yield base_url, pusher
    finally:
        pusher.stop()
        gateway.stop()


def campaign(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "title": "Sale",
        "body": "50% off today",
        "data": {"deeplink": "/s"},
        "target": {"topic": "nobody-subscribes-here"},
    }
    spec.update(overrides)
    return spec


def wait_status(
    client: httpx.Client, campaign_id: str, wanted: str, timeout: float = 20
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats: dict[str, Any] = client.get(f"/v1/campaigns/{campaign_id}/stats").json()
        if stats["status"] == wanted:
            return stats
        time.sleep(0.1)
    raise AssertionError(f"campaign {campaign_id} still {stats['status']}, not {wanted}")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        (campaign(data={"k": "x" * 3000, "j": "x" * 2000}), "FCM accepts at most 4096"),
        (campaign(target={}), "exactly one"),
        (campaign(target={"all": True, "topic": "t"}), "exactly one"),
        (campaign(target={"user_ids": []}), "user_ids"),
        (campaign(priority="urgent"), "priority"),
        (campaign(data={"n": 1}), "data"),
        (campaign(data={"campaign_id": "x"}), "reserved"),
        (campaign(send_at="2030-01-01T00:00:00"), "timezone"),
    ],
)
def test_bad_campaigns_are_422(
    gateway_and_pusher: tuple[str, Service], clean: None, spec: dict[str, Any], fragment: str
) -> None:
    with api(gateway_and_pusher[0]) as client:
        response = client.post("/v1/campaigns", json=spec)
    assert response.status_code == 422, response.text
    assert fragment in response.text


def refusals(response: httpx.Response) -> list[str]:
    """'loc: msg' of each error of a 422 (the echoed input would match any fragment)."""
    assert response.status_code == 422, response.text
    return [
        ".".join(map(str, error["loc"])) + ": " + error["msg"]
        for error in response.json()["detail"]
    ]


def test_a_payload_that_fits_only_without_what_the_pusher_adds_is_422(
    gateway_and_pusher: tuple[str, Service], clean: None
) -> None:
    # 4096 bytes of title, body and data keys and values on their own...
    alone = len("titleSalebody50% off todayx")
    spec = campaign(data={"x": "v" * (FCM_PAYLOAD_LIMIT - alone)})
    with api(gateway_and_pusher[0]) as client:
        response = client.post("/v1/campaigns", json=spec)
    # ...plus "campaign_id" and the id (11 + 36) in data, "tag" and the id (3 + 36) for Android.
    [error] = refusals(response)
    assert "payload is 4182 bytes" in error and f"at most {FCM_PAYLOAD_LIMIT}" in error


@pytest.mark.parametrize(
    "key", ["from", "message_type", "notification", "google.c.a.e", "google", "gcm.n.e", "gcm", ""]
)
def test_data_keys_reserved_by_fcm_are_422_naming_the_key(
    gateway_and_pusher: tuple[str, Service], clean: None, key: str
) -> None:
    with api(gateway_and_pusher[0]) as client:
        response = client.post("/v1/campaigns", json=campaign(data={"deeplink": "/s", key: "x"}))
    [error] = refusals(response)
    assert error.startswith("body.data: ") and f'reserved by FCM: "{key}"' in error


@pytest.mark.parametrize(
    ("spec", "where", "fragment"),
    [
        (
            campaign(target={"user_ids": [f"u{i}" for i in range(USER_IDS_MAX + 1)]}),
            "body.target.user_ids",
            f"at most {USER_IDS_MAX} items",
        ),
        (
            campaign(target={"user_ids": ["u" * (USER_ID_MAX_CHARS + 1)]}),
            "body.target.user_ids.0",
            f"at most {USER_ID_MAX_CHARS} characters",
        ),
        (campaign(target={"user_ids": ["ok", ""]}), "body.target.user_ids.1", "non-empty"),
        (
            campaign(target={"topic": "t" * (TOPIC_MAX_CHARS + 1)}),
            "body.target.topic",
            f"at most {TOPIC_MAX_CHARS} characters",
        ),
        (campaign(target={"topic": "no spaces"}), "body.target.topic", "pattern"),
        (
            campaign(title="t" * (TITLE_MAX_CHARS + 1)),
            "body.title",
            f"at most {TITLE_MAX_CHARS} characters",
        ),
        (
            campaign(body="b" * (BODY_MAX_CHARS + 1)),
            "body.body",
            f"at most {BODY_MAX_CHARS} characters",
        ),
        (
            campaign(data={f"k{i}": "" for i in range(DATA_KEYS_MAX + 1)}),
            "body.data",
            f"at most {DATA_KEYS_MAX} items",
        ),
        (
            campaign(data={"k" * (DATA_KEY_MAX_CHARS + 1): "v"}),
            "body.data",
            f"at most {DATA_KEY_MAX_CHARS} characters",
        ),
        (
            campaign(data={"k": "v" * (DATA_VALUE_MAX_CHARS + 1)}),
            "body.data.k",
            f"at most {DATA_VALUE_MAX_CHARS} characters",
        ),
    ],
)
def test_every_list_and_string_of_a_campaign_is_bounded(
    gateway_and_pusher: tuple[str, Service],
    clean: None,
    spec: dict[str, Any],
    where: str,
    fragment: str,
) -> None:
    with api(gateway_and_pusher[0]) as client:
        response = client.post("/v1/campaigns", json=spec)
    [error] = refusals(response)
    assert error.startswith(where) and fragment in error, error


def test_a_campaign_to_nobody_completes_and_cannot_be_sent_twice(
    gateway_and_pusher: tuple[str, Service], clean: None
) -> None:
    with api(gateway_and_pusher[0]) as client:
        created = client.post("/v1/campaigns", json=campaign())
        assert created.status_code == 201
        assert created.json()["status"] == "draft"
        campaign_id = created.json()["id"]
        sent = client.post(f"/v1/campaigns/{campaign_id}/send")
        assert sent.status_code == 202, sent.text
        again = client.post(f"/v1/campaigns/{campaign_id}/send")
        stats = wait_status(client, campaign_id, "completed")
        job = client.get(f"/v1/jobs/{sent.json()['job_id']}").json()
        listed = client.get("/v1/campaigns", params={"status": "completed"}).json()
        cancel_done = client.post(f"/v1/campaigns/{campaign_id}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "campaign_state_conflict"
    assert stats["total"] == stats["sent"] == 0
    assert stats["progress"] == 100
    assert job["status"] == "succeeded"
    assert job["result"]["total"] == 0
    assert [c["id"] for c in listed] == [campaign_id]
    assert cancel_done.status_code == 409


def test_scheduled_campaigns_wait_in_postgres_and_can_be_cancelled(
    gateway_and_pusher: tuple[str, Service], clean: None
) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    with api(gateway_and_pusher[0]) as client:
        campaign_id = client.post("/v1/campaigns", json=campaign(send_at=later)).json()["id"]
        sent = client.post(f"/v1/campaigns/{campaign_id}/send").json()
        assert sent["status"] == "scheduled"
        assert client.get(f"/v1/jobs/{sent['job_id']}").json()["status"] == "queued"
        listed = client.get("/v1/campaigns", params={"status": "scheduled"}).json()
        cancelled = client.post(f"/v1/campaigns/{campaign_id}/cancel").json()
        job = client.get(f"/v1/jobs/{sent['job_id']}").json()
    assert [c["id"] for c in listed] == [campaign_id]
    assert cancelled["status"] == "cancelled"
    assert job["status"] == "cancelled"


def test_a_campaign_shows_its_job_cancelled_or_failed_for_good(
    gateway_and_pusher: tuple[str, Service], clean: None
) -> None:
    """No worker moves a campaign on once its job ended badly; the API must not say otherwise."""
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    with api(gateway_and_pusher[0]) as client:
        ids = [
            client.post("/v1/campaigns", json=campaign(send_at=later)).json()["id"] for _ in "ab"
        ]
        jobs = [client.post(f"/v1/campaigns/{i}/send").json()["job_id"] for i in ids]
        # One cancelled through the generic jobs API, one failed for good (as a dead letter does).
        assert client.delete(f"/v1/jobs/{jobs[0]}").status_code == 200
        with psycopg.connect(environment.DATABASE_URL, autocommit=True) as conn:
            conn.execute(
                "UPDATE jobs SET status = 'failed', error_code = 'retries_exhausted' WHERE id = %s",
                (jobs[1],),
            )
        shown = [client.get(f"/v1/campaigns/{i}").json()["status"] for i in ids]
        stats = [client.get(f"/v1/campaigns/{i}/stats").json()["status"] for i in ids]
        listed = {
            wanted: [c["id"] for c in client.get("/v1/campaigns", params={"status": wanted}).json()]
            for wanted in ("scheduled", "cancelled", "failed")
        }
    assert shown == stats == ["cancelled", "failed"]
    assert listed == {"scheduled": [], "cancelled": [ids[0]], "failed": [ids[1]]}


def test_unknown_campaigns_are_404(gateway_and_pusher: tuple[str, Service]) -> None:
    with api(gateway_and_pusher[0]) as client:
        for path in (
            "/v1/campaigns/nope",
            "/v1/campaigns/00000000-0000-0000-0000-000000000000/stats",
        ):
            assert client.get(path).status_code == 404
        assert (
            client.post("/v1/campaigns/00000000-0000-0000-0000-000000000000/send").status_code
            == 404
        )


def test_a_scheduled_campaign_is_started_by_beat_at_its_time(
    gateway_and_pusher: tuple[str, Service], clean: None, tmp_path: Path
) -> None:
    urgent = start_worker("pusher", "pusher.urgent", tmp_path, concurrency=1, name="urgent")
    beat = Service(
        "beat",
        ["-m", "services.ops.beat", "--schedule", str(tmp_path / "beat-schedule")],
        environment.service_env(),
        tmp_path,
    )
    try:
        soon = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
        with api(gateway_and_pusher[0]) as client:
            campaign_id = client.post("/v1/campaigns", json=campaign(send_at=soon)).json()["id"]
            sent = client.post(f"/v1/campaigns/{campaign_id}/send").json()
            assert sent["status"] == "scheduled"
            time.sleep(1.0)
            assert client.get(f"/v1/campaigns/{campaign_id}/stats").json()["status"] == "scheduled"
            stats = wait_status(client, campaign_id, "completed", timeout=30)
            job = client.get(f"/v1/jobs/{sent['job_id']}").json()
    finally:
        beat.stop()
        urgent.stop()
    assert stats["started_at"] >= soon
    assert job["status"] == "succeeded"
    with psycopg.connect(environment.DATABASE_URL) as conn:
        row = conn.execute(
            "SELECT progressed_at FROM campaigns WHERE id = %s", (campaign_id,)
        ).fetchone()
    assert row is not None and row[0] >= datetime.fromisoformat(soon)  # dispatched, then sent
