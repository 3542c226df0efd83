"""Prometheus metrics shared by every worker pool, and multiprocess-mode plumbing.

prometheus_client picks its value store when it is first imported, so process launchers
(services/common/launch.py) set PROMETHEUS_MULTIPROC_DIR before anything imports this module.
"""

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess

TASKS = Counter(
    "offload_tasks_total",
    "Tasks finished, by service, task name and outcome",
    ["service", "task", "outcome"],
)
TASK_RUNTIME = Histogram(
    "offload_task_runtime_seconds",
    "Wall time of one task execution",
    ["service", "task"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
TASK_QUEUE_WAIT = Histogram(
    "offload_task_queue_wait_seconds",
    "Time from the gateway publishing a job to a worker starting it",
    ["service", "task"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900),
)
TASKS_IN_FLIGHT = Gauge(
    "offload_tasks_in_flight",
    "Tasks executing right now",
    ["service", "task"],
    multiprocess_mode="livesum",
)


def registry() -> CollectorRegistry:
    """A registry that reads every process's files in multiprocess mode, else the default."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
        return collected
    from prometheus_client import REGISTRY

    return REGISTRY
