"""`python -m services.fcm_sandbox`: serve the FCM sandbox on the configured host and port."""

import logging

import uvicorn

from services.common import logs
from services.fcm_sandbox.app import create_app
from services.pusher.config import PusherSettings

if __name__ == "__main__":
    settings = PusherSettings()
    logs.configure("fcm-sandbox", settings.log_level, settings.log_json)
    logging.getLogger(__name__).info(
        "FCM sandbox on http://%s:%d", settings.sandbox_host, settings.sandbox_port
    )
    uvicorn.run(
        create_app(),
        host=settings.sandbox_host,
        port=settings.sandbox_port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        date_header=False,
        backlog=4096,
        timeout_keep_alive=30,
    )
