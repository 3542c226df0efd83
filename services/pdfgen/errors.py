"""Pdfgen errors: each carries a stable code; its base class says whether to retry."""

from services.common.errors import BusinessError, OffloadError


class PdfgenError(OffloadError):
    """Base of every failure pdfgen reports."""

    code = "pdfgen_error"


class ReportUnusable(PdfgenError, BusinessError):
    """The report is gone or not in a state this step can work on."""

    code = "report_unusable"


class LayoutError(PdfgenError, BusinessError):
    """The columns cannot fit an A4 page (too many, too wide, bad widths or duplicate keys)."""

    code = "layout_invalid"


class FontMissing(PdfgenError, BusinessError):
    """The configured report font file is missing or not a TrueType font."""

    code = "font_missing"


class ChunkRowsMismatch(PdfgenError, BusinessError):
    """A chunk's rows do not match its plan (too few or too many); the input changed."""

    code = "chunk_rows_mismatch"


class MergeError(PdfgenError, BusinessError):
    """A chunk file is missing, unreadable or has a different page count than planned."""

    code = "merge_failed"


class ReportTooLarge(PdfgenError, BusinessError):
    """The report has more groups or pages than a report may (OFFLOAD_PDF_MAX_GROUPS/PAGES)."""

    code = "report_too_large"
