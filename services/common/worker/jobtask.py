"""The base of every job task: start, progress, cancel, retry with backoff, dead-letter.

A task body validates its payload and hands a plain function to `run_job`; everything a job
needs around that function (status transitions, cancellation that sticks, retries for
transient errors only, dead-lettering with a reason, poison-message detection) lives here.
What a failure means is its error class's policy (services.common.errors).
"""

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NoReturn, cast
from uuid import UUID

from celery import Task
from celery.exceptions import Reject, Retry, SoftTimeLimitExceeded

from services.common import metrics
from services.common.backoff import backoff_delay
from services.common.config import ServiceSettings
from services.common.contracts import TaskPayload
from services.common.errors import DEPENDENCY_ERRORS, BusinessError, OffloadError, TransientError
from services.common.jobs import StartOutcome
from services.common.worker.deadletter import dead_letter
from services.common.worker.resources import Resources, resources
from services.common.worker.signals import header

log = logging.getLogger(__name__)

# A message whose delivery killed its worker this many times is dead-lettered, not run again.
MAX_WORKER_KILLS = 3
# What is retried with backoff when the work raises it: its own transient errors, and a
# dependency that stopped answering while the job ran.
RETRIED: tuple[type[Exception], ...] = (TransientError, *DEPENDENCY_ERRORS)
# The gateway records a job before it publishes it, so a missing row is a job discarded after
# its publish failed; a moment's wait covers jobs recorded by a gateway that predates that order.
JOB_ROW_WAIT_S = 5.0


class JobCancelled(Exception):
    """The job was cancelled while its task was running."""


class JobContext:
    """What the domain function sees of its job: its id and a way to report progress."""

    def __init__(self, job_id: UUID, res: Resources, min_interval_s: float = 0.5) -> None:
        self.job_id = job_id
        self._res = res
        self._min_interval_s = min_interval_s
        self._last_write = 0.0

    def progress(self, done: int, total: int) -> None:
        """Record progress (throttled); raises JobCancelled once the job was cancelled."""
        now = time.monotonic()
        if done < total and now - self._last_write < self._min_interval_s:
            return
        self._last_write = now
        if not self._res.jobs.progress(self.job_id, done, total):
            raise JobCancelled(str(self.job_id))


class JobTask(Task):  # type: ignore[misc]
    """Celery task base for tasks that carry a job id."""

    abstract = True
    retry_backoff_s: ClassVar[float] = 10.0

    @property
    def settings(self) -> ServiceSettings:
        settings: ServiceSettings = self.app.conf["offload_settings"]
        return settings

    @property
    def service(self) -> str:
        return str(self.app.main).removeprefix("offload-")

    def run_job(
        self,
        job_id: UUID,
        work: Callable[[JobContext], Mapping[str, Any] | None],
        *,
        settle: bool = True,
    ) -> Mapping[str, Any] | None:
        """Run `work` for the job; on success settle it unless other tasks will (fan-out)."""
        res = resources(self.settings)
        try:
            if self._killed_too_often(res, job_id):
                return None
            outcome = self._start(res, job_id)
        except DEPENDENCY_ERRORS as exc:
            self._put_back(res, exc)
        if outcome is not StartOutcome.STARTED:
            log.info("job not started: %s", outcome)
            self._count("skipped")
            return None
        try:
            result = work(JobContext(job_id, res))
        except JobCancelled:
            log.info("job cancelled while running")
            self._count("cancelled")
            return None
        except Retry:
            raise  # the task asked Celery to run it again later
        except RETRIED as exc:
            self._retry_or_give_up(res, job_id, exc)
            return None
        except BusinessError as exc:
            res.jobs.fail(job_id, exc.code, str(exc))
            log.info("job failed: %s: %s", exc.code, exc)
            self._count("failed")
            return None
        except SoftTimeLimitExceeded as exc:
            self._give_up(res, job_id, "timeout", f"soft time limit exceeded: {exc}")
            return None
        except Exception as exc:
            code = exc.code if isinstance(exc, OffloadError) else "internal_error"
            self._give_up(res, job_id, code, f"{type(exc).__name__}: {exc}")
            raise
        if not settle:
            self._count("succeeded")
            return result
        try:
            settled = res.jobs.succeed(job_id, result or {})
        except DEPENDENCY_ERRORS as exc:
            self._put_back(res, exc)  # the work is idempotent: it runs again once recorded
        if settled:
            self._count("succeeded")
        else:
            log.info("job was settled elsewhere (cancelled?) before it succeeded")
            self._count("cancelled")
        return result

    def publish(self, task: Task, payload: TaskPayload, **options: Any) -> None:
        """Publish `task` with `payload`, carrying this task's request id along."""
        task.apply_async(
            kwargs=payload.model_dump(mode="json"),
            headers={"offload_request_id": header(self, "offload_request_id")},
            **options,
        )

    def retry_in(self, delay_s: float | None) -> None:
        """Run this task again in `delay_s` (the domain asked for it); nothing when None."""
        if delay_s is not None:
            raise self.retry(countdown=delay_s)

    def _start(self, res: Resources, job_id: UUID) -> StartOutcome:
        deadline = time.monotonic() + JOB_ROW_WAIT_S
        while True:
            outcome = res.jobs.start(job_id)
            if outcome is not StartOutcome.MISSING or time.monotonic() > deadline:
                return outcome
            time.sleep(0.05)

    def _put_back(self, res: Resources, exc: Exception) -> NoReturn:
        """Requeue this message unacked: a dependency is down, nothing is wrong with the job."""
        with contextlib.suppress(*DEPENDENCY_ERRORS):
            res.redis.decr(self._deliveries_key())  # an outage is not a killed worker
        log.warning(
            "dependency unavailable, message put back in %.1f s: %s: %s",
            self.settings.dependency_pause_s,
            type(exc).__name__,
            exc,
        )
        self._count("requeued")
        time.sleep(self.settings.dependency_pause_s)  # an outage must not spin the queue
        raise Reject(exc, requeue=True)

    def _deliveries_key(self) -> str:
        return f"offload:deliveries:{self.request.id}:{self.request.retries or 0}"

    def _killed_too_often(self, res: Resources, job_id: UUID) -> bool:
        key = self._deliveries_key()
        deliveries = cast(int, res.redis.incr(key))
        res.redis.expire(key, 24 * 3600)
        if deliveries <= MAX_WORKER_KILLS:
            return False
        reason = f"message killed its worker {deliveries - 1} times"
        self._give_up(res, job_id, "poison_message", reason)
        return True

    def _retry_or_give_up(self, res: Resources, job_id: UUID, exc: BaseException) -> None:
        retries = self.request.retries or 0
        if retries >= self.max_retries:
            self._give_up(
                res,
                job_id,
                "retries_exhausted",
                f"{type(exc).__name__} after {retries + 1} attempts: {exc}",
            )
            return
        delay = backoff_delay(retries, self.retry_backoff_s)
        try:
            res.jobs.retry_scheduled(job_id, delay, str(exc))
        except DEPENDENCY_ERRORS as unrecorded:  # the retry still goes out
            log.warning("retry not recorded on the job: %s", unrecorded)
        log.warning("transient failure, retry %d in %.1f s: %s", retries + 1, delay, exc)
        self._count("retried")
        raise self.retry(exc=exc, countdown=delay)

    def _give_up(self, res: Resources, job_id: UUID, code: str, message: str) -> None:
        try:
            res.jobs.fail(job_id, code, message)
        except DEPENDENCY_ERRORS as unrecorded:  # the dead letter still keeps the message
            log.warning("job failure not recorded: %s", unrecorded)
        dead_letter(self, reason=code, error=message)
        self._count("dead_lettered")

    def _count(self, outcome: str) -> None:
        metrics.TASKS.labels(self.service, self.name, outcome).inc()
