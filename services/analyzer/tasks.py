"""Analyzer tasks: thin wrappers that validate the payload and call the domain."""

from typing import Any

from services.analyzer.analysis import analyze
from services.analyzer.worker import app, settings
from services.common.contracts.analysis import ANALYZE_BLOG, JOB_KIND, AnalyzeBlog
from services.common.worker.jobtask import JobTask
from services.common.worker.resources import resources


class AnalyzerTask(JobTask):
    abstract = True
    retry_backoff_s = float(settings.retry_backoff_s)
    max_retries = settings.max_retries


@app.task(bind=True, base=AnalyzerTask, name=ANALYZE_BLOG.name)
def analyze_blog(self: AnalyzerTask, **payload: Any) -> None:
    """Crawl a blog and store its blogger score as the job's result."""
    request = AnalyzeBlog.model_validate(payload)
    self.run_job(request.job_id, lambda job: analyze(request, job, settings, resources(settings)))


@app.task(name="analyzer.sweep_stale_jobs")
def sweep_stale_jobs() -> int:
    """Fail analysis jobs whose worker died without a trace (periodic, from beat)."""
    stale_after = settings.task_time_limit_s + 60
    return len(resources(settings).jobs.sweep(JOB_KIND, stale_after))
