"""The QR code widget: cells read back into modules must equal the `qrcode` library's matrix."""

from __future__ import annotations

import string

import pyotp
import pytest
import qrcode
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from qrcode.constants import ERROR_CORRECT_L
from rich.color import Color
from rich.segment import Segment
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.geometry import Region
from textual.widgets import Static

from tfa_tui.widgets.qr import QrCode, qr_matrix, render_half_blocks

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
TYPICAL = f"otpauth://totp/tfa:alice?secret={SECRET}&issuer=tfa"
LONG = pyotp.TOTP(SECRET).provisioning_uri(name="a" * 32, issuer_name="ExampleCorpIssuer123")
BLACK = Color.from_rgb(0, 0, 0).get_truecolor()
WHITE = Color.from_rgb(255, 255, 255).get_truecolor()


def library_matrix(data: str, border: int = 2) -> list[list[bool]]:
    """Independently of `qr_matrix`: what the `qrcode` library draws for `data`."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_L, border=border)
    code.add_data(data)
    code.make(fit=True)
    return [list(row) for row in code.get_matrix()]


def decode_half_blocks(lines: list[str], *, inverted: bool = False) -> list[list[bool]]:
    """Cells back to modules (True = dark): each glyph's ink covers its top and/or bottom half."""
    ink = {" ": (False, False), "▀": (True, False), "▄": (False, True), "█": (True, True)}
    matrix: list[list[bool]] = []
    for line in lines:
        halves = [ink[glyph] for glyph in line]
        matrix.append([top != inverted for top, _ in halves])
        matrix.append([bottom != inverted for _, bottom in halves])
    return matrix


def assert_reads_back(lines: list[str], data: str, *, inverted: bool = False) -> None:
    expected = library_matrix(data)
    decoded = decode_half_blocks(lines, inverted=inverted)
    assert decoded[: len(expected)] == expected
    # An odd module count leaves half a row: it must be light, extending the quiet zone.
    assert all(not dark for row in decoded[len(expected) :] for dark in row)
    assert len(decoded) - len(expected) in (0, 1)


class TestMatrixAndGlyphs:
    def test_glyph_mapping_of_the_four_module_pairs(self) -> None:
        matrix = [[True, True, False, False], [True, False, True, False]]
        assert render_half_blocks(matrix) == ["█▀▄ "]
        assert render_half_blocks(matrix, inverted=True) == [" ▄▀█"]

    def test_odd_height_pairs_the_last_row_with_a_light_row(self) -> None:
        assert render_half_blocks([[True, False]]) == ["▀ "]
        assert render_half_blocks([[True, False]], inverted=True) == ["▄█"]

    def test_error_correction_l_and_smallest_version(self) -> None:
        code = qrcode.QRCode(error_correction=ERROR_CORRECT_L)
        code.add_data(TYPICAL)
        code.make(fit=True)
        assert code.version == 4
        assert len(qr_matrix(TYPICAL)) == 17 + 4 * 4 + 2 * 2

    def test_quiet_zone_is_light_on_every_side(self) -> None:
        for border in (2, 4):
            matrix = qr_matrix(TYPICAL, border=border)
            edge = [
                *matrix[:border],
                *matrix[-border:],
                *(row[:border] + row[-border:] for row in matrix),
            ]
            assert not any(any(row) for row in edge)
            assert matrix[border][border]  # the finder pattern's corner starts right after it

    @pytest.mark.parametrize("data", [TYPICAL, LONG, "otpauth://totp/x?secret=AB", "é ü 漢字"])
    def test_rendered_cells_read_back_to_the_library_matrix(self, data: str) -> None:
        assert qr_matrix(data) == library_matrix(data)
        assert_reads_back(render_half_blocks(qr_matrix(data)), data)
        assert_reads_back(render_half_blocks(qr_matrix(data), inverted=True), data, inverted=True)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        issuer=st.text(alphabet=string.printable.strip(), min_size=1, max_size=20),
        account=st.text(alphabet=string.printable[:-5], min_size=1, max_size=32),
        inverted=st.booleans(),
    )
    def test_any_printable_label_reads_back(
        self, issuer: str, account: str, inverted: bool
    ) -> None:
        uri = pyotp.TOTP(SECRET).provisioning_uri(name=account, issuer_name=issuer)
        assert_reads_back(
            render_half_blocks(qr_matrix(uri), inverted=inverted), uri, inverted=inverted
        )


class TestSize:
    """At 80x24 the code, the manual key and some text must be visible at once."""

    def test_typical_uri_is_37_by_19(self) -> None:
        lines = render_half_blocks(qr_matrix(TYPICAL))
        assert (len(lines[0]), len(lines)) == (37, 19)

    @settings(max_examples=40, deadline=None)
    @given(
        issuer=st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=6),
        account=st.text(alphabet=string.printable[:-5], max_size=15),
    )
    def test_uris_up_to_85_characters_fit_37_by_19(self, issuer: str, account: str) -> None:
        """Version 4-L holds 53 bytes besides the secret (which is encoded alphanumerically)."""
        uri = pyotp.TOTP(SECRET).provisioning_uri(name=account, issuer_name=issuer)
        assume(len(uri) <= 85)
        lines = render_half_blocks(qr_matrix(uri))
        assert len(lines[0]) <= 37
        assert len(lines) <= 19

    def test_86_characters_do_not_fit(self) -> None:
        """The budget is exact: with issuer "tfa", account names of up to 15 characters."""
        fits = pyotp.TOTP(SECRET).provisioning_uri(name="a" * 15, issuer_name="tfa")
        too_long = pyotp.TOTP(SECRET).provisioning_uri(name="a" * 16, issuer_name="tfa")
        assert (len(fits), len(too_long)) == (85, 86)
        assert len(render_half_blocks(qr_matrix(fits))) == 19
        assert len(render_half_blocks(qr_matrix(too_long))) == 21

    def test_long_labels_need_a_bigger_version(self) -> None:
        """20-char issuer, 32-char account: 136 characters, version 6, 45x23 cells."""
        assert len(LONG) == 136
        lines = render_half_blocks(qr_matrix(LONG))
        assert (len(lines[0]), len(lines)) == (45, 23)


class QrApp(App[None]):
    def __init__(self, data: str, **kwargs: bool) -> None:
        super().__init__(**kwargs)
        self.data = data

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield QrCode(self.data, id="qr")
            with Vertical():
                yield Static("Scan this code, or enter this key by hand:")
                yield Static("JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP", id="key")


def rendered(widget: QrCode) -> list[list[Segment]]:
    """The widget's lines after Textual's line filters (NO_COLOR...), as the screen gets them."""
    strips = widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))
    return [list(strip) for strip in strips]


def colours(lines: list[list[Segment]]) -> set[tuple[object, object]]:
    """The (foreground, background) pairs used, as RGB triplets; None for the terminal's own."""

    def rgb(color: Color | None) -> object:
        return None if color is None or color.is_default else color.get_truecolor()

    return {
        (rgb(segment.style.color), rgb(segment.style.bgcolor)) if segment.style else (None, None)
        for line in lines
        for segment in line
    }


def text_of(lines: list[list[Segment]]) -> list[str]:
    return ["".join(segment.text for segment in line) for line in lines]


class TestWidget:
    async def test_black_on_white_with_the_library_modules(self) -> None:
        app = QrApp(TYPICAL)
        async with app.run_test(size=(80, 24)):
            qr = app.query_one(QrCode)
            assert (qr.size.width, qr.size.height) == (37, 19)
            assert app.screen.region.contains_region(qr.region)
            assert app.screen.region.contains_region(app.query_one("#key").region)
            lines = rendered(qr)
            assert_reads_back(text_of(lines), TYPICAL)
            assert colours(lines) == {(BLACK, WHITE)}

    async def test_colours_hold_under_every_theme(self) -> None:
        app = QrApp(TYPICAL)
        async with app.run_test(size=(80, 24)) as pilot:
            for theme in ("textual-light", "nord", "gruvbox"):
                app.theme = theme
                await pilot.pause()
                styles = {
                    segment.style for line in rendered(app.query_one(QrCode)) for segment in line
                }
                assert {
                    (s.color.get_truecolor(), s.bgcolor.get_truecolor())
                    for s in styles
                    if s and s.color and s.bgcolor
                } == {(BLACK, WHITE)}
                assert all(s and s.color and s.bgcolor for s in styles)

    async def test_changing_data_resizes_and_redraws(self) -> None:
        app = QrApp("")
        async with app.run_test(size=(80, 24)) as pilot:
            qr = app.query_one(QrCode)
            assert qr.size.height == 0
            qr.data = LONG
            await pilot.pause()
            assert (qr.size.width, qr.size.height) == (45, 23)
            assert_reads_back(text_of(rendered(qr)), LONG)

    async def test_no_color_keeps_black_on_white_under_monochrome(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Textual turns colours grey under NO_COLOR: black and white survive unchanged."""
        monkeypatch.setenv("NO_COLOR", "1")
        app = QrApp(TYPICAL)
        async with app.run_test(size=(80, 24)):
            assert app.no_color
            qr = app.query_one(QrCode)
            assert not qr.inverted
            lines = rendered(qr)
            assert_reads_back(text_of(lines), TYPICAL)
            assert {
                (s.style.color.get_truecolor(), s.style.bgcolor.get_truecolor())
                for line in lines
                for s in line
                if s.style and s.style.color and s.style.bgcolor
            } == {(BLACK, WHITE)}

    async def test_no_color_with_ansi_colours_inverts_the_glyphs(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """All colours dropped: light terminal text draws the light modules and the quiet zone."""
        monkeypatch.setenv("NO_COLOR", "1")
        app = QrApp(TYPICAL, ansi_color=True)
        async with app.run_test(size=(80, 24)):
            qr = app.query_one(QrCode)
            assert qr.inverted
            lines = rendered(qr)
            assert text_of(lines)[0] == "█" * 37  # the quiet zone, in the terminal's text colour
            assert_reads_back(text_of(lines), TYPICAL, inverted=True)
            for segment in (segment for line in lines for segment in line):
                assert (
                    segment.style is None
                    or segment.style.color is None
                    or segment.style.color.is_default
                )
                assert (
                    segment.style is None
                    or segment.style.bgcolor is None
                    or segment.style.bgcolor.is_default
                )
