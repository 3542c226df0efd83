"""Liveness, readiness and metrics: open to every caller (no API key)."""

import asyncio

import psycopg
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import PoolTimeout
from redis.exceptions import RedisError

from services.common.metrics import registry
from services.gateway.deps import ClientsDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


# Without these no job can be accepted; without Redis only analyses are refused (503), so a
# Redis outage shows as degraded and keeps the gateway in service for everything else.
REQUIRED = ("broker", "database")


@router.get("/readyz")
async def readyz(clients: ClientsDep) -> JSONResponse:
    """Ready (200) while broker and database answer; `checks` and `degraded` say what is down."""
    checks = {"broker": clients.publisher.ready}
    try:
        await asyncio.wait_for(clients.jobs.ping(), timeout=1)
        checks["database"] = True
    except (OSError, TimeoutError, psycopg.Error, PoolTimeout):
        checks["database"] = False
    try:
        checks["redis"] = bool(await asyncio.wait_for(clients.redis.ping(), timeout=1))
    except (OSError, TimeoutError, RedisError):
        checks["redis"] = False
    ready = all(checks[name] for name in REQUIRED)
    degraded = sorted(name for name, ok in checks.items() if not ok)
    return JSONResponse(
        {"ready": ready, "checks": checks, "degraded": degraded},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus exposition of the gateway's metrics."""
    return Response(generate_latest(registry()), media_type=CONTENT_TYPE_LATEST)
