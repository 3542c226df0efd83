"""Pdfgen errors: each carries a stable code and whether retrying the work can help."""


class PdfgenError(Exception):
    """Base of every failure pdfgen reports."""

    code: str = "pdfgen_error"
    retryable: bool = False
    http_status: int = 500


class LayoutError(PdfgenError):
    """The columns cannot fit an A4 page (too many, too wide, bad widths or duplicate keys)."""

    code = "layout_invalid"
    http_status = 422


class FontMissing(PdfgenError):
    """The configured report font file is missing or not a TrueType font."""

    code = "font_missing"


class ChunkRowsMismatch(PdfgenError):
    """A chunk's rows do not match its plan (too few or too many); the input changed."""

    code = "chunk_rows_mismatch"


class MergeError(PdfgenError):
    """A chunk file is missing, unreadable or has a different page count than planned."""

    code = "merge_failed"
