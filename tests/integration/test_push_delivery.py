"""Pusher under stress: a worker killed mid-campaign, the global rate limit across processes,
and an urgent campaign sent while a 100,000-device bulk campaign is in flight."""

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import api, purge_queues
from tests.e2e.test_campaign_delivery import import_devices, send_campaign, wait_completed
from tests.support.fcm_sandbox import FcmSandbox
from tests.support.processes import Service, start_gateway, start_worker, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[FcmSandbox]:
    with FcmSandbox(tmp_path).start() as running:
        yield running


@pytest.fixture
def gateway(platform: None, clean: None, tmp_path: Path) -> Iterator[str]:
    purge_queues()
    service, base_url = start_gateway(tmp_path)
    try:
        yield base_url
    finally:
        service.stop()


def pusher(
    tmp_path: Path, sandbox: FcmSandbox, queue: str, name: str, *, concurrency: int, rate: int
) -> Service:
    return start_worker(
        "pusher",
        queue,
        tmp_path,
        concurrency=concurrency,
        name=name,
        OFFLOAD_SANDBOX_PORT=str(sandbox.port),
        OFFLOAD_PUSH_RATE_PER_S=str(rate),
        OFFLOAD_PUSH_RETRY_BACKOFF_S="0.2",
    )


def test_a_worker_killed_mid_campaign_neither_loses_nor_miscounts(
    gateway: str, sandbox: FcmSandbox, tmp_path: Path
) -> None:
    tokens = [f"kill-{i:05d}" for i in range(20_000)]
    sandbox.add_rule(latency_s=0.02)  # slow enough to be caught mid-batch
    worker = pusher(tmp_path, sandbox, "pusher.bulk", "bulk", concurrency=2, rate=100_000)
    try:
        with api(gateway) as client:
            import_devices(client, tokens)
            campaign_id, job_id = send_campaign(client)
            wait_until(
                lambda: client.get(f"/v1/campaigns/{campaign_id}/stats").json()["sent"] >= 3_000,
                60,
                "the campaign to be under way",
                step=0.05,
            )
            victims = worker.children()
            assert victims, "no pool child to kill"
            os.kill(victims[0].pid, signal.SIGKILL)
            stats = wait_completed(client, campaign_id)
            job = client.get(f"/v1/jobs/{job_id}").json()
    finally:
        worker.stop()
    assert stats["status"] == "completed"
    assert (stats["total"], stats["sent"], stats["succeeded"], stats["failed"]) == (
        20_000,
        20_000,
        20_000,
        0,
    )
    assert job["status"] == "succeeded"
    record = sandbox.stats()["campaigns"][campaign_id]
    assert record["distinct"] == 20_000  # every token reached
    # FCM has no idempotency key: the requests in flight when the child died may be resent.
    # Outcomes are recorded per chunk, so at most one chunk (100) per killed child repeats,
    # and each repeat carries the campaign's notification tag / APNs collapse id.
    print(f"killed mid-campaign: {record['duplicates']} transport duplicates")
    assert record["duplicates"] <= 100, record


def test_the_rate_limit_is_global_across_worker_processes(
    gateway: str, sandbox: FcmSandbox, tmp_path: Path
) -> None:
    limit = 1_000
    workers = [
        pusher(tmp_path, sandbox, "pusher.bulk", f"bulk-{n}", concurrency=1, rate=limit)
        for n in range(2)
    ]
    try:
        with api(gateway) as client:
            import_devices(client, [f"rate-{i:05d}" for i in range(6_000)])
            campaign_id, _ = send_campaign(client)
            stats = wait_completed(client, campaign_id)
    finally:
        for worker in workers:
            worker.stop()
    assert stats["succeeded"] == 6_000
    sandbox_stats = sandbox.stats()
    elapsed = sandbox_stats["last_accept_at"] - sandbox_stats["first_accept_at"]
    measured = (sandbox_stats["accepted"] - 1) / elapsed
    print(f"two processes under a {limit}/s limit: {measured:.0f}/s")
    assert measured == pytest.approx(limit, rel=0.10), f"{measured:.0f}/s against {limit}/s"


def test_an_urgent_campaign_is_not_stuck_behind_a_bulk_one(
    gateway: str, sandbox: FcmSandbox, tmp_path: Path
) -> None:
    bulk = pusher(tmp_path, sandbox, "pusher.bulk", "bulk", concurrency=2, rate=3_000)
    urgent = pusher(tmp_path, sandbox, "pusher.urgent", "urgent", concurrency=1, rate=3_000)
    try:
        with api(gateway) as client:
            import_devices(client, [f"bulk-{i:06d}" for i in range(100_000)])
            import_devices(client, [f"vip-{i}" for i in range(10)], user_id="vip")
            marketing, _ = send_campaign(client, priority="low")
            wait_until(
                lambda: client.get(f"/v1/campaigns/{marketing}/stats").json()["sent"] >= 5_000,
                60,
                "the bulk campaign to be under way",
                step=0.1,
            )
            started = time.monotonic()
            alert, _ = send_campaign(
                client, priority="high", title="Security alert", target={"user_ids": ["vip"]}
            )
            wait_until(
                lambda: sandbox.stats()["campaigns"].get(alert, {}).get("accepted", 0) > 0,
                10,
                "the urgent campaign to deliver",
                step=0.02,
            )
            first_delivery_s = time.monotonic() - started
            urgent_stats = wait_completed(client, alert, timeout=30)
            bulk_in_flight = client.get(f"/v1/campaigns/{marketing}/stats").json()
            cancelled = client.post(f"/v1/campaigns/{marketing}/cancel").json()
            after_cancel = wait_completed(client, marketing, timeout=30)
            time.sleep(1.0)
            settled = sandbox.stats()["campaigns"][marketing]["accepted"]
            time.sleep(1.0)
            later = sandbox.stats()["campaigns"][marketing]["accepted"]
    finally:
        bulk.stop()
        urgent.stop()
    print(f"urgent first delivery {first_delivery_s:.3f} s; bulk sent {bulk_in_flight['sent']}")
    assert first_delivery_s <= 2.0, (
        f"urgent campaign first delivered after {first_delivery_s:.2f} s"
    )
    assert urgent_stats["succeeded"] == 10
    assert bulk_in_flight["status"] == "processing"  # the bulk one really was mid-flight
    assert bulk_in_flight["sent"] < 100_000
    assert cancelled["status"] == "cancelled" and after_cancel["status"] == "cancelled"
    assert later == settled < 100_000  # cancelling stopped the remaining batches
