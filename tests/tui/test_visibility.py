"""Seeing where you are (issue 11): focus, empty fields, ticks and dialog frames, also without
colour.

The screen is read as the terminal gets it, after Textual's NO_COLOR filter, and compared
"colour-blind": a glyph counts only where it stands out from its own background, and of a
cell's style only what survives when every colour is dropped (bold, underline, reverse...).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from rich.color import Color
from rich.style import Style
from textual._compositor import LayoutUpdate
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Checkbox, Input, TabbedContent

from tfa_tui.app import TfaApp
from tfa_tui.screens.add_user import AddUserScreen
from tfa_tui.screens.reauth import ReauthScreen
from tfa_tui.widgets.admin_pane import AdminPane

from ..conftest import RunningServer, enable_totp, login, totp_code
from .conftest import running_app, settle, sign_in, wait_for

# Typing costs ~0.1 s a key under Pilot: whoever signs in on screen has a short password.
TYPED = "typed-pw"

# What is left of a style when the terminal shows no colour at all.
ATTRIBUTES = ("bold", "dim", "italic", "underline", "reverse", "strike", "overline")


@dataclass(frozen=True)
class Cell:
    """One cell as a person without colour sees it; `background` is kept aside, out of `==`."""

    glyph: str  # " " where the character has the colour of its own background
    attributes: tuple[str, ...]
    background: tuple[int, int, int] | None = field(default=None, compare=False)


def seen(text: str, style: Style | None) -> Cell:
    style = style or Style.null()
    attributes = tuple(name for name in ATTRIBUTES if getattr(style, name))
    glyph = text if text.strip() and stands_out(style) else " "
    return Cell(glyph, attributes, rgb(style.bgcolor))


def rgb(color: Color | None) -> tuple[int, int, int] | None:
    """None for the terminal's own colour."""
    if color is None or color.is_default:
        return None
    red, green, blue = color.get_truecolor()
    return red, green, blue


# A field stands out from what is around it by at least this many levels of grey, as NO_COLOR
# greys them (Textual's Color.monochrome). $background against $surface, a field on a dialog in
# the default theme, are 12 apart; Textual's 5% focus tint brought the field within 2.
LEAST_CONTRAST = 10


def contrast(one: Cell, other: Cell) -> float:
    def grey(cell: Cell) -> float:
        assert cell.background is not None, "the theme gives every cell a background"
        red, green, blue = cell.background
        return 0.2126 * red + 0.7152 * green + 0.0722 * blue

    return abs(grey(one) - grey(other))


def stands_out(style: Style) -> bool:
    """False when the glyph is drawn in its background's colour (the terminal's own colours,
    default on default, do differ)."""
    foreground, background = rgb(style.color), rgb(style.bgcolor)
    return foreground is None or background is None or foreground != background


def screen_cells(app: TfaApp) -> list[list[Cell]]:
    """Every cell of the screen as drawn (line filters applied), dialogs over their screens."""
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    assert isinstance(update, LayoutUpdate)
    rows = [Strip.join(chops) for chops in update.strips]
    return [
        [seen(character, segment.style) for segment in row for character in segment.text]
        for row in rows
    ]


def cells_of(app: TfaApp, region: Region) -> list[Cell]:
    """The cells of a one-line region (a compact field or a checkbox)."""
    return screen_cells(app)[region.y][region.x : region.right]


@pytest.fixture(params=[True, False], ids=["NO_COLOR", "colour"])
def no_color(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Textual reads NO_COLOR when the app is made: set (or cleared) before it."""
    if request.param:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    return bool(request.param)


def still(app: TfaApp) -> None:
    """No blinking cursor: two pictures of the same state are the same."""
    for text_field in app.screen.query(Input):
        text_field.cursor_blink = False


# Point 1: the focused field and empty fields are plain to see


async def test_the_focused_field_is_marked_by_more_than_colour(
    server: RunningServer, no_color: bool
) -> None:
    """Issue 11, seeing where you are: focused and unfocused inputs differ by more than a shade
    of grey. The same empty field is read focused, then unfocused, on the Sign in screen."""
    async with running_app(server) as (app, pilot):
        assert app.no_color is no_color
        still(app)
        username, password = app.screen.query_one("#username"), app.screen.query_one("#password")
        assert app.focused is username
        await pilot.pause()
        focused = {"username": cells_of(app, username.region)}
        unfocused = {"password": cells_of(app, password.region)}
        await pilot.press("tab")
        assert app.focused is password
        await pilot.pause()
        focused["password"] = cells_of(app, password.region)
        unfocused["username"] = cells_of(app, username.region)
        for name in ("username", "password"):
            assert focused[name] != unfocused[name], f"focus on {name} shows only in colour"


async def test_an_empty_password_field_shows_on_the_confirm_dialog(
    server: RunningServer, no_color: bool
) -> None:
    """Issue 11, seeing where you are: the empty password field of "Confirm it is you" had the
    dialog's own colour. It stands out by its shade, without colour by more than a shade, and
    the focus mark leaves it with Tab."""
    await server.add_user("alice", TYPED)
    async with server.client() as http:
        token = (await login(http, "alice", TYPED))["token"]
        secret, _ = await enable_totp(http, token, server.clock)
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "alice", TYPED)
        await pilot.press(*totp_code(secret, server.clock))
        await settle(app, pilot)
        await pilot.press("g")  # new recovery codes: asks who you are first
        await wait_for(pilot, lambda: isinstance(app.screen, ReauthScreen), "the dialog")
        dialog = app.screen
        still(app)
        password, code = dialog.query_one("#password", Input), dialog.query_one("#code", Input)
        await wait_for(pilot, lambda: app.focused is password, "the password field's focus")
        await pilot.pause()
        focused = cells_of(app, password.region)
        dialog_background = screen_cells(app)[password.region.y][password.region.x - 1]
        assert dialog_background == Cell(" ", ())  # the dialog's padding, left of the field
        await pilot.press("tab")
        assert app.focused is code
        await pilot.pause()
        assert cells_of(app, password.region) != focused, "focus shows only in colour"
        typing_area = cells_of(app, password.content_region)  # the focus mark's column aside
        for cell in typing_area:
            assert contrast(cell, dialog_background) >= LEAST_CONTRAST, "the field has no shade"
            if no_color:
                assert cell != dialog_background, "the field is only a shade of grey"


# Point 2: an unticked box does not look ticked


async def test_an_unticked_box_does_not_look_ticked(server: RunningServer, no_color: bool) -> None:
    """Issue 11, seeing where you are: `Remember me` unticked and ticked look different,
    with and without colour: the unticked box shows no mark."""
    async with running_app(server) as (app, pilot):
        box = app.screen.query_one("#remember", Checkbox)
        assert not box.value
        mark = Region(box.region.x, box.region.y, 3, 1)  # ▐X▌, before the label
        unticked = cells_of(app, mark)
        box.value = True
        await pilot.pause()
        ticked = cells_of(app, mark)
        assert ticked[1].glyph == "X"
        assert unticked != ticked
        assert unticked[1].glyph == " ", "the unticked box shows the mark of a ticked one"


# Point 3: every dialog has the same rounded frame


async def test_the_add_user_dialog_has_rounded_corners_like_the_others(
    server: RunningServer,
) -> None:
    """Issue 11, seeing where you are: Add user had a heavy block frame where every other
    dialog has rounded corners. (Point 1 here too: its focused field kept no shade of its own.)"""
    await server.add_user("root", TYPED, admin=True)
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "root", TYPED)
        await pilot.press("a")
        await settle(app, pilot)
        app.screen.query_one(AdminPane).query_one(TabbedContent).active = "admin-users"
        await settle(app, pilot)
        await pilot.click("#admin-add")
        await wait_for(pilot, lambda: isinstance(app.screen, AddUserScreen), "the dialog")
        dialog: Widget = app.screen.query_one("#dialog")
        border = dialog.styles.border
        assert {edge[0] for edge in (border.top, border.right, border.bottom, border.left)} == {
            "round"
        }
        await pilot.pause()
        corners = screen_cells(app)
        region = dialog.region
        assert corners[region.y][region.x].glyph == "╭"
        assert corners[region.bottom - 1][region.right - 1].glyph == "╯"
        username = app.screen.query_one("#username", Input)
        assert app.focused is username
        padding = corners[username.region.y][region.x + 1]  # inside the frame, left of the label
        for cell in cells_of(app, username.content_region):
            assert contrast(cell, padding) >= LEAST_CONTRAST, "the focused field has no shade"
