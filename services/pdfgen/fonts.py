"""The report fonts: one TrueType family, embedded, so Korean (and any text it has glyphs for)
prints as itself rather than as "?" in the standard fonts' cp1252.

The family defaults to Nanum Gothic (Debian's fonts-nanum: Hangul, Latin, common symbols);
`OFFLOAD_PDF_FONT_PATH` and `OFFLOAD_PDF_BOLD_FONT_PATH` name another. reportlab embeds a
subset per document (per chunk here) of only the glyphs it used. Characters the font lacks
draw as its empty "notdef" glyph.
"""

from pathlib import Path

from reportlab.lib.rl_accel import escapePDF
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen.canvas import Canvas

from services.pdfgen.errors import FontMissing

REGULAR = "OffloadSans"
BOLD = "OffloadSans-Bold"
DEFAULT_REGULAR_PATH = "/usr/share/fonts/truetype/nanum/NanumGothic.ttf"
DEFAULT_BOLD_PATH = "/usr/share/fonts/truetype/nanum/NanumGothicBold.ttf"
# reportlab keeps printable ASCII at its own codes in subset 0 (ttfAsciiReadable), once used.
PRINTABLE_ASCII = "".join(map(chr, range(32, 127)))

_registered: tuple[str, str] | None = None


def register(regular_path: str = DEFAULT_REGULAR_PATH, bold_path: str = DEFAULT_BOLD_PATH) -> None:
    """Make REGULAR and BOLD these TrueType files for this process (once; later calls with
    other paths are refused). FontMissing names the file and the remedy."""
    global _registered
    paths = (regular_path, bold_path)
    if _registered == paths:
        return
    if _registered is not None:
        raise FontMissing(f"report fonts are already {_registered}, not {paths}")
    for name, path in ((REGULAR, regular_path), (BOLD, bold_path)):
        if not Path(path).is_file():
            raise FontMissing(
                f"report font {path} does not exist: install Debian's fonts-nanum or set "
                "OFFLOAD_PDF_FONT_PATH and OFFLOAD_PDF_BOLD_FONT_PATH to TrueType files"
            )
        try:
            pdfmetrics.registerFont(TTFont(name, path))
        except TTFError as exc:
            raise FontMissing(f"report font {path} is not a usable TrueType font: {exc}") from exc
    _registered = paths


def ensure_registered() -> None:
    """Register the default family unless a family is registered already."""
    if _registered is None:
        register()


class TextShower:
    """PDF text operators drawing strings in one font on one canvas, subset by subset."""

    def __init__(self, canvas: Canvas, font_name: str, size: float) -> None:
        self._font = pdfmetrics.getFont(font_name)
        self._doc = canvas._doc
        self._size = size
        self._current: str | None = None  # the subset font the last operators selected
        # Put every printable ASCII character in subset 0 at its own code, so ASCII strings
        # (most cells) are written as they are, without reportlab's per-character mapping.
        self._font.splitString(PRINTABLE_ASCII, self._doc)
        self._ascii_font = self._font.getSubsetInternalName(0, self._doc)

    def begin(self) -> str:
        """Start a text object; the canvas may have changed fonts since the last one."""
        self._current = None
        return "BT"

    def show(self, x: float, y: float, text: str) -> list[str]:
        """Operators that draw `text` with its start at (x, y) (inside BT ... ET)."""
        ops = [f"1 0 0 1 {x:.2f} {y:.2f} Tm"]
        if text.isascii() and text.isprintable():
            pieces = [(self._ascii_font, text.encode("ascii"))]
        else:
            pieces = [
                (self._font.getSubsetInternalName(subset, self._doc), encoded)
                for subset, encoded in self._font.splitString(text, self._doc)
            ]
        for font, encoded in pieces:
            if font != self._current:
                ops.append(f"{font} {self._size:g} Tf")
                self._current = font
            ops.append(f"({escapePDF(encoded)}) Tj")
        return ops
