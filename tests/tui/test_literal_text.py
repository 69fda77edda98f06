"""What the server says is shown as text (F01): never markup, never an action or a link, and
control characters are shown as escapes instead of reaching the terminal.

The hostile values reach the real server the way a stranger sends them: an unknown username
at sign-in, a User-Agent header. Addresses come through the server's own sign-in with the
origin a trusted proxy would report, and account names that the server's rule no longer
allows are written into its database, as an older or hostile server would hold them.
"""

from __future__ import annotations

import socket
import unicodedata
from collections.abc import Iterable

import msgspec
import pytest
from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.pilot import Pilot
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static, TabbedContent
from textual.widgets._data_table import default_cell_formatter
from textual.widgets._toast import Toast

from tfa_server.admin import Actor, Admin
from tfa_server.core import Origin
from tfa_tui.api import AdminHistoryItem, AuditItem
from tfa_tui.api.client import TfaClient
from tfa_tui.app import TfaApp
from tfa_tui.screens.confirm import ConfirmScreen
from tfa_tui.screens.home import HomeScreen, history_row
from tfa_tui.screens.recovery_codes import RecoveryCodesScreen
from tfa_tui.screens.second_factor import SecondFactorScreen
from tfa_tui.screens.setup import SetupScreen
from tfa_tui.screens.sign_in import SignInScreen
from tfa_tui.session_store import SessionStore
from tfa_tui.widgets.admin_pane import AdminPane, audit_row

from ..conftest import PASSWORD, RunningServer, enable_totp, login
from .conftest import notices, record_notices, running_app, settle, wait_for

pytestmark = pytest.mark.finding("F01")

LOGIN = "/api/v1/login"
WRONG = "not the password"
WIDE = (220, 50)  # every column of every table on screen at once
# Values sent, and what a person must read for each: markup as typed, control characters as
# escapes. Header values cannot carry CR or LF; usernames can, and the server lowercases them.
AGENTS = {
    "[/x]": "[/x]",
    "[bold]x": "[bold]x",
    "[@click=app.quit]q": "[@click=app.quit]q",
    "[link=https://example.org]x[/link]": "[link=https://example.org]x[/link]",
    "\x1b[2J\x07z": "\\x1b[2J\\x07z",
}
NAMES = {
    "[/x]": "[/x]",
    "[bold]x": "[bold]x",
    "[@click=app.quit]q": "[@click=app.quit]q",
    "[link=https://example.org]x[/link]": "[link=https://example.org]x[/link]",
    "\x1b[2J\x07\ry": "\\x1b[2j\\x07\\ry",
}


# What reaches the terminal


def rendered(widget: Widget, *, inside: bool = False) -> list[Strip]:
    """The lines the widget draws right now, as the terminal would receive them: with its
    border and padding, or only what is `inside` them."""
    width, height = widget.region.size
    assert width > 0, f"{widget!r} is not on screen"
    assert height > 0, f"{widget!r} is not on screen"
    if not inside:
        return widget.render_lines(Region(0, 0, width, height))
    gutter = widget.styles.gutter
    return widget.render_lines(Region(gutter.left, gutter.top, *widget.size))


def text(strips: Iterable[Strip]) -> str:
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


def assert_inert(strips: list[Strip], where: str) -> None:
    """No link, no click action and no control character anywhere in what is drawn."""
    for strip in strips:
        for segment in strip:
            style = segment.style
            if style is not None:
                assert not style.link, f"{where}: {segment.text!r} is a link to {style.link}"
                assert "@click" not in (style.meta or {}), f"{where}: {segment.text!r} clicks"
            controls = [c for c in segment.text if unicodedata.category(c) == "Cc"]
            assert not controls, f"{where}: control characters {controls!r} reach the terminal"


def assert_shown(widget: Widget, expected: Iterable[str], where: str) -> None:
    """Each value is drawn as given (line breaks and padding aside: a dialog wraps words)."""
    drawn = text(rendered(widget, inside=True))
    unwrapped = "".join(drawn.split())
    for value in expected:
        assert "".join(value.split()) in unwrapped, f"{where}: {value!r} is not shown in\n{drawn}"
    assert_inert(rendered(widget), where)


def toasts(app: TfaApp) -> list[Toast]:
    return list(app.screen.query(Toast))


async def toast_saying(app: TfaApp, pilot: Pilot[None], words: str) -> Toast:
    """The notification drawn on screen that says `words` (line breaks aside)."""
    await wait_for(pilot, lambda: any(words in said for said in notices(app)), repr(words))
    wanted = "".join(words.split())
    for _ in range(100):
        for toast in toasts(app):
            if wanted in "".join(text(rendered(toast, inside=True)).split()):
                return toast
        await pilot.pause(0.05)
    raise AssertionError(f"no notification on screen says {words!r}")


# The server's side


async def rename(server: RunningServer, old: str, new: str) -> None:
    """An account name the server's rule would refuse today, as an older database holds it."""
    await server.core.db.run(
        lambda conn: conn.execute("UPDATE users SET username = $1 WHERE username = $2", (new, old))
    )


async def hostile_account_with_2fa(server: RunningServer, plain_name: str, name: str) -> None:
    await server.add_user(plain_name)
    async with server.client() as http:
        token = (await login(http, plain_name))["token"]
        await enable_totp(http, token, server.clock)
    await rename(server, plain_name, name)


async def sign_in(app: TfaApp, pilot: Pilot[None], name: str, password: str) -> None:
    """Filled in rather than typed: typing is tested elsewhere, and costs ~0.1 s a key."""
    app.screen.query_one("#username", Input).value = name
    app.screen.query_one("#password", Input).value = password
    app.screen.query_one("#password", Input).focus()
    await pilot.press("enter")
    await settle(app, pilot)


# The pure pieces


def test_control_characters_are_shown_as_escapes_and_text_is_kept() -> None:
    from tfa_tui.plain import visible

    assert visible("\x1b[2J\x07\r\n\t\x00\x7f") == "\\x1b[2J\\x07\\r\\n\\t\\x00\\x7f"
    assert visible("a\x9bb") == "a\\x9bb"  # C1 CSI: one byte that starts an escape sequence
    assert visible("admin\u202egpj.exe") == "admin\\u202egpj.exe"  # bidi override
    assert visible("x\u2028y\ud800") == "x\\u2028y\\ud800"  # line separator, lone surrogate
    kept = "[/x] Grüße, 中文, 👩\u200d💻 [link=https://example.org]x[/link]"
    assert visible(kept) == kept


def test_table_rows_keep_server_words_literal_including_unknown_ones() -> None:
    """An event, method or reason this client has no words for is shown raw: raw means literal."""
    entry = msgspec.convert(
        {
            "id": 1,
            "at": "2026-11-28T12:00:00Z",
            "event": "[@click=app.quit]q",
            "success": False,
            "method": "[/x]",
            "reason": "[link=https://example.org]x[/link]",
            "ip": "\x1b[2J",
            "client": "[bold]x",
            "service": None,
            "service_ip": None,
            "count": 1,
            "known_user": False,
            "account_deleted": False,
            "username": "[/x]",
        },
        AdminHistoryItem,
    )
    audit = msgspec.convert(
        {
            "id": 1,
            "at": "2026-11-28T12:00:00Z",
            "actor": "cli:[/x]",
            "action": "[@click=app.quit]q",
            "target": "[bold]x\x07",
            "detail": {"[link=https://example.org]x[/link]": "\x1b[2J"},
            "ip": "[/x]",
            "client": None,
        },
        AuditItem,
    )
    cells = [*list(history_row(entry).values())[1:], *list(audit_row(audit).values())[1:]]
    shown = []
    for cell in cells:
        drawn = default_cell_formatter(cell)
        assert isinstance(drawn, Text)
        for span in drawn.spans:
            style = span.style
            assert "link" not in str(style), f"{drawn.plain!r} is a link"
            assert "@click" not in str(style), f"{drawn.plain!r} clicks"
            assert not isinstance(style, Style) or not (style.link or style.meta)
        shown.append(drawn.plain)
    assert shown[0] == "[@click=app.quit]q"
    assert shown[2] == "[/x]"
    assert shown[3] == "\\x1b[2J"
    assert shown[4] == "[bold]x"
    assert shown[5] == "[link=https://example.org]x[/link]"
    assert shown[6:] == [
        "cli:[/x]",
        "[@click=app.quit]q",
        "[bold]x\\x07",
        "[link=https://example.org]x[/link]=\\x1b[2J",
        "[/x]",
    ]


# The screens, against the real server


async def test_history_and_sessions_show_clients_as_sent(server: RunningServer) -> None:
    """A User-Agent of `[/x]` made the app exit with MarkupError when the user opened History."""
    await server.add_user("bob")
    async with server.client() as http:
        for agent in AGENTS:
            headers = {"User-Agent": agent}
            refused = await http.post(
                LOGIN, json={"username": "bob", "password": WRONG}, headers=headers
            )
            assert refused.status_code == 401
            signed_in = await http.post(
                LOGIN, json={"username": "bob", "password": PASSWORD}, headers=headers
            )
            assert signed_in.status_code == 200
    async with running_app(server, size=WIDE) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        await pilot.press("h")
        await settle(app, pilot)
        table = app.screen.query_one("#history-table", DataTable)
        assert table.row_count == 2 * len(AGENTS) + 1
        assert_shown(table, AGENTS.values(), "History")
        await pilot.press("n")
        await settle(app, pilot)
        sessions = app.screen.query_one("#sessions-table", DataTable)
        assert sessions.row_count == len(AGENTS) + 1
        assert_shown(sessions, AGENTS.values(), "Sessions")
        assert isinstance(app.screen, HomeScreen)


async def test_the_security_banner_and_sessions_show_an_address_as_sent(
    server: RunningServer,
) -> None:
    """The address of the last sign-in (a proxy's X-Forwarded-For, once trusted) is text."""
    await server.add_user("bob")
    address = "[@click=app.quit]q\x1b[2J"
    await server.app.api.sign_in.login("bob", PASSWORD, Origin(address, "[/x]"))
    server.clock.advance(60)
    async with server.client() as http:
        for _ in range(2):
            await http.post(LOGIN, json={"username": "bob", "password": WRONG})
    async with running_app(server, size=WIDE) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        banner = app.screen.query_one("#failed-banner", Static)
        assert_shown(banner, ["from [@click=app.quit]q\\x1b[2J."], "the failed sign-ins banner")
        await pilot.press("n")
        await settle(app, pilot)
        sessions = app.screen.query_one("#sessions-table", DataTable)
        assert_shown(sessions, ["[@click=app.quit]q\\x1b[2J", "[/x]"], "Sessions")


async def test_admin_tables_show_names_clients_and_actors_as_sent(server: RunningServer) -> None:
    """An attempted username of `[/x]` made the app exit when an administrator opened Admin >
    Sign-in history; `[@click=...]` and `[link=...]` became actions and links."""
    await server.add_user("root", "typed-pw", admin=True)
    await server.add_user("dave")
    await rename(server, "dave", "[link=https://example.org]d[/link]\x1b[2j")
    actor = Actor("cli:[/x]\x1b[2J", Origin("[@click=app.quit]q", "[bold]x"))
    await Admin(server.core).create_user(actor, "carol", PASSWORD, False)
    async with server.client() as http:
        for name in NAMES:
            await http.post(LOGIN, json={"username": name, "password": WRONG})
        for agent in AGENTS:
            headers = {"User-Agent": agent}
            await http.post(LOGIN, json={"username": "nobody", "password": WRONG}, headers=headers)
    async with running_app(server, size=WIDE) as (app, pilot):
        await sign_in(app, pilot, "root", "typed-pw")
        await pilot.press("a")
        await settle(app, pilot)
        pane = app.screen.query_one(AdminPane)
        tabs = pane.query_one("#admin-tabs", TabbedContent)

        tabs.active = "admin-history"
        await settle(app, pilot)
        history = pane.query_one("#admin-history-table", DataTable)
        assert history.row_count >= len(NAMES) + len(AGENTS)
        assert_shown(history, [*NAMES.values(), *AGENTS.values()], "Admin > Sign-in history")

        tabs.active = "admin-users"
        await settle(app, pilot)
        users = pane.query_one("#admin-users-table", DataTable)
        assert_shown(users, ["[link=https://example.org]d[/link]\\x1b[2j"], "Admin > Users")

        tabs.active = "admin-audit"
        await settle(app, pilot)
        audit = pane.query_one("#admin-audit-table", DataTable)
        assert_shown(audit, ["cli:[/x]\\x1b[2J", "[@click=app.quit]q"], "Admin > Audit log")
        assert isinstance(app.screen, HomeScreen)


async def test_dialogs_and_notifications_show_account_names_as_sent(
    server: RunningServer,
) -> None:
    """Reset 2FA asks with the name in the title, and says what happened in a notification;
    a server message quoting the name (404 for an account gone meanwhile) is text too."""
    await server.add_user("root", "typed-pw", admin=True)
    first = "[bold]x[@click=app.quit]q\x1b[2j"
    second = "[@click=app.quit]z[bold]"  # no '/': the name is a path segment of the request
    await hostile_account_with_2fa(server, "erin", first)
    await hostile_account_with_2fa(server, "fred", second)
    async with running_app(server, notifications=True) as (app, pilot):
        await sign_in(app, pilot, "root", "typed-pw")
        await pilot.press("a")
        await settle(app, pilot)
        pane = app.screen.query_one(AdminPane)
        pane.query_one("#admin-tabs", TabbedContent).active = "admin-users"
        await settle(app, pilot)
        table = pane.query_one("#admin-users-table", DataTable)

        table.move_cursor(row=table.get_row_index(first))
        await pilot.click("#admin-reset")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the dialog")
        await pilot.pause(0.05)
        shown_first = "[bold]x[@click=app.quit]q\\x1b[2j"
        title = app.screen.query_one("#dialog-title", Static)
        assert_shown(title, [f"Reset 2FA of {shown_first}?"], "the dialog's title")
        body = app.screen.query_one("#dialog-text", Static)
        assert_shown(body, [f"This removes {shown_first}'s two-factor"], "the dialog's text")
        await pilot.click("#confirm")
        toast = await toast_saying(app, pilot, "two-factor authentication is removed")
        assert_shown(toast, [shown_first], "the notification")

        await settle(app, pilot)
        table.move_cursor(row=table.get_row_index(second))
        await pilot.click("#admin-reset")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the dialog")
        await pilot.pause(0.05)
        title = app.screen.query_one("#dialog-title", Static)
        assert_shown(title, [f"Reset 2FA of {second}?"], "the dialog's title")
        await rename(server, second, "gone")  # meanwhile: the server answers 404 with the name
        await pilot.click("#confirm")
        toast = await toast_saying(app, pilot, "There is no user")
        assert_shown(toast, [f"There is no user '{second}'"], "the error notification")
        assert isinstance(app.screen, HomeScreen)


async def test_setup_and_header_show_the_account_name_as_stored(server: RunningServer) -> None:
    """The authenticator's account name and the header come from the server's user record."""
    await server.add_user("gina")
    name = "[bold]x\r\x1b[2j\x07y"
    shown_name = "[bold]x\\r\\x1b[2j\\x07y"
    async with running_app(server, size=WIDE) as (app, pilot):
        await sign_in(app, pilot, "gina", PASSWORD)
        assert isinstance(app.screen, HomeScreen)
        await rename(server, "gina", name)
        await pilot.press("enter")  # Connect authenticator app
        await settle(app, pilot)
        assert isinstance(app.screen, SetupScreen)
        await pilot.press("enter")  # step 2 shows the key and the account
        await settle(app, pilot)
        assert_shown(app.screen.query_one("#account", Static), [shown_name], "the account")
        await pilot.press("escape")  # back home: the header names the user
        await settle(app, pilot)
        assert isinstance(app.screen, HomeScreen)
        assert_shown(app.screen.query_one("HeaderTitle"), [shown_name], "the header")


async def test_what_another_server_could_send_is_text_too(server: RunningServer) -> None:
    """This server lets only names of letters, digits, '.', '_' and '-' sign in and makes its
    own recovery codes; a server that is not ours could send anything in their place."""
    name = "[bold]x\r\x1b[2j\x07y"
    shown_name = "[bold]x\\r\\x1b[2j\\x07y"
    async with running_app(server, size=WIDE) as (app, pilot):
        await app.switch_screen(SecondFactorScreen(name, remember=False))
        await settle(app, pilot)
        who = app.screen.query_one("#who", Static)
        assert_shown(who, [f"Signing in as {shown_name}."], "Signing in as")
        await app.switch_screen(RecoveryCodesScreen(["[/x]", "[@click=app.quit]q\x1b[2J"], name))
        await settle(app, pilot)
        codes = app.screen.query_one("#codes", Static)
        assert_shown(codes, ["1. [/x]", "2. [@click=app.quit]q\\x1b[2J"], "the codes")


async def test_an_address_with_brackets_is_shown_as_typed(server: RunningServer) -> None:
    """The server address (from the command line) and the error that quotes it are text."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/[/x]"
    app = TfaApp(TfaClient(url), store=SessionStore())
    record_notices(app)
    async with app.run_test(size=WIDE) as pilot:
        assert isinstance(app.screen, SignInScreen)
        assert_shown(app.screen.query_one("#server"), [url], "the server address")
        await sign_in(app, pilot, "bob", PASSWORD)
        error = app.screen.query_one("#error", Static)
        assert_shown(error, [f"Cannot reach the server at {url}"], "the error")
