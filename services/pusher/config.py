"""Pusher settings (OFFLOAD_* environment variables, plus Google's credentials variable)."""

from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.config import ServiceSettings

FCM_PRODUCTION_URL = "https://fcm.googleapis.com"
# RabbitMQ's consumer_timeout (its default, kept in deploy/rabbitmq/rabbitmq.conf): on 3.x a
# delivery held unacked longer gets its channel closed (4.3 no longer applies it to classic
# queues; the bound still keeps a held retry short).
RABBITMQ_CONSUMER_TIMEOUT_S = 1800


class PusherSettings(ServiceSettings):
    """Where pushes go, how fast, and how batches behave."""

    # A refused setting's message must not print the other settings (URLs with passwords).
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    # Unset: real FCM when credentials are configured, else the local sandbox.
    fcm_url: str | None = None
    # Unset: the project of the credentials (the sandbox's own name without credentials).
    fcm_project: str = "offload-sandbox"
    # How the pusher gets FCM access tokens (credentials_source): `file`, the service-account
    # key at GOOGLE_APPLICATION_CREDENTIALS; `adc`, Google's application-default credentials
    # (workload identity, the metadata server, gcloud, or that same variable). Unset: `file`
    # when GOOGLE_APPLICATION_CREDENTIALS is set, else none (the sandbox).
    fcm_credentials: Literal["file", "adc"] | None = None
    # Send to the FCM sandbox, which reaches no device. Production refuses to run without
    # credentials unless this is true.
    fcm_sandbox: bool = False
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

    @model_validator(mode="after")
    def _fcm_credentials_chosen(self) -> Self:
        configured = self.fcm_credentials is not None or self.google_application_credentials
        if self.fcm_sandbox and configured:
            raise ValueError(
                "OFFLOAD_FCM_SANDBOX=true sends to the FCM sandbox, but FCM credentials are "
                "configured (OFFLOAD_FCM_CREDENTIALS or GOOGLE_APPLICATION_CREDENTIALS): unset "
                "one of them"
            )
        if self.fcm_credentials == "file" and self.google_application_credentials is None:
            raise ValueError(
                "OFFLOAD_FCM_CREDENTIALS=file needs GOOGLE_APPLICATION_CREDENTIALS, the path of "
                "a service-account key file"
            )
        if (
            self.environment == "production"
            and self.credentials_source == "sandbox"
            and not self.fcm_sandbox
        ):
            raise ValueError(
                "no FCM credentials in production: campaigns would go to the FCM sandbox and "
                "reach no device. Set GOOGLE_APPLICATION_CREDENTIALS to a service-account key "
                "file, or OFFLOAD_FCM_CREDENTIALS=adc for application-default credentials; "
                "OFFLOAD_FCM_SANDBOX=true if the sandbox is what you want"
            )
        return self

    @property
    def credentials_source(self) -> Literal["file", "adc", "sandbox"]:
        """Where FCM access tokens come from: a key file, application-default credentials, or
        nowhere (the sandbox's fixed token)."""
        if self.fcm_credentials is not None:
            return self.fcm_credentials
        if self.google_application_credentials is not None:
            return "file"
        return "sandbox"

    @property
    def uses_sandbox(self) -> bool:
        """True when pushes go to the local FCM sandbox (no credentials, no URL override)."""
        return self.fcm_url is None and self.credentials_source == "sandbox"

    def fcm_base_url(self) -> str:
        """The FCM base URL the client appends /v1/projects/{project}/messages:send to."""
        if self.fcm_url is not None:
            return self.fcm_url.rstrip("/")
        if self.credentials_source != "sandbox":
            return FCM_PRODUCTION_URL
        return f"http://{self.sandbox_host}:{self.sandbox_port}"
