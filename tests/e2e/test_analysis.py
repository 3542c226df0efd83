"""Blogger-score analyses end to end: real gateway and analyzer processes, loopback blogs."""

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.conftest import api
from tests.e2e.conftest import Stack
from tests.support.blogserver import BlogServer
from tests.support.prometheus import metric

pytestmark = pytest.mark.e2e


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")


def submit(client: httpx.Client, url: str, **headers: str) -> httpx.Response:
    return client.post("/v1/analyses", json={"blog_url": url}, headers=headers)


def test_a_blog_is_scored_with_the_metrics_it_publishes(
    stack: Stack, blogs: BlogServer, clean: None
) -> None:
    with api(stack.base_url) as client:
        started = time.perf_counter()
        accepted = submit(client, blogs.url("wordpress"))
        assert accepted.status_code == 202, accepted.text
        assert time.perf_counter() - started < 1.0
        body = accepted.json()
        assert body["status"] == "queued"
        assert accepted.headers["location"] == f"/v1/jobs/{body['job_id']}"
        job = wait_for_job(client, body["job_id"])

    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["metrics"] == blogs.blog("wordpress").expected_metrics()
    assert 0 < result["score"] <= 100
    assert set(result["breakdown"]) == {
        k for k, v in result["metrics"].items() if v is not None and k != "posts_analyzed"
    }
    assert sum(result["breakdown"].values()) == pytest.approx(result["score"], abs=0.2)
    assert job["progress"] == {"done": 30, "total": 30}
    assert job["started_at"] and job["finished_at"] and job["error"] is None


def test_missing_metrics_are_null_not_zero(stack: Stack, blogs: BlogServer, clean: None) -> None:
    with api(stack.base_url) as client:
        job = wait_for_job(client, submit(client, blogs.url("atom")).json()["job_id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["metrics"] == blogs.blog("atom").expected_metrics()
    assert job["result"]["metrics"]["avg_views"] is None
    assert "avg_views" not in job["result"]["breakdown"]


def test_a_fresh_score_is_answered_from_the_cache_at_once(
    stack: Stack, blogs: BlogServer, clean: None
) -> None:
    with api(stack.base_url) as client:
        first = wait_for_job(client, submit(client, blogs.url("sparse")).json()["job_id"])
        assert first["status"] == "succeeded", first
        hits = blogs.total_hits()
        # The same blog, spelled differently, normalises to the same cache key.
        repeat = submit(client, blogs.url("sparse") + "/?utm_source=newsletter")
    assert repeat.status_code == 200, repeat.text
    assert repeat.json()["job_id"] == first["job_id"]
    assert repeat.json()["result"] == first["result"]
    assert blogs.total_hits() == hits


def test_concurrent_requests_for_one_blog_share_one_crawl(
    stack: Stack, blogs: BlogServer, clean: None
) -> None:
    blogs.reset_stats()
    url = blogs.url("wordpress")
    with api(stack.base_url) as client, ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: submit(client, url), range(8)))
        assert all(r.status_code == 202 for r in responses), [r.text for r in responses]
        job_ids = {r.json()["job_id"] for r in responses}
        jobs = [wait_for_job(client, job_id) for job_id in job_ids]
    assert all(job["status"] == "succeeded" for job in jobs)
    assert blogs.hits("/wordpress/") == 1
    assert blogs.hits("/wordpress/feed/") == 1


def test_the_same_idempotency_key_returns_the_same_job(
    stack: Stack, blogs: BlogServer, clean: None
) -> None:
    with api(stack.base_url) as client:
        first = submit(client, blogs.url("atom"), **{"Idempotency-Key": "order-42"})
        again = submit(client, blogs.url("atom"), **{"Idempotency-Key": "order-42"})
        other_body = submit(client, blogs.url("sparse"), **{"Idempotency-Key": "order-42"})
        wait_for_job(client, first.json()["job_id"])
        later = submit(client, blogs.url("atom"), **{"Idempotency-Key": "order-42"})
    assert first.status_code == 202
    assert again.json()["job_id"] == first.json()["job_id"]
    assert later.json()["job_id"] == first.json()["job_id"]
    assert other_body.status_code == 422
    assert other_body.json()["error"]["code"] == "idempotency_key_reused"


def test_a_missing_blog_fails_at_once_with_a_clear_code(
    stack: Stack, blogs: BlogServer, clean: None
) -> None:
    with api(stack.base_url) as client:
        missing = wait_for_job(client, submit(client, blogs.url("missing")).json()["job_id"])
        not_a_blog = wait_for_job(client, submit(client, blogs.url("notablog")).json()["job_id"])
    assert missing["status"] == "failed"
    assert missing["error"]["code"] == "blog_not_found"
    assert not_a_blog["status"] == "failed"
    assert not_a_blog["error"]["code"] == "no_feed"
    assert blogs.hits("/missing/") == 1  # no retry storm


@pytest.mark.parametrize(
    "body",
    [
        {"blog_url": "not a url"},
        {"blog_url": "ftp://example.com/"},
        {"blog_url": "http://"},
        {},
        {"blog_url": "https://example.com/", "priority": "urgent"},
        {"blog_url": "https://example.com/", "extra": 1},
    ],
)
def test_bad_input_is_a_422_naming_the_field(stack: Stack, body: dict[str, Any]) -> None:
    with api(stack.base_url) as client:
        response = client.post("/v1/analyses", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "body"


def test_auth_is_required_except_on_operational_routes(stack: Stack) -> None:
    with api(stack.base_url, key=None) as anonymous, api(stack.base_url, key="wrong") as wrong:
        assert (
            anonymous.post("/v1/analyses", json={"blog_url": "https://a.example/"}).status_code
            == 401
        )
        assert wrong.get("/v1/jobs/00000000-0000-0000-0000-000000000000").status_code == 401
        for path in ("/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"):
            assert anonymous.get(path).status_code == 200, path


def test_unknown_job_ids_are_404(stack: Stack, clean: None) -> None:
    with api(stack.base_url) as client:
        assert client.get("/v1/jobs/00000000-0000-0000-0000-000000000000").status_code == 404
        assert client.get("/v1/jobs/not-a-uuid").status_code == 404
        assert client.delete("/v1/jobs/00000000-0000-0000-0000-000000000000").status_code == 404


def test_request_ids_are_returned_and_reach_the_worker_logs(
    stack: Stack, blogs: BlogServer, clean: None
) -> None:
    with api(stack.base_url) as client:
        response = client.post(
            "/v1/analyses",
            json={"blog_url": blogs.url("sparse")},
            headers={"X-Request-ID": "trace-abc-123"},
        )
        assert response.headers["x-request-id"] == "trace-abc-123"
        wait_for_job(client, response.json()["job_id"])
        generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
    lines = [line for line in stack.analyzer.log().splitlines() if "trace-abc-123" in line]
    assert any(response.json()["job_id"] in line for line in lines), lines[-5:]


def test_metrics_aggregate_every_pool_process(stack: Stack, blogs: BlogServer, clean: None) -> None:
    task = {"service": "analyzer", "task": "analyzer.analyze_blog"}
    before = httpx.get(stack.analyzer_metrics).text
    with api(stack.base_url) as client:
        ids = [submit(client, blogs.url(name)).json()["job_id"] for name in ("wordpress", "atom")]
        for job_id in ids:
            assert wait_for_job(client, job_id)["status"] == "succeeded"
    after = httpx.get(stack.analyzer_metrics).text
    assert len({c.pid for c in stack.analyzer.children()}) == 2  # a prefork pool of two
    succeeded = metric(after, "offload_tasks_total", outcome="succeeded", **task)
    assert succeeded - metric(before, "offload_tasks_total", outcome="succeeded", **task) == 2
    assert metric(after, "offload_task_runtime_seconds_count", **task) >= succeeded
    assert metric(after, "offload_task_queue_wait_seconds_count", **task) >= 2
    assert metric(after, "offload_tasks_in_flight", **task) == 0
    assert metric(after, "offload_analyzer_pages_fetched_total", status="200") > 60
    assert metric(after, "offload_analyzer_crawl_duration_seconds_count") >= 2
    assert metric(after, "offload_analyzer_cache_lookups_total", result="miss") >= 2
    gateway = httpx.get(f"{stack.base_url}/metrics").text
    assert (
        metric(
            gateway,
            "offload_http_requests_total",
            method="POST",
            route="/v1/analyses",
            status="202",
        )
        >= 2
    )


def test_progress_streams_as_server_sent_events(
    stack: Stack, blogs: BlogServer, clean: None
) -> None:
    with api(stack.base_url) as client:
        job_id = submit(client, blogs.url("atom")).json()["job_id"]
        events = []
        with client.stream("GET", f"/v1/jobs/{job_id}/events", timeout=30) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line.removeprefix("data: ")))
        assert client.get("/v1/jobs/00000000-0000-0000-0000-000000000000/events").status_code == 404
    assert events[-1]["status"] == "succeeded"
    assert events[-1]["result"]["metrics"] == blogs.blog("atom").expected_metrics()
    states = [json.dumps([e["status"], e["progress"]]) for e in events]
    assert len(states) == len(set(states))  # an event per change, not per poll
