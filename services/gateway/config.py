"""Gateway settings (OFFLOAD_* environment variables)."""

from pydantic import Field, model_validator

from services.common.config import DEV_API_KEY, ServiceSettings


class GatewaySettings(ServiceSettings):
    """How the gateway listens, authenticates and talks to the broker."""

    # Comma-separated bearer keys. Required outside development; the dev key is refused there.
    api_keys: str = ""
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    gateway_workers: int = 1
    # A publish not confirmed within this time answers 503 (well inside the 2 s promise).
    publish_timeout_s: float = 1.5
    retry_after_s: int = 5
    idempotency_ttl_s: int = Field(default=24 * 3600, ge=1)
    # How often each gateway process deletes idempotency keys past their TTL.
    idempotency_purge_interval_s: float = Field(default=600, gt=0)
    db_pool_max: int = Field(default=16, ge=1)
    amqp_channels: int = Field(default=4, ge=1)
    # The outbox relay (services/gateway/jobs/outbox.py): every outbox_interval_s, each gateway
    # process publishes jobs recorded more than outbox_grace_s ago and still unpublished.
    outbox_grace_s: float = Field(default=10.0, gt=0)
    outbox_interval_s: float = Field(default=2.0, gt=0)
    # How long a running analysis answers for repeated submissions of the same blog.
    analysis_inflight_ttl_s: int = 15 * 60
    # Request body limits (services/gateway/limits.py): 413 past them, before the body is read
    # when Content-Length says so, else as soon as the bytes received pass the limit.
    # Any route not given its own: a JSON body is held whole while it is parsed.
    body_max_bytes: int = Field(default=1024**2, ge=1)
    # POST /v1/reports: a spec with up to 10,000 inline rows.
    report_body_max_bytes: int = Field(default=8 * 1024**2, ge=1)
    # POST /v1/uploads answers 413 (and keeps nothing) past this many bytes.
    upload_max_bytes: int = Field(default=2 * 1024**3, ge=1)
    # POST /v1/devices/import: read line by line, so this bounds the work, not the memory.
    device_import_max_bytes: int = Field(default=1024**3, ge=1)

    @model_validator(mode="after")
    def _keys_required_outside_development(self) -> "GatewaySettings":
        keys = self.accepted_keys()
        if self.environment != "development":
            if not keys:
                raise ValueError("OFFLOAD_API_KEYS must be set outside development")
            if self.environment == "production" and DEV_API_KEY in keys:
                raise ValueError("OFFLOAD_API_KEYS contains the development key")
        return self

    def accepted_keys(self) -> frozenset[str]:
        """The accepted bearer keys; the development key when none are configured in development."""
        keys = frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())
        if not keys and self.environment == "development":
            return frozenset({DEV_API_KEY})
        return keys
