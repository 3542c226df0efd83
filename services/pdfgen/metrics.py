"""Prometheus metrics of the pdfgen domain."""

from prometheus_client import Counter, Histogram

PAGES_RENDERED = Counter("offload_pdfgen_pages_rendered_total", "PDF pages rendered")
CHUNK_DURATION = Histogram(
    "offload_pdfgen_chunk_duration_seconds",
    "Wall time to render and store one chunk",
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)
MERGE_DURATION = Histogram(
    "offload_pdfgen_merge_duration_seconds",
    "Wall time to download, merge and store a report",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600),
)
BYTES_STORED = Counter("offload_pdfgen_bytes_stored_total", "Bytes of finished reports stored")
TASK_PEAK_RSS = Histogram(
    "offload_pdfgen_task_peak_rss_bytes",
    "Peak resident memory while a task ran (the kernel high-water mark, reset per task)",
    ["task"],
    buckets=tuple(mib * 2**20 for mib in (32, 64, 96, 128, 192, 256, 384, 512, 768, 1024)),
)
