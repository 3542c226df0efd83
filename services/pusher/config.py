"""Pusher settings (OFFLOAD_* environment variables, plus Google's credentials variable)."""

from pydantic import Field

from services.common.config import ServiceSettings

FCM_PRODUCTION_URL = "https://fcm.googleapis.com"


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
    task_soft_time_limit_s: int = 300
    task_time_limit_s: int = 360

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
