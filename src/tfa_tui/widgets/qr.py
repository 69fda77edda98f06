"""A QR code drawn with Unicode half blocks: two modules per character cell.

Dark modules are painted black on an explicitly white background, so the code scans the
same on dark and light terminal themes.
"""

from __future__ import annotations

import qrcode  # type: ignore[import-untyped]
from qrcode.constants import ERROR_CORRECT_L  # type: ignore[import-untyped]
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

# The spec asks for a quiet zone of 4 modules. With 4, a typical `otpauth://` URI
# (version 4, 33 modules) would need 41 modules = 21 rows, which leaves no room for the
# manual key at 80x24. With 2 the code is 37x19 cells. The zone is drawn in explicit
# white, and the common decoders (ZXing in Google Authenticator, ML Kit, iOS Vision,
# ZBar) find the finder patterns with 2 modules of margin.
DEFAULT_BORDER = 2

# (top is dark, bottom is dark) -> glyph; the glyph's ink is the foreground colour.
GLYPHS = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}

# Explicit colours: ink (the glyphs) is the dark module colour, paper the light one.
DARK_ON_LIGHT = Style(color="#000000", bgcolor="#ffffff")


def qr_matrix(data: str, *, border: int = DEFAULT_BORDER) -> list[list[bool]]:
    """The module matrix (True = dark) including `border` light modules on every side.

    Error correction L and the smallest version that holds `data`: an authenticator URI is
    shown on a screen, not printed on a crumpled label, so size matters more than redundancy.
    """
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_L, border=border)
    code.add_data(data)
    code.make(fit=True)
    return [[bool(module) for module in row] for row in code.get_matrix()]


def render_half_blocks(matrix: list[list[bool]], *, inverted: bool = False) -> list[str]:
    """One text row per two module rows; an odd last row is paired with a light row.

    Normally a glyph's ink stands for dark modules (drawn black on white). With `inverted`
    the ink stands for light modules instead, for terminals whose own colours are used.
    """
    width = len(matrix[0]) if matrix else 0
    rows = [*matrix, [False] * width] if len(matrix) % 2 else matrix
    return [
        "".join(
            GLYPHS[top != inverted, bottom != inverted]
            for top, bottom in zip(upper, lower, strict=True)
        )
        for upper, lower in zip(rows[::2], rows[1::2], strict=True)
    ]


class QrCode(Widget):
    """Shows `data` as a QR code, exactly as large as the code (width: auto; height: auto).

    Colours: black ink on white paper, set explicitly, whatever the theme. Under NO_COLOR,
    Textual normally converts colours to greys (black and white survive, nothing changes
    here); but with an ANSI theme it drops every colour and the terminal's own are used. We
    cannot know those, so we assume the common case, light text on a dark background, and
    invert the mapping: the ink (light text colour) draws the light modules and the quiet zone.
    """

    DEFAULT_CSS = """
    QrCode {
        width: auto;
        height: auto;
    }
    """

    data: reactive[str] = reactive("", layout=True)

    def __init__(
        self,
        data: str = "",
        *,
        border: int = DEFAULT_BORDER,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.border = border
        self._cached: tuple[str, list[list[bool]]] = ("", [])
        self.set_reactive(QrCode.data, data)

    @property
    def matrix(self) -> list[list[bool]]:
        """The module matrix of the current `data` (empty when there is none)."""
        if self._cached[0] != self.data:
            self._cached = (self.data, qr_matrix(self.data, border=self.border))
        return self._cached[1]

    @property
    def inverted(self) -> bool:
        """True when Textual strips all colours (NO_COLOR with native ANSI colours)."""
        return self.app.no_color and self.app.native_ansi_color

    @property
    def lines(self) -> list[str]:
        return render_half_blocks(self.matrix, inverted=self.inverted)

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return len(self.matrix[0]) if self.matrix else 0

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return (len(self.matrix) + 1) // 2

    def render_line(self, y: int) -> Strip:
        lines = self.lines
        if y >= len(lines):
            return Strip.blank(self.size.width, self.rich_style)
        style = Style() if self.inverted else DARK_ON_LIGHT
        return Strip([Segment(lines[y], style)]).adjust_cell_length(
            self.size.width, self.rich_style
        )
