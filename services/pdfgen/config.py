"""Pdfgen settings (OFFLOAD_* environment variables)."""

from pydantic import Field

from services.common.config import ServiceSettings
from services.pdfgen import fonts, planning


class PdfgenSettings(ServiceSettings):
    """How reports are laid out, chunked, stored and expired."""

    # Pages one chunk task renders: bounds every render process's memory whatever the size.
    pdf_pages_per_chunk: int = Field(default=100, ge=1, le=5000)
    # Caps on one report: past either, its plan fails at once with report_too_large.
    pdf_max_groups: int = Field(default=planning.MAX_GROUPS, ge=1)
    pdf_max_pages: int = Field(default=planning.MAX_PAGES, ge=1)
    pdf_report_ttl_s: int = Field(default=24 * 3600, ge=60)
    # A pool child above this resident size is replaced after its task (seed 003: 512 MB).
    pdf_max_child_rss_mib: int = Field(default=200, ge=64)
    # The TrueType family reports are set in (services/pdfgen/fonts.py).
    pdf_font_path: str = fonts.DEFAULT_REGULAR_PATH
    pdf_bold_font_path: str = fonts.DEFAULT_BOLD_PATH
    task_soft_time_limit_s: int = 600
    task_time_limit_s: int = 660
