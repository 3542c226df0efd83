"""The pusher's Celery app: consumes pusher.bulk and/or pusher.urgent (one pool for each)."""

from services.common.worker.app import worker_app
from services.pusher.config import PusherSettings

settings = PusherSettings()
app = worker_app("pusher", settings, tasks_module="services.pusher.tasks")
