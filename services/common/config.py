"""Settings every Offload service shares; each service subclasses this with its own fields."""

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_API_KEY = "dev-key-change-me"


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
    metrics_bind: str = "127.0.0.1"

    @model_validator(mode="after")
    def _refuse_guest_broker_in_production(self) -> "ServiceSettings":
        if self.environment == "production" and "guest:guest@" in self.amqp_url:
            raise ValueError("OFFLOAD_AMQP_URL uses the guest account; set real credentials")
        return self
