"""Settings every Offload service shares; each service subclasses this with its own fields."""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_API_KEY = "dev-key-change-me"
# Distinct columns (keys) one upload may bring (services/common/rowfiles.py).
UPLOAD_MAX_COLUMNS = 1000


def default_storage_url() -> str:
    """`var/storage` under the working directory (the repository for `make run` and tests)."""
    return (Path.cwd() / "var" / "storage").as_uri()


class ServiceSettings(BaseSettings):
    """Connection URLs and runtime switches, read from OFFLOAD_* environment variables."""

    model_config = SettingsConfigDict(env_prefix="OFFLOAD_", extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/offload"
    log_level: str = "INFO"
    log_json: bool = True
    sentry_dsn: SecretStr | None = None
    # Where prefork pools keep prometheus_client's per-process files.
    prometheus_multiproc_dir: str | None = Field(default=None, alias="PROMETHEUS_MULTIPROC_DIR")
    metrics_port: int = 0
    # Celery's soft limit (the task can clean up) and hard limit (the child is killed).
    task_soft_time_limit_s: int = 60
    task_time_limit_s: int = 90
    metrics_bind: str = "127.0.0.1"
    # Uploads and reports: file:///abs/dir or s3://bucket/prefix. S3 credentials come from the
    # standard AWS variables (AWS_ACCESS_KEY_ID, ...) or boto3's chain, never from here.
    storage_url: str = Field(default_factory=default_storage_url)
    s3_endpoint_url: str | None = None  # MinIO or another S3 API; None for AWS
    s3_region: str = "us-east-1"
    # Where clients reach the same S3 API, when not at s3_endpoint_url (download links are
    # signed for this address); None: links use s3_endpoint_url.
    s3_public_endpoint_url: str | None = None
    # Uploads (POST /v1/uploads) can be used for new reports this long; pdfgen deletes them
    # after it (services/common/rowfiles.py).
    upload_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    # An upload whose rows bring more distinct keys than this is refused (422, nothing kept)
    # as soon as a line passes it; a report cannot use an upload wider than this.
    upload_max_columns: int = Field(default=UPLOAD_MAX_COLUMNS, ge=1)
    # A worker pool touches this file every heartbeat_interval_s while it consumes from the
    # broker, beat while it publishes; `python -m services.ops.healthcheck` reads its age.
    # Unset: offload-worker.heartbeat or offload-beat.heartbeat in the temp directory.
    heartbeat_file: str | None = None
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    # A Redis command (or connection) that takes longer failed: Redis counts as unreachable.
    redis_timeout_s: float = Field(default=2.0, gt=0)
    # How long a worker waits for a pooled Postgres connection before it counts the database
    # as unreachable (its message then goes back to the queue).
    db_pool_timeout_s: float = Field(default=10.0, gt=0)
    # How long a worker that could not start a job (a dependency is down) waits before it puts
    # the message back, so an outage does not spin the queue.
    dependency_pause_s: float = Field(default=2.0, ge=0)

    @model_validator(mode="after")
    def _refuse_guest_broker_in_production(self) -> "ServiceSettings":
        if self.environment == "production" and "guest:guest@" in self.amqp_url:
            raise ValueError("OFFLOAD_AMQP_URL uses the guest account; set real credentials")
        return self
