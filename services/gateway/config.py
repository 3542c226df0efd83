"""Gateway settings (OFFLOAD_* environment variables)."""

import re

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.config import DEV_API_KEY, ServiceSettings

# Production refuses keys shorter than this (a random key: `openssl rand -base64 32`).
API_KEY_MIN_LENGTH = 32
# The example values shipped in .env.example and deploy/k8s/secret.example.yaml; production
# refuses them, and any key containing one of PLACEHOLDER_MARKERS (compared lowercase, without
# separators, so CHANGE-ME, change_me and ChangeMe all match).
PLACEHOLDER_API_KEYS = frozenset({DEV_API_KEY, "change-me-api-key", "CHANGE-ME"})
PLACEHOLDER_MARKERS = ("changeme", "example", "placeholder")
KEY_ADVICE = (
    f"every key must be a random value of at least {API_KEY_MIN_LENGTH} characters "
    "(`openssl rand -base64 32`)"
)


class GatewaySettings(ServiceSettings):
    """How the gateway listens, authenticates and talks to the broker."""

    # A refused setting's message must not print the other settings (URLs with passwords).
    model_config = SettingsConfigDict(hide_input_in_errors=True)

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
    # Open GET /v1/jobs/{id}/events streams, per gateway process (each polls Postgres): past
    # either cap a new stream is a 429 with Retry-After (services/gateway/jobs/streams.py).
    sse_max_streams: int = Field(default=100, ge=1)
    sse_max_streams_per_key: int = Field(default=10, ge=1)

    @model_validator(mode="after")
    def _keys_required_outside_development(self) -> "GatewaySettings":
        keys = self._configured_keys()
        if self.environment != "development" and not keys:
            raise ValueError("OFFLOAD_API_KEYS must be set outside development")
        if self.environment == "production":
            for number, key in enumerate(keys, 1):
                problem = weak_key_problem(key)
                if problem is not None:
                    # The key itself is never printed: the message reaches logs.
                    raise ValueError(
                        f"OFFLOAD_API_KEYS: key {number} of {len(keys)} {problem}; in production "
                        f"{KEY_ADVICE}"
                    )
        return self

    def accepted_keys(self) -> frozenset[str]:
        """The accepted bearer keys; the development key when none are configured in development."""
        keys = frozenset(self._configured_keys())
        if not keys and self.environment == "development":
            return frozenset({DEV_API_KEY})
        return keys

    def _configured_keys(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]


def weak_key_problem(key: str) -> str | None:
    """Why production refuses this API key (a placeholder, too short), or None."""
    if key == DEV_API_KEY:
        return "is the development key"
    folded = re.sub(r"[^a-z0-9]", "", key.lower())
    if key in PLACEHOLDER_API_KEYS or any(marker in folded for marker in PLACEHOLDER_MARKERS):
        return "is a placeholder (an example value)"
    if len(key) < API_KEY_MIN_LENGTH:
        return f"has {len(key)} characters"
    return None
