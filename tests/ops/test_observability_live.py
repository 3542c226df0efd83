"""Dashboards and rules against a live stack: real Prometheus scraping real Offload processes.

Prometheus runs with the deployed rule files and a scrape configuration derived from
deploy/prometheus/prometheus.yml (same job names, loopback targets, 1 s scrapes). A small
workload of every kind goes through the gateway's API, with failures injected so failure
metrics exist. Then every Grafana panel query must return data, every rule must evaluate
over metrics that exist, and every target must be up. Last, a pool is stopped with work
waiting for it, and its outage alerts must rise.
"""

import json
import math
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis

from services.common.contracts.reports import CLEANUP_EXPIRED
from services.common.worker.app import create_celery
from tests.conftest import api, purge_queues
from tests.integration.conftest import settings, wait_for_job
from tests.support import environment, observability
from tests.support.blogserver import BlogServer
from tests.support.fcm_sandbox import FcmSandbox
from tests.support.processes import (
    Service,
    free_port,
    http_ok,
    start_gateway,
    start_process,
    start_worker,
    wait_until,
)
from tests.support.prometheus_server import PrometheusServer, QueryError

pytestmark = pytest.mark.e2e

RABBITMQ_METRICS_PORT = 15692
# Jobs of the deployed configuration this stack does not run (Flower is not installed here).
NOT_RUN = {"flower"}
POOLS = {
    # job: (service module, queue, concurrency)
    "analyzer": ("analyzer", "analyzer", 1),
    "pusher-bulk": ("pusher", "pusher.bulk", 2),
    "pusher-urgent": ("pusher", "pusher.urgent", 1),
    "pdfgen": ("pdfgen", "pdfgen", 2),
}


def has_data(prometheus: PrometheusServer, expr: str) -> bool:
    return bool(prometheus.query(expr))


def reset_state() -> None:
    """Empty queues, the test Redis database and the job tables (as the `clean` fixture)."""
    purge_queues()
    redis.Redis.from_url(environment.REDIS_URL).flushdb()
    with psycopg.connect(environment.DATABASE_URL, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE jobs, idempotency_keys, blog_scores, campaigns, devices, reports CASCADE"
        )


def scrape_config(ports: dict[str, int]) -> dict[str, Any]:
    """The deployed configuration with loopback targets, 1 s scrapes and the real rules."""
    deployed = observability.load_yaml(observability.PROMETHEUS_CONFIG)
    jobs = []
    for job in deployed["scrape_configs"]:
        name = job["job_name"]
        if name in NOT_RUN:
            continue
        local = {k: v for k, v in job.items() if k not in ("static_configs", "dns_sd_configs")}
        local["static_configs"] = [{"targets": [f"127.0.0.1:{ports[name]}"]}]
        if "vhost" in local.get("params", {}):
            local["params"] = {**local["params"], "vhost": [environment.AMQP_VHOST]}
        jobs.append(local)
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in observability.rule_files()],
        "scrape_configs": jobs,
    }


def start_exporter(log_dir: Path, port: int) -> Service:
    return start_process(
        "exporter",
        ["-m", "services.ops.exporter"],
        environment.service_env(OFFLOAD_METRICS_PORT=str(port)),
        log_dir,
        ready=http_ok(f"http://127.0.0.1:{port}/metrics"),
        timeout=20,
        what="the exporter to serve metrics",
    )


def import_devices(client: httpx.Client, tokens: list[str], **fields: Any) -> None:
    lines = "\n".join(json.dumps({"token": t, "platform": "android", **fields}) for t in tokens)
    response = client.post(
        "/v1/devices/import",
        content=lines.encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert response.status_code == 200, response.text


def send_campaign(client: httpx.Client, **spec: Any) -> str:
    body = {"title": "Hello", "body": "A message", "target": {"all": True}, **spec}
    created = client.post("/v1/campaigns", json=body)
    assert created.status_code == 201, created.text
    sent = client.post(f"/v1/campaigns/{created.json()['id']}/send")
    assert sent.status_code == 202, sent.text
    job_id: str = sent.json()["job_id"]
    return job_id


def submit_analysis(client: httpx.Client, url: str) -> str:
    response = client.post("/v1/analyses", json={"blog_url": url})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def submit_report(client: httpx.Client) -> str:
    columns = [{"key": "id", "label": "ID"}, {"key": "amount", "label": "Amount"}]
    rows = [{"id": i, "amount": i * 1.5} for i in range(300)]
    response = client.post("/v1/reports", json={"title": "Q", "columns": columns, "rows": rows})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def drive_workload(base_url: str, blogs: BlogServer, *, first: bool) -> None:
    """One round of every kind of work through the API, failures included, waited for.

    Prometheus cannot see the increase that creates a series (its first sample already holds
    it), so the fixture runs two rounds: the second moves every rate and histogram.
    """
    expected: dict[str, str] = {}  # job id -> final status
    with api(base_url) as client:
        fresh_blog = "wordpress" if first else "atom"
        expected[submit_analysis(client, blogs.url(fresh_blog))] = "succeeded"
        expected[submit_analysis(client, blogs.url("missing"))] = "failed"  # an answer
        expected[submit_analysis(client, blogs.url("wp0"))] = "failed"  # dead-lettered
        if first:
            fleet = [f"good-{i:03d}" for i in range(240)] + [f"unreg-{i:03d}" for i in range(30)]
            fleet += [f"flaky-{i:03d}" for i in range(20)] + [f"mismatch-{i}" for i in range(10)]
            import_devices(client, fleet, user_id="fleet")
            import_devices(client, [f"vip-{i}" for i in range(5)], user_id="vip")
        else:
            cached = client.post("/v1/analyses", json={"blog_url": blogs.url("wordpress")})
            assert cached.status_code == 200, cached.text  # answered from the score cache
        expected[send_campaign(client, data={"kind": "promo"})] = "succeeded"
        urgent = send_campaign(client, priority="high", target={"user_ids": ["vip"]})
        expected[urgent] = "succeeded"
        expected[submit_report(client)] = "succeeded"
        for job_id, status in expected.items():
            job = wait_for_job(client, job_id, timeout=60)
            assert job["status"] == status, job


@dataclass
class LiveStack:
    prometheus: PrometheusServer
    pools: dict[str, Service]  # scrape job -> its running pool


@pytest.fixture(scope="module")
def stack(platform: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """Prometheus scraping a stack that has run two rounds of work (see drive_workload)."""
    log_dir = tmp_path_factory.mktemp("logs")
    storage = tmp_path_factory.mktemp("storage")
    shared = {"OFFLOAD_STORAGE_URL": f"file://{storage}", "OFFLOAD_PDF_PAGES_PER_CHUNK": "2"}
    reset_state()
    with ExitStack() as stack:
        blogs = stack.enter_context(BlogServer(count=1))
        sandbox = stack.enter_context(FcmSandbox(log_dir))
        gateway, base_url = start_gateway(log_dir, **shared)
        stack.callback(gateway.stop)
        ports = {job: free_port() for job in POOLS}
        pool_env = {
            **shared,
            "OFFLOAD_SANDBOX_PORT": str(sandbox.port),
            "OFFLOAD_PUSH_RETRY_BACKOFF_S": "0.2",
            "OFFLOAD_PUSH_RATE_PER_S": "100000",
        }

        def start(job: str) -> Service:
            module, queue, concurrency = POOLS[job]
            return start_worker(
                module,
                queue,
                log_dir,
                concurrency=concurrency,
                name=job,
                OFFLOAD_METRICS_PORT=str(ports[job]),
                **pool_env,
            )

        with ThreadPoolExecutor(len(POOLS)) as pool:
            starting = [pool.submit(start, job) for job in POOLS]
        for future in starting:  # every pool that started is stopped, even if one failed
            if future.exception() is None:
                stack.callback(future.result().stop)
        pools = {job: future.result() for job, future in zip(POOLS, starting, strict=True)}
        ports["exporter"] = free_port()
        stack.callback(start_exporter(log_dir, ports["exporter"]).stop)
        ports["gateway"] = int(base_url.rsplit(":", 1)[1])
        ports["rabbitmq"] = ports["rabbitmq-queues"] = RABBITMQ_METRICS_PORT

        server = PrometheusServer(scrape_config(ports), tmp_path_factory.mktemp("prometheus"))
        stack.enter_context(server)
        sandbox.add_rule(prefix="unreg-", error="UNREGISTERED")
        sandbox.add_rule(prefix="flaky-", error="UNAVAILABLE", times=1)
        sandbox.add_rule(prefix="mismatch-", error="SENDER_ID_MISMATCH")
        blogs.fail_next("/wp0", 503, times=100)  # every crawl of it is retried, then given up

        def scraped(round_number: int) -> None:
            """Wait until Prometheus has scraped every pool's share of that many rounds."""
            for expr in (
                'sum(rabbitmq_detailed_queue_messages{queue="analyzer.dlq"}) >= {n}',
                'sum(offload_tasks_total{service="analyzer", outcome="dead_lettered"}) >= {n}',
                'sum(offload_tasks_total{task="pdfgen.merge_report"}) >= {n}',
                'sum(offload_pusher_messages_total{code="SENDER_ID_MISMATCH"}) >= 10 * {n}',
                'sum(offload_pusher_messages_total{job="pusher-urgent"}) >= 5 * {n}',
            ):
                query = expr.replace("{n}", str(round_number))
                wait_until(partial(has_data, server, query), 30, f"Prometheus: {query}", 0.5)

        drive_workload(base_url, blogs, first=True)
        scraped(1)
        drive_workload(base_url, blogs, first=False)
        scraped(2)
        time.sleep(3)  # a few more scrapes and rule evaluations after the last increase
        yield LiveStack(server, pools)


@pytest.fixture
def prometheus(stack: LiveStack) -> PrometheusServer:
    return stack.prometheus


def resolve_variables(prometheus: PrometheusServer, dashboard: dict[str, Any]) -> dict[str, str]:
    """Each template variable's value with "All" selected, its query run against Prometheus."""
    values = dict(observability.GRAFANA_BUILTINS)
    for variable in observability.variables(dashboard):
        name = variable["name"]
        assert variable["type"] == "query", f"${name}: unsupported type {variable['type']}"
        query = observability.parse_label_values(observability.variable_query(variable))
        selector = observability.substitute(query.selector, values)
        result = prometheus.query(f"group by ({query.label}) ({selector})")
        options = sorted(series["metric"][query.label] for series in result)
        assert options, f"variable ${name} of {dashboard['title']!r} has no values"
        if variable.get("includeAll") and variable.get("allValue"):
            values[name] = variable["allValue"]
        elif variable.get("multi") or variable.get("includeAll"):
            values[name] = observability.regex_alternation(options)
        else:
            values[name] = options[0]
    return values


def test_every_target_of_the_deployed_jobs_is_up(prometheus: PrometheusServer) -> None:
    deployed = observability.load_yaml(observability.PROMETHEUS_CONFIG)
    targets = prometheus.targets()
    assert {t["labels"]["job"] for t in targets} == {
        job["job_name"] for job in deployed["scrape_configs"]
    } - NOT_RUN
    down = [(t["scrapeUrl"], t["lastError"]) for t in targets if t["health"] != "up"]
    assert down == []


def test_every_dashboard_query_returns_data(prometheus: PrometheusServer) -> None:
    """Every panel query, variables set to "All", has a series with a number (not only NaN)."""
    problems = []
    checked = 0
    for file_name, dashboard in observability.dashboards().items():
        values = resolve_variables(prometheus, dashboard)
        for panel in observability.query_panels(dashboard):
            for target in panel["targets"]:
                expr = observability.substitute(target["expr"], values)
                where = f"{file_name} / {panel['title']!r} / {target['refId']}: {expr}"
                checked += 1
                try:
                    result = prometheus.query(expr)
                except QueryError as exc:
                    problems.append(f"{where}\n    error: {exc}")
                    continue
                if not result:
                    problems.append(f"{where}\n    no data")
                elif not any(math.isfinite(float(series["value"][1])) for series in result):
                    problems.append(f"{where}\n    only NaN: {result}")
    assert checked > 0
    assert problems == [], "\n".join(problems)


def test_every_rule_evaluates_over_metrics_that_exist(prometheus: PrometheusServer) -> None:
    """Alerts may be quiet, but over series that exist, from scrape jobs that exist."""
    problems = []
    for rule in observability.rules():
        name = rule.get("alert") or rule.get("record")
        try:
            result = prometheus.query(rule["expr"])
        except QueryError as exc:
            problems.append(f"{name}: {exc}")
            continue
        if "record" in rule and not result:
            problems.append(f"{name}: the recording rule has no series")
        for metric in sorted(observability.metric_names(rule["expr"])):
            if not prometheus.query(f'count({{__name__="{metric}"}})'):
                problems.append(f"{name}: no series of {metric}")
        for job in sorted(set(re.findall(r'\bjob\s*=~?\s*"([^"]*)"', rule["expr"]))):
            if not prometheus.query(f'count(up{{job=~"{job}"}})'):
                problems.append(f'{name}: no scrape job matches job=~"{job}"')
    assert problems == [], "\n".join(problems)
    # Prometheus's own evaluations of the loaded rules succeeded too.
    unhealthy = [
        (rule["name"], rule.get("lastError"))
        for group in prometheus.rule_groups()
        for rule in group["rules"]
        if rule["health"] != "ok"
    ]
    assert unhealthy == []


def test_the_failures_set_off_their_alerts(prometheus: PrometheusServer) -> None:
    """Pending (their `for` has not elapsed yet) is enough: the expressions matched."""
    raised = [(a["labels"]["alertname"], a["labels"]) for a in prometheus.alerts()]
    assert any(
        name == "OffloadDeadLetters" and labels.get("queue") == "analyzer.dlq"
        for name, labels in raised
    ), raised
    assert any(
        name == "OffloadTaskFailureRatioHigh" and labels.get("service") == "analyzer"
        for name, labels in raised
    ), raised


def test_a_pool_down_with_work_waiting_raises_its_outage_alerts(stack: LiveStack) -> None:
    """Last in this module: it stops the pdfgen pool, then gives it a task nobody takes."""
    server = stack.prometheus
    stack.pools["pdfgen"].stop()
    celery = create_celery("pdfgen", settings())
    celery.send_task(CLEANUP_EXPIRED, queue="pdfgen")

    def raised() -> set[tuple[str, str]]:
        """(alert, the pool's job or the queue it names) of every alert pending or firing."""
        return {
            (a["labels"]["alertname"], a["labels"].get("queue") or a["labels"].get("job", ""))
            for a in server.alerts()
        }

    expected = {("OffloadWorkerPoolDown", "pdfgen"), ("OffloadQueueWithoutConsumers", "pdfgen")}
    try:
        wait_until(lambda: expected <= raised(), 30, f"alerts {expected}", 0.5)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; raised: {sorted(raised())}") from None
    # The other pools answer, so nothing else is said to be down.
    assert {job for name, job in raised() if name == "OffloadWorkerPoolDown"} == {"pdfgen"}
    purge_queues()
