"""Celery signal handlers shared by every pool: metrics, log context, per-process cleanup."""

import logging
import os
import time
from typing import Any

from celery import Celery, signals
from celery.app.task import Task
from prometheus_client import multiprocess, start_http_server

from services.common import logs, metrics
from services.common.worker import resources

log = logging.getLogger(__name__)

_started: dict[str, float] = {}
_log_tokens: dict[str, Any] = {}


def header(task: Task, name: str) -> Any:
    """A custom message header of the running task (Celery copies them onto the request)."""
    value = getattr(task.request, name, None)
    if value is None and isinstance(task.request.headers, dict):
        value = task.request.headers.get(name)
    return value


def _service(task: Task) -> str:
    return str(task.app.main or "offload").removeprefix("offload-")


@signals.task_prerun.connect
def _task_prerun(task_id: str, task: Task, **_: Any) -> None:
    service, name = _service(task), task.name
    _started[task_id] = time.monotonic()
    metrics.TASKS_IN_FLIGHT.labels(service, name).inc()
    published_at = header(task, "offload_published_at")
    if published_at is not None and not task.request.retries:
        metrics.TASK_QUEUE_WAIT.labels(service, name).observe(
            max(0.0, time.time() - float(published_at))
        )
    job_id = (task.request.kwargs or {}).get("job_id")
    context = logs.bound(
        task_id=task_id,
        job_id=str(job_id) if job_id else None,
        request_id=header(task, "offload_request_id"),
    )
    context.__enter__()
    _log_tokens[task_id] = context


@signals.task_postrun.connect
def _task_postrun(task_id: str, task: Task, **_: Any) -> None:
    service, name = _service(task), task.name
    metrics.TASKS_IN_FLIGHT.labels(service, name).dec()
    started = _started.pop(task_id, None)
    if started is not None:
        metrics.TASK_RUNTIME.labels(service, name).observe(time.monotonic() - started)
    context = _log_tokens.pop(task_id, None)
    if context is not None:
        context.__exit__(None, None, None)


@signals.worker_process_shutdown.connect
def _child_exit(**_: Any) -> None:
    resources.close()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def serve_metrics(app: Celery, port: int, bind: str) -> None:
    """Expose every pool process's metrics from the main worker process on `port`."""

    @signals.worker_init.connect(weak=False)
    def _start(sender: Any = None, **_: Any) -> None:
        if not port:
            return
        try:
            start_http_server(port, addr=bind, registry=metrics.registry())
        except OSError as exc:
            # Celery logs and swallows a signal handler's exception; a pool that runs on without
            # its metrics (or while another process answers on its port) must not start at all.
            log.critical("cannot serve metrics on %s:%d: %s", bind, port, exc)
            raise SystemExit(f"cannot serve metrics on {bind}:{port}: {exc}") from exc
        log.info("worker metrics on port %d", port)
