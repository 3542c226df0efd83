"""Dependencies routes declare with Annotated aliases: clients, auth, idempotency."""

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.common.storage import Storage
from services.gateway.analyses.service import AnalysisAdmission
from services.gateway.campaigns.service import CampaignService
from services.gateway.config import GatewaySettings
from services.gateway.devices.service import DeviceRegistry
from services.gateway.errors import Unauthorized
from services.gateway.jobs.admission import Admission
from services.gateway.jobs.idempotency import Idempotency, request_hash
from services.gateway.jobs.service import JobService
from services.gateway.jobs.streams import StreamLimiter
from services.gateway.messaging.publisher import Publisher
from services.gateway.reports.service import ReportService
from services.gateway.uploads.service import UploadStore


@dataclass(frozen=True)
class Clients:
    """What the lifespan opened; lives on app.state.clients."""

    settings: GatewaySettings
    jobs: JobService
    admission: Admission
    analyses: AnalysisAdmission
    campaigns: CampaignService
    reports: ReportService
    publisher: Publisher
    redis: "aioredis.Redis"
    devices: DeviceRegistry
    storage: Storage
    uploads: UploadStore
    streams: StreamLimiter


async def _clients(request: Request) -> Clients:
    clients: Clients = request.app.state.clients
    return clients


ClientsDep = Annotated[Clients, Depends(_clients)]


def bearer_key(authorization: str | None, accepted: frozenset[str]) -> str:
    """The key of an `Authorization: Bearer <key>` header; Unauthorized (401) unless accepted.

    The one key check: the ApiKey dependency and the request guard (middleware.py) both call it.
    """
    scheme, _, key = (authorization or "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    offered = key.encode()
    if not any(hmac.compare_digest(offered, k.encode()) for k in accepted):
        raise Unauthorized("invalid bearer token", headers={"WWW-Authenticate": "Bearer"})
    return key


# Declares the scheme in OpenAPI; bearer_key reads the header itself.
_bearer = HTTPBearer(auto_error=False, description="An API key from OFFLOAD_API_KEYS")


async def _api_key(
    request: Request,
    clients: ClientsDep,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    return bearer_key(request.headers.get("authorization"), clients.settings.accepted_keys())


ApiKey = Annotated[str, Depends(_api_key)]


async def _valid_job(job_id: str, clients: ClientsDep, _: ApiKey) -> dict[str, Any]:
    """The job row named in the path (after auth); JobNotFound (404) before any response."""
    return await clients.jobs.get(job_id)


JobRow = Annotated[dict[str, Any], Depends(_valid_job)]


def key_scope(api_key: str) -> str:
    """The idempotency scope of an API key (a hash; keys are never stored)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Same key (per API key) within 24 h returns the same job",
    ),
]


def idempotency_for(
    clients: Clients, api_key: str, header: str | None, payload: dict[str, Any]
) -> Idempotency | None:
    """The request's Idempotency-Key (scoped to its API key), or None without the header."""
    if header is None:
        return None
    return Idempotency(
        key_scope(api_key), header, request_hash(payload), clients.settings.idempotency_ttl_s
    )
