"""Pusher settings (OFFLOAD_* environment variables, plus Google's credentials variable)."""

from typing import Self

from pydantic import Field, model_validator

from services.common.config import ServiceSettings

FCM_PRODUCTION_URL = "https://fcm.googleapis.com"
# RabbitMQ's consumer_timeout (its default, kept in deploy/rabbitmq/rabbitmq.conf): a delivery
# held unacked longer gets its channel closed.
RABBITMQ_CONSUMER_TIMEOUT_S = 1800


class PusherSettings(ServiceSettings):
    """Where pushes go, how fast, and how batches behave."""

    # Unset: real FCM when credentials are configured, else the local sandbox.
    fcm_url: str | None = None
    fcm_project: str = "offload-sandbox"
    google_application_credentials: str | None = Field(
        default=None, alias="GOOGLE_APPLICATION_CREDENTIALS"
    )
    sandbox_host: str = "127.0.0.1"
    sandbox_port: int = 9099
    # Global across every worker process and machine (a shared token bucket in Redis).
    push_rate_per_s: float = Field(default=5000.0, gt=0)
    push_batch_size: int = Field(default=500, ge=1, le=500)
    # Concurrent HTTP requests to FCM from one batch task.
    push_http_concurrency: int = Field(default=50, ge=1)
    push_timeout_s: float = 10.0
    push_max_retries: int = 5
    push_retry_backoff_s: float = 1.0
    # Longest wait before a batch's retry, whatever FCM's Retry-After says. The retry is a new
    # message with an ETA that a worker holds unacked until then and while it runs, so this
    # plus task_time_limit_s must stay below RABBITMQ_CONSUMER_TIMEOUT_S.
    push_retry_delay_max_s: float = Field(default=600.0, gt=0)
    task_soft_time_limit_s: int = 300
    task_time_limit_s: int = 360

    @model_validator(mode="after")
    def _retry_fits_consumer_timeout(self) -> Self:
        held = self.push_retry_delay_max_s + self.task_time_limit_s
        if held >= RABBITMQ_CONSUMER_TIMEOUT_S:
            raise ValueError(
                f"push_retry_delay_max_s + task_time_limit_s is {held:.0f} s; a retried batch must "
                f"be acked within RabbitMQ's consumer timeout, {RABBITMQ_CONSUMER_TIMEOUT_S} s"
            )
        return self

    @property
    def uses_sandbox(self) -> bool:
        """True when pushes go to the local FCM sandbox (no credentials, no URL override)."""
        return self.fcm_url is None and self.google_application_credentials is None

    def fcm_base_url(self) -> str:
        """The FCM base URL the client appends /v1/projects/{project}/messages:send to."""
        if self.fcm_url is not None:
            return self.fcm_url.rstrip("/")
        if self.google_application_credentials is not None:
            return FCM_PRODUCTION_URL
        return f"http://{self.sandbox_host}:{self.sandbox_port}"
