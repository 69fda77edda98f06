"""Issue 15, "Administrators: one place per user", in the terminal client: Admin > Users asks
the server for a page at a time, narrowed by name (as you type) and by state (the toggles),
sorts the loaded rows by any column, and Enter opens the account's detail screen, where the
same actions work and the screen shows what they did.

Everything runs against the real server on 127.0.0.1 (port 0) at 80x24; each test checks what
the screen says and what the server really did. Each docstring names its point: "Filter",
"Toggles", "Paging", "Sort", "Detail", "Detail actions".
"""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import TabbedContent

from tfa_server.admin import Admin
from tfa_tui.app import TfaApp
from tfa_tui.screens.confirm import ConfirmScreen
from tfa_tui.screens.user_detail import UserDetailScreen
from tfa_tui.widgets.activity_chart import ActivityChart
from tfa_tui.widgets.admin_users import UsersSection
from tfa_tui.widgets.fit_table import FitTable

from ..conftest import RunningServer, bearer, enable_totp, login
from .conftest import (
    CountingTransport,
    at_home,
    dialog_open,
    running_app,
    settle,
    shown,
    type_into,
    wait_for,
)

ROOT_PW = "root-pw-1"
LIST = "GET /api/v1/admin/users"


async def open_users(app: TfaApp, pilot: Pilot[None]) -> UsersSection:
    await pilot.press("u")
    await settle(app, pilot)
    assert app.screen.query_one("#admin-tabs", TabbedContent).active == "admin-users"
    return app.screen.query_one(UsersSection)


def table(section: UsersSection) -> FitTable:
    return section.query_one("#admin-users-table", FitTable)


def names(section: UsersSection) -> list[str]:
    """The rows' keys (the usernames), top to bottom."""
    return [str(key.value) for key in table(section).rows]


def count_line(app: TfaApp) -> str:
    return shown(app, "#admin-users-count")


async def wrong_passwords(server: RunningServer, name: str, times: int) -> None:
    async with server.client() as http:
        for _ in range(times):
            await http.post("/api/v1/login", json={"username": name, "password": "not it"})


async def test_typing_narrows_the_list_by_the_servers_answer(server: RunningServer) -> None:
    """Filter (`/` goes there): what is typed is sent to the server once typing pauses (two
    quick keys, one request), and the rows are the server's answer: with a page of two, "o"
    brings bob and carol, whom the first page had not loaded."""
    await server.add_user("root", ROOT_PW, admin=True)
    for name in ("alice", "alina", "bob", "carol"):
        await server.add_user(name)
    requests = CountingTransport()
    async with running_app(server, transport=requests) as (app, pilot):
        await at_home(app, pilot, server, "root", ROOT_PW)
        section = await open_users(app, pilot)
        section.page_size = 2
        section.load_users()
        await settle(app, pilot)
        assert names(section) == ["alice", "alina"]

        asked = requests.requests.count(LIST)
        await pilot.press("slash")  # `/` goes to the filter, as in less and htop
        assert app.focused is app.screen.query_one("#admin-users-filter")
        await type_into(pilot, app, "#admin-users-filter", "li")
        await settle(app, pilot)
        assert requests.requests.count(LIST) == asked + 1  # "l" was never asked alone
        assert names(section) == ["alice", "alina"]
        assert count_line(app).startswith("2 accounts")

        await pilot.press("backspace", "backspace", "o")
        await settle(app, pilot)
        assert names(section) == ["bob", "carol"]
        assert count_line(app).startswith("2 shown, more on the server")


async def test_a_toggle_narrows_by_state(server: RunningServer) -> None:
    """Toggles: "Locked" shows only the locked account, "Admins" only administrators, "No 2FA"
    only those without it (each unticked again before the next)."""
    await server.add_user("root", ROOT_PW, admin=True)
    await server.add_user("bob")
    await server.add_user("carol")
    async with server.client() as http:
        await enable_totp(http, (await login(http, "bob"))["token"], server.clock)
    await wrong_passwords(server, "carol", 5)
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "root", ROOT_PW)
        section = await open_users(app, pilot)
        assert names(section) == ["bob", "carol", "root"]
        await pilot.click("#admin-users-locked")
        await settle(app, pilot)
        assert names(section) == ["carol"]
        await pilot.click("#admin-users-locked")  # unticked: everyone again
        await pilot.click("#admin-users-admins")
        await settle(app, pilot)
        assert names(section) == ["root"]
        await pilot.click("#admin-users-admins")
        await pilot.click("#admin-users-no-2fa")
        await settle(app, pilot)
        assert names(section) == ["carol", "root"]


async def test_the_next_page_comes_with_o_and_at_the_last_row(server: RunningServer) -> None:
    """Paging: a page at a time; the count line says more are on the server; `o` loads the
    next page, and moving the cursor onto the last row loads the one after."""
    await server.add_user("root", ROOT_PW, admin=True)
    for number in range(6):
        await server.add_user(f"user{number}")
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "root", ROOT_PW)
        section = await open_users(app, pilot)
        section.page_size = 3
        section.load_users()
        await settle(app, pilot)
        assert names(section) == ["root", "user0", "user1"]
        assert count_line(app).startswith("3 shown, more on the server")

        await pilot.press("o")
        await settle(app, pilot)
        assert names(section) == ["root", "user0", "user1", "user2", "user3", "user4"]

        await pilot.press(*["down"] * 5)  # onto the last row: the rest comes
        await settle(app, pilot)
        assert names(section)[-2:] == ["user4", "user5"]
        assert len(names(section)) == 7
        assert count_line(app).startswith("7 accounts")


async def click_header(pilot: Pilot[None], section: UsersSection, key: str) -> None:
    """Click a column's label in the table's header row."""
    shown_table = table(section)
    x = 0
    for column in shown_table.ordered_columns:
        if column.key.value == key:
            break
        x += column.get_render_width(shown_table)
    await pilot.click(shown_table, offset=(x + 1, 0))


async def test_sorting_reorders_the_loaded_rows(server: RunningServer) -> None:
    """Sort: `z` moves the sort to the next column (Admin: administrators first); a click on
    "Last sign-in" orders the rows newest first (never signed in last), and the count line
    says so; a second click reverses."""
    await server.add_user("root", ROOT_PW, admin=True)
    for name in ("anna", "bert", "cleo"):
        await server.add_user(name)
    async with server.client() as http:
        for name in ("cleo", "anna"):  # cleo first, anna an hour later, root last
            await login(http, name)
            server.clock.advance(3_600)
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "root", ROOT_PW)
        section = await open_users(app, pilot)
        assert names(section) == ["anna", "bert", "cleo", "root"]
        assert "sorted by Username, A-Z" in count_line(app)

        await pilot.press("z")
        assert names(section) == ["root", "anna", "bert", "cleo"]
        assert "sorted by Admin, administrators first" in count_line(app)

        await click_header(pilot, section, "last")
        await settle(app, pilot)
        assert names(section) == ["root", "anna", "cleo", "bert"]
        assert "sorted by Last sign-in, newest first" in count_line(app)
        assert str(table(section).columns[table(section).ordered_columns[3].key].label) == (
            "Last sign-in ▲"
        )

        await click_header(pilot, section, "last")
        await settle(app, pilot)
        assert names(section) == ["bert", "cleo", "anna", "root"]
        assert "newest first reversed" in count_line(app)


async def open_detail(app: TfaApp, pilot: Pilot[None], name: str) -> UserDetailScreen:
    """Admin > Users, the cursor onto `name`, then Enter."""
    section = await open_users(app, pilot)
    rows = table(section)
    rows.focus()
    rows.move_cursor(row=rows.get_row_index(name))
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, UserDetailScreen), "the detail")
    await settle(app, pilot)
    assert isinstance(app.screen, UserDetailScreen)
    return app.screen


def fact(app: TfaApp, name: str) -> str:
    """One line of the detail's facts, without its name."""
    for line in shown(app, "#user-detail-facts").splitlines():
        if line.startswith(name + " "):
            return line[len(name) :].strip()
    raise AssertionError(f"no {name} line")


async def bob_with_2fa_and_a_lock(server: RunningServer) -> None:
    """bob: 2FA on, one recovery code spent on a sign-in, then locked by wrong passwords."""
    await server.add_user("bob")
    async with server.client() as http:
        _secret, codes = await enable_totp(http, (await login(http, "bob"))["token"], server.clock)
        first = await login(http, "bob")
        spent = await http.post(
            "/api/v1/login/recovery", headers=bearer(first["token"]), json={"code": codes[0]}
        )
        assert spent.status_code == 200, spent.text
    await wrong_passwords(server, "bob", 5)


async def test_enter_opens_the_detail_with_the_facts(server: RunningServer) -> None:
    """Detail: Enter on a user opens their screen: 2FA on with the recovery codes left, the
    lock with its seconds, the last sign-in with address and client, the recent history (the
    refusals marked ✘) and the activity chart with today's counts. Escape goes back."""
    await server.add_user("root", ROOT_PW, admin=True)
    await bob_with_2fa_and_a_lock(server)
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "root", ROOT_PW)
        detail = await open_detail(app, pilot, "bob")
        assert shown(app, "#user-detail-title") == "bob"
        assert fact(app, "2FA").startswith("on since ")
        assert fact(app, "2FA").endswith("; 9 recovery codes left")
        assert fact(app, "Locked").startswith("yes, 30 s left")
        assert fact(app, "Disabled") == "no"
        assert fact(app, "Administrator") == "no"
        last = fact(app, "Last sign-in")
        assert last.endswith(" from 127.0.0.1, tfa-tests/1.0"), last

        history = shown(app, "#user-detail-history").splitlines()
        assert len(history) <= 10
        assert "✘ Password" in history[0]
        assert "wrong password" in history[0]
        chart = detail.query_one("#user-detail-activity", ActivityChart)
        assert chart.failed[-1] == 5
        assert chart.succeeded[-1] >= 1
        assert len(chart.succeeded) == 30

        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is home, "the list again")


async def test_an_action_in_the_detail_takes_effect_and_shows(server: RunningServer) -> None:
    """Detail actions: U unlocks (the server clears the lock; the detail says "no"), D asks and
    disables (the server has it; the detail says since when and its button offers Enable);
    back in the list, the row says "disabled". X from the detail deletes the account and goes
    back to the list, which no longer has it."""
    await server.add_user("root", ROOT_PW, admin=True)
    await server.add_user("bob")
    await wrong_passwords(server, "bob", 5)
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "root", ROOT_PW)
        detail = await open_detail(app, pilot, "bob")
        assert fact(app, "Locked").startswith("yes")

        await pilot.press("u")
        await settle(app, pilot)
        bob = await Admin(server.core).get_user("bob")
        assert bob.locked_until is None
        assert fact(app, "Locked") == "no"

        await pilot.press("d")
        await dialog_open(app, pilot, ConfirmScreen)
        await pilot.click("#confirm")
        await wait_for(pilot, lambda: app.screen is detail, "the detail again")
        await settle(app, pilot)
        bob = await Admin(server.core).get_user("bob")
        assert bob.disabled_at is not None
        assert fact(app, "Disabled").startswith("yes, since ")
        assert str(detail.query_one("#detail-disable").label) == "Enable (e)"  # type: ignore[attr-defined]

        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is home, "the list again")
        await settle(app, pilot)
        section = home.query_one(UsersSection)
        assert str(table(section).get_row("bob")[table(section).get_column_index("state")]) == (
            "disabled"
        )

        await open_detail(app, pilot, "bob")  # deleted from its detail: gone from the list too
        await pilot.press("x")
        await dialog_open(app, pilot, ConfirmScreen)
        await pilot.click("#confirm")
        await wait_for(pilot, lambda: app.screen is home, "the list again")
        await settle(app, pilot)
        assert names(section) == ["root"]
    assert [user.username for user in (await Admin(server.core).list_users()).items] == ["root"]
