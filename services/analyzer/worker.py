"""The analyzer's Celery app: consumes only the `analyzer` queue."""

from services.analyzer.config import AnalyzerSettings
from services.common.worker.app import worker_app

settings = AnalyzerSettings()
app = worker_app("analyzer", settings, tasks_module="services.analyzer.tasks")
