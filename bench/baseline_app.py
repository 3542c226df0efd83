"""The gateway benchmark's baseline: a plain FastAPI route calling Celery's `delay()`.

This is how a typical app queues work: a sync `def` route (FastAPI runs it in its threadpool)
calls `task.delay()`, and Celery publishes with publisher confirms (`confirm_publish`) to the
same RabbitMQ, exchange and priority queue the gateway uses. No auth, no database row, no
idempotency or single-flight: just validate and publish. Serve it with uvicorn:

    OFFLOAD_AMQP_URL=amqp://... uvicorn bench.baseline_app:app --workers 2

`POST /noop` answers 202 without doing anything: the load generator's own ceiling is measured
against it.
"""

import os
import uuid
from typing import Any

from celery import Celery
from fastapi import FastAPI, status
from kombu import Exchange, Queue
from pydantic import BaseModel

from services.common import topology

QUEUE = topology.queue_named("analyzer")

celery_app = Celery(
    "bench-baseline",
    broker=os.environ.get("OFFLOAD_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    set_as_current=False,
)
celery_app.conf.update(
    task_queues=[
        Queue(
            QUEUE.name,
            Exchange(topology.TASK_EXCHANGE, type="direct", durable=True),
            routing_key=QUEUE.name,
            durable=True,
            queue_arguments=QUEUE.arguments(),
        )
    ],
    task_default_queue=QUEUE.name,
    task_default_exchange=topology.TASK_EXCHANGE,
    task_default_routing_key=QUEUE.name,
    task_serializer="json",
    task_ignore_result=True,
    broker_transport_options={"confirm_publish": True},
)


@celery_app.task(name="analyzer.analyze_blog")
def analyze_blog(**payload: Any) -> None:
    """Stands in for the analyzer's task; the benchmark only publishes it."""


class AnalysisRequest(BaseModel):
    blog_url: str


app = FastAPI(title="Celery delay() baseline")


@app.post("/v1/analyses", status_code=status.HTTP_202_ACCEPTED)
def submit_analysis(body: AnalysisRequest) -> dict[str, str]:
    """Queue an analysis the usual way: `delay()` from a threadpool route."""
    job_id = str(uuid.uuid4())
    analyze_blog.apply_async(kwargs={"job_id": job_id, "blog_url": body.blog_url}, task_id=job_id)
    return {"job_id": job_id, "status": "queued"}


@app.post("/noop", status_code=status.HTTP_202_ACCEPTED)
async def noop() -> dict[str, str]:
    """Answer at once: the floor a load generator is measured against."""
    return {"status": "ok"}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
