"""The gateway application: `create_app(settings)` builds it; the lifespan owns the clients."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from services.common import logs
from services.common.storage import storage_from_settings
from services.gateway.analyses.service import AnalysisAdmission
from services.gateway.api import analyses, campaigns, devices, health, jobs, reports, uploads
from services.gateway.campaigns.service import CampaignService
from services.gateway.config import GatewaySettings
from services.gateway.deps import Clients
from services.gateway.devices.service import DeviceRegistry
from services.gateway.errors import (
    GatewayError,
    NoValidRows,
    handle_gateway_error,
    handle_no_valid_rows,
)
from services.gateway.janitor import Janitor
from services.gateway.jobs.admission import Admission
from services.gateway.jobs.idempotency import IdempotencyKeys
from services.gateway.jobs.outbox import OutboxRelay
from services.gateway.jobs.service import JobService
from services.gateway.jobs.streams import StreamLimiter
from services.gateway.messaging.publisher import Publisher
from services.gateway.middleware import RequestContextMiddleware, RequestGuardMiddleware
from services.gateway.reports.service import ReportService
from services.gateway.uploads.service import UploadStore

log = logging.getLogger(__name__)

DESCRIPTION = """
Offload takes heavy work off web request paths. Submit a job, get its id in milliseconds
(after the broker has confirmed it), then poll `GET /v1/jobs/{job_id}`.

Every route but the operational ones needs `Authorization: Bearer <key>`; without it the
answer is a 401 before any of the body is read. Request bodies are limited: 1 MiB by default,
more for report specs, uploads and device imports (deployment settings `OFFLOAD_*_MAX_BYTES`);
a larger body is a 413. POSTs that create jobs accept an `Idempotency-Key` header. Every
response carries `X-Request-ID`.
"""


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """Build the gateway for `settings` (read from the environment when omitted)."""
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            settings.database_url,
            min_size=2,
            max_size=settings.db_pool_max,
            open=False,
            kwargs={"autocommit": True},
            name="offload-gateway",
        )
        await pool.open()
        publisher = Publisher(
            settings.amqp_url,
            channels=settings.amqp_channels,
            timeout_s=settings.publish_timeout_s,
            retry_after_s=settings.retry_after_s,
        )
        await publisher.start()
        redis_client: aioredis.Redis = aioredis.Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
        )
        job_service = JobService(pool)
        admission = Admission(pool, publisher, job_service)
        storage = storage_from_settings(settings)
        app.state.clients = Clients(
            settings=settings,
            jobs=job_service,
            admission=admission,
            analyses=AnalysisAdmission(
                redis_client,
                admission,
                job_service,
                settings.analysis_inflight_ttl_s,
                settings.retry_after_s,
            ),
            publisher=publisher,
            redis=redis_client,
            devices=DeviceRegistry(pool),
            campaigns=CampaignService(pool),
            reports=ReportService(pool),
            storage=storage,
            uploads=UploadStore(
                storage,
                settings.upload_max_bytes,
                settings.upload_ttl_s,
                settings.upload_max_columns,
            ),
            streams=StreamLimiter(
                settings.sse_max_streams, settings.sse_max_streams_per_key, settings.retry_after_s
            ),
        )
        janitor = Janitor(
            IdempotencyKeys(pool),
            ttl_s=settings.idempotency_ttl_s,
            interval_s=settings.idempotency_purge_interval_s,
        )
        janitor.start()
        relay = OutboxRelay(
            pool,
            publisher,
            grace_s=settings.outbox_grace_s,
            interval_s=settings.outbox_interval_s,
        )
        relay.start()
        log.info("gateway ready on port %d, storage %r", settings.gateway_port, storage)
        try:
            yield
        finally:
            await relay.close()
            await janitor.close()
            await publisher.close()
            await admission.close()
            await redis_client.aclose()
            await pool.close()

    app = FastAPI(
        title="Offload gateway", version="0.1.0", description=DESCRIPTION, lifespan=lifespan
    )
    # The last added runs first: request ids and metrics cover the guard's 401s and 413s too.
    app.add_middleware(RequestGuardMiddleware, settings=settings)
    app.add_middleware(RequestContextMiddleware)
    app.add_exception_handler(GatewayError, handle_gateway_error)
    app.add_exception_handler(NoValidRows, handle_no_valid_rows)
    app.include_router(health.router)
    app.include_router(analyses.router)
    app.include_router(jobs.router)
    app.include_router(devices.router)
    app.include_router(campaigns.router)
    app.include_router(reports.router)
    app.include_router(uploads.router)
    return app


def app_from_env() -> FastAPI:
    """Uvicorn factory (`--factory services.gateway.app:app_from_env`)."""
    settings = GatewaySettings()
    logs.configure("gateway", settings.log_level, settings.log_json)
    return create_app(settings)
