"""`python -m services.gateway`: serve the gateway with uvicorn."""

import uvicorn

from services.common import logs
from services.common.launch import init_sentry, prepare_metrics_dir
from services.gateway.config import GatewaySettings

if __name__ == "__main__":
    settings = GatewaySettings()
    # Several workers share metrics through files; a configured directory (the image sets one)
    # is emptied on every start so a restarted container does not add its predecessor's counts.
    if settings.gateway_workers > 1 or settings.prometheus_multiproc_dir:
        prepare_metrics_dir(settings, "gateway")
    logs.configure("gateway", settings.log_level, settings.log_json)
    init_sentry(settings, "gateway")
    uvicorn.run(
        "services.gateway.app:app_from_env",
        factory=True,
        host=settings.gateway_host,
        port=settings.gateway_port,
        workers=settings.gateway_workers,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
