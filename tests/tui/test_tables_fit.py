"""Issue 15, "Tables that fit", the DEMO panel's place and the key map.

At 80 columns every table shows, without scrolling sideways, the columns that let a person
judge a row; the rest of the selected row is in a line under the table and, on Enter, in a
dialog; wider terminals show more columns. The DEMO strip takes its own lines instead of being
drawn over the screen. `?` and F1 list the keys of the screen.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.errors import NoWidget
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Input

from tfa_tui.app import TfaApp
from tfa_tui.demo import DemoAccounts
from tfa_tui.screens.home import HomeScreen
from tfa_tui.screens.key_map import KeyMapScreen
from tfa_tui.screens.reauth import ReauthScreen
from tfa_tui.screens.row_details import RowDetailsScreen
from tfa_tui.screens.second_factor import SecondFactorScreen
from tfa_tui.screens.setup import SetupScreen
from tfa_tui.screens.sign_in import SignInScreen
from tfa_tui.widgets.demo_panel import DemoPanel
from tfa_tui.widgets.fit_table import FitColumn, FitTable, plan_columns

from ..conftest import PASSWORD, RunningServer, totp_code
from .conftest import (
    at_home,
    dialog_open,
    running_app,
    settle,
    sign_in,
    user_with_totp,
    wait_for,
)

ROOT_PW = "root-password-1"
AGENT = "laptop-agent/2.0 (study; Linux)"
LOGIN = "/api/v1/login"


def labels(table: FitTable) -> list[str]:
    return [str(column.label) for column in table.ordered_columns]


def fits(table: FitTable) -> None:
    """No sideways scrolling: every column is within the table's width."""
    assert table.region.width > 0, f"{table.id} is not on screen"
    assert table.virtual_size.width <= table.scrollable_content_region.width, (
        f"{table.id}: {table.virtual_size.width} columns wide in"
        f" {table.scrollable_content_region.width}: {labels(table)}"
    )


async def refusals_from_a_laptop(server: RunningServer, name: str, count: int = 2) -> None:
    async with server.client() as http:
        http.headers["User-Agent"] = AGENT
        for _ in range(count):
            refused = await http.post(LOGIN, json={"username": name, "password": "not it"})
            assert refused.status_code == 401


async def open_tab(app: TfaApp, pilot: Pilot[None], key: str) -> None:
    await pilot.press(key)
    await settle(app, pilot)


def history(home: HomeScreen, selector: str = "#history-table") -> FitTable:
    return home.query_one(selector, FitTable)


# Tables that fit


async def test_home_tables_show_their_key_columns_at_80_columns(server: RunningServer) -> None:
    """Tables that fit: History shows when, what, result and from where (IP) at 80x24 with no
    sideways scrolling, the refusal's reason before the client when more fits; Sessions shows
    which session, when last seen, from where and its client."""
    await server.add_user("bob")
    await refusals_from_a_laptop(server, "bob")
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "bob")
        await open_tab(app, pilot, "h")
        table = history(home)
        fits(table)
        assert labels(table)[:4] == ["Time", "Event", "Result", "IP"]
        assert labels(table)[4] == "Reason"  # then the client, cut to what is left
        await open_tab(app, pilot, "n")
        sessions = history(home, "#sessions-table")
        fits(sessions)
        assert {"Session", "Last seen", "IP", "Client"} <= set(labels(sessions))


async def test_admin_tables_show_their_key_columns_at_80_columns(server: RunningServer) -> None:
    """Tables that fit: Admin > Sign-in history (whose attempt, when, what, result, from
    where), the audit log (when, who, what, to whom) and Services (which, last used, from
    where) at 80x24 with no sideways scrolling."""
    await server.add_user("root", ROOT_PW, admin=True)
    await server.add_user("bob")
    await refusals_from_a_laptop(server, "bob")
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "root", ROOT_PW)
        await app.api.add_service("sshd-bastion", "SSH on the bastion host, for the admins")
        expected = {
            "i": ("#admin-history-table", ["User", "Time", "Event", "Result", "IP"]),
            "l": ("#admin-audit-table", ["Time", "Who", "Action", "Target"]),
            "v": ("#admin-services-table", ["Name", "Last used", "From"]),
        }
        await pilot.press("r")
        await settle(app, pilot)
        for key, (selector, columns) in expected.items():
            await open_tab(app, pilot, key)
            table = history(home, selector)
            assert table.row_count > 0, selector
            fits(table)
            assert [label for label in labels(table) if label in columns] == columns


async def test_a_selected_history_row_shows_its_client_and_reason(server: RunningServer) -> None:
    """Done when: "a pilot test proves the detail of a selected history row shows its client
    and reason": in the line under the table as the cursor reaches the row, and in the dialog
    Enter opens (Escape closes it)."""
    await server.add_user("bob")
    await refusals_from_a_laptop(server, "bob", count=1)
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "bob")
        await open_tab(app, pilot, "h")
        table = history(home)
        [refused] = [key for key, row in table.records.items() if "failed" in str(row["result"])]
        while table.selected_key != refused:
            await pilot.press("down")
        line = home.query_one("#history .row-detail")
        said = str(line.render())
        assert AGENT in said
        assert "wrong password" in said
        await pilot.press("enter")
        dialog = await dialog_open(app, pilot, RowDetailsScreen)
        shown = "\n".join(str(value.render()) for value in dialog.query(".field-value"))
        assert AGENT in shown
        assert "wrong password" in shown
        assert "127.0.0.1" in shown
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is home, "the dialog to close")


async def test_wider_terminals_show_more_columns(server: RunningServer) -> None:
    """Tables that fit: "wider terminals show more columns", laid out again on a resize; the
    reason comes before the client."""
    await server.add_user("bob")
    await refusals_from_a_laptop(server, "bob")
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "bob")
        await open_tab(app, pilot, "h")
        table = history(home)
        narrow = labels(table)
        await pilot.resize_terminal(160, 40)
        await settle(app, pilot)
        wide = labels(table)
        assert set(narrow) < set(wide)
        assert {"Reason", "Client", "Method"} <= set(wide)
        assert wide.index("Reason") < wide.index("Client")
        fits(table)


def test_columns_are_kept_by_priority_and_cut_only_to_their_least_width() -> None:
    """The rule behind the layout: key columns always (cut down to their least width when
    short of room), then the others by priority while they fit."""
    columns = (
        FitColumn("a", "A"),
        FitColumn("b", "B", min_width=5),
        FitColumn("c", "C", priority=2, min_width=4),
        FitColumn("d", "D", priority=1),
    )
    natural = {"a": 10, "b": 20, "c": 30, "d": 6}
    assert plan_columns(columns, natural, None) == natural
    assert plan_columns(columns, natural, 24) == {"a": 10, "b": 10}
    assert plan_columns(columns, natural, 34) == {"a": 10, "b": 20}
    assert plan_columns(columns, natural, 42) == {"a": 10, "b": 20, "d": 6}
    assert plan_columns(columns, natural, 48) == {"a": 10, "b": 20, "c": 4, "d": 6}
    assert plan_columns(columns, natural, 200) == {"a": 10, "b": 20, "c": 30, "d": 6}


# The DEMO panel


def seen(screen: Any, widget: Widget) -> Region:
    """The part of `widget` drawn on screen (inside what clips it)."""
    try:
        geometry = screen.find_widget(widget)
    except NoWidget:
        return Region()
    return geometry.region.intersection(geometry.clip)


def covered_by_the_demo_panel(app: TfaApp) -> list[Widget]:
    """The widgets drawn on the screen on top (the smallest ones: buttons, fields, texts,
    tables) that the DEMO panel lies over."""
    screen = app.screen
    panel = screen.query_one(DemoPanel)
    strip = seen(screen, panel)
    assert strip.area > 0, "the DEMO panel is not on screen"
    return [
        widget
        for widget in screen.query("*")
        if not widget.children and widget is not panel and seen(screen, widget).overlaps(strip)
    ]


async def nothing_covered(app: TfaApp, pilot: Pilot[None], where: str) -> None:
    """At 80x24 and at 60x20, the DEMO panel covers nothing on the screen on top. Where the
    screen is taller than the terminal it scrolls, as it does under the footer: what lies
    under the panel at the top then comes out above it at the end."""
    screen = app.screen
    for size in ((60, 20), (80, 24)):  # back at 80x24 for the next step
        await pilot.resize_terminal(*size)
        screen.scroll_home(animate=False, immediate=True)
        await pilot.pause()
        under = covered_by_the_demo_panel(app)
        if under:
            screen.scroll_end(animate=False, immediate=True)
            await pilot.pause()
            still = [widget for widget in covered_by_the_demo_panel(app) if widget in under]
            assert not still, (where, size, still)


async def test_the_demo_panel_covers_nothing_on_sign_in_and_set_up(server: RunningServer) -> None:
    """The DEMO panel never covers content at 80x24 nor at 60x20 (it hid the set-up's key and
    Next button there): sign-in and the set-up's steps."""
    await server.add_user("bob")
    async with running_app(server, demo=DemoAccounts()) as (app, pilot):
        assert isinstance(app.screen, SignInScreen)
        await nothing_covered(app, pilot, "sign in")
        await at_home(app, pilot, server, "bob")
        await pilot.click("#connect")
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), "the set-up")
        await settle(app, pilot)
        for step in ("install", "scan", "verify"):
            await nothing_covered(app, pilot, f"set-up: {step}")
            await pilot.press("enter")
            await settle(app, pilot)


@pytest.mark.parametrize("keys", ["shn", "puvil"], ids=["home tabs", "admin sections"])
async def test_the_demo_panel_covers_nothing_on_home(server: RunningServer, keys: str) -> None:
    """The DEMO panel never covers content at 80x24 (it cut the end of the tab bar, the
    tables' right-hand columns, the Admin filter row and the Users' Delete button) nor at
    60x20: every Home tab and Admin section."""
    await server.add_user("root", ROOT_PW, admin=True)
    async with running_app(server, demo=DemoAccounts()) as (app, pilot):
        await at_home(app, pilot, server, "root", ROOT_PW)
        for key in keys:  # p: the Admin tab's first section
            await pilot.press(key)
            await pilot.pause()
            await nothing_covered(app, pilot, f"home, key {key}")


async def test_the_demo_panel_covers_nothing_on_the_code_screens(server: RunningServer) -> None:
    """The DEMO panel never covers content at 80x24 nor at 60x20 where a code is typed: the
    second factor, and a dialog that asks for one (its own panel, over the screen's)."""
    secret, _ = await user_with_totp(server, "alice")
    async with running_app(server, demo=DemoAccounts()) as (app, pilot):
        await sign_in(app, pilot, "alice", PASSWORD)
        await wait_for(pilot, lambda: isinstance(app.screen, SecondFactorScreen), "the code")
        await nothing_covered(app, pilot, "second factor")
        await pilot.press(*totp_code(secret, server.clock))
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "home")
        await settle(app, pilot)
        await pilot.press("g")
        await dialog_open(app, pilot, ReauthScreen)
        await nothing_covered(app, pilot, "a dialog with a code field")


async def test_f2_hides_and_shows_the_demo_panel(server: RunningServer) -> None:
    """The DEMO panel: "F2 still hides it", and the screen's content takes its lines back."""
    async with running_app(server, demo=DemoAccounts()) as (app, pilot):
        card = app.screen.query_one("#card")
        assert app.screen.query(DemoPanel)
        await pilot.press("f2")
        await pilot.pause()
        assert not app.screen.query(DemoPanel)
        await pilot.press("f2")
        await pilot.pause()
        assert app.screen.query(DemoPanel)
        assert card.region.height > 0


# The key map


async def test_the_key_map_lists_the_keys_of_the_screen(server: RunningServer) -> None:
    """Also: "a key map: ? or F1 shows every key of the current screen in a dialog", the
    keys the footer has no room for included; Escape closes it."""
    await server.add_user("root", ROOT_PW, admin=True)
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "root", ROOT_PW)
        await open_tab(app, pilot, "h")
        for key in ("question_mark", "f1"):
            await pilot.press(key)
            dialog = await dialog_open(app, pilot, KeyMapScreen)
            listed = "\n".join(str(part.render()) for part in dialog.query(".entries"))
            for words in ("Change password", "Refresh", "Sign out", "Quit", "Audit log"):
                assert words in listed, words
            assert "Details" in listed  # the focused table's Enter
            assert "f1, ?" in listed
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen is home, "the key map to close")


async def test_a_question_mark_still_types_into_a_field(server: RunningServer) -> None:
    """The key map's `?` does not take the character from a field (a password may hold one)."""
    async with running_app(server) as (app, pilot):
        assert isinstance(app.screen, SignInScreen)
        await pilot.press("a", "?", "b")
        await pilot.pause()
        assert app.screen.query_one("#username", Input).value == "a?b"
        assert isinstance(app.screen, SignInScreen)
        await pilot.press("f1")
        await dialog_open(app, pilot, KeyMapScreen)
