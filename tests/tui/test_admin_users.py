"""Issue 14 in the terminal client, the administrator's side: Admin > Users acts on the
selected account (reset its password, disable and enable it, delete it, grant and remove
administrator rights), and Admin > Sign-in history marks the rows of deleted accounts.

Everything runs against the real server on 127.0.0.1 (port 0) at 80x24; each test checks what
the screen says and what the server really did. Each docstring names its point of the issue:
"State" (the Users table shows each account's state in words), "Actions" (the keys, buttons,
questions and notices), "Refusals" (the server's safety rules said in its words), "Reset
password", "Deleted history".
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from rich.text import Text
from textual.content import Content
from textual.pilot import Pilot
from textual.widgets import Button, Checkbox, DataTable, Input, TabbedContent
from textual.widgets._data_table import default_cell_formatter

from tfa_protocol.types import RECOVERY_ALPHABET, AdminUser, PasswordChangeRequired
from tfa_server.admin import Actor, Admin
from tfa_tui.api import Authenticated
from tfa_tui.api.client import TfaClient
from tfa_tui.app import TfaApp
from tfa_tui.screens.confirm import ConfirmScreen
from tfa_tui.screens.home import HomeScreen
from tfa_tui.screens.password_shown import PasswordShownScreen
from tfa_tui.screens.reset_password import ResetPasswordScreen, suggest_password
from tfa_tui.widgets.admin_pane import ACTIONS, AdminPane, audit_detail
from tfa_tui.widgets.admin_users import button_name, state_cell

from ..conftest import PASSWORD, RunningServer, bearer, login
from .conftest import at_home, dialog_open, notices, running_app, settle, shown, wait_for

ROOT_PW = "root-pw-1"
CONSOLE = Actor("cli:ops", None)  # what the server's console does, for the set-up


# The administrator's side


async def open_users(app: TfaApp, pilot: Pilot[None]) -> AdminPane:
    """The section's key, U, from any tab: the Users table takes the focus."""
    await pilot.press("u")
    await settle(app, pilot)
    pane = app.screen.query_one(AdminPane)
    assert pane.query_one("#admin-tabs", TabbedContent).active == "admin-users"
    return pane


def users_table(pane: AdminPane) -> DataTable[object]:
    return pane.query_one("#admin-users-table", DataTable)


def drawn(cell: object) -> Text:
    """A table cell as the DataTable draws it (a `str` cell is parsed as markup)."""
    text = default_cell_formatter(cell)
    assert isinstance(text, Text)
    return text


def rows(pane: AdminPane, name: str) -> dict[str, list[str]]:
    """A table's rows as shown (plain text), by row key, in order."""
    table: DataTable[object] = pane.query_one(f"#admin-{name}-table", DataTable)
    return {
        str(key.value): [drawn(cell).plain for cell in table.get_row(key)] for key in table.rows
    }


def state_of(pane: AdminPane, username: str) -> str:
    return rows(pane, "users")[username][4]


async def choose(pilot: Pilot[None], pane: AdminPane, username: str) -> None:
    """Move the Users table's cursor to `username` with the arrow keys."""
    table = users_table(pane)
    table.focus()
    await pilot.press("home")
    for _ in range(table.row_count):
        if table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == username:
            return
        await pilot.press("down")
    assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == username


async def question(app: TfaApp, pilot: Pilot[None], key: str) -> tuple[str, str, str]:
    """Press the action's key: the confirmation's title, text and confirm button."""
    await pilot.press(key)
    dialog = await dialog_open(app, pilot, ConfirmScreen)
    label = dialog.query_one("#confirm", Button).label
    return shown(app, "#dialog-title"), shown(app, "#dialog-text"), str(label)


async def answer(app: TfaApp, pilot: Pilot[None], button: str) -> None:
    """Click a button of the dialog on top, then wait for Home and the work it started."""
    await pilot.click(button)
    await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "Home again")
    await settle(app, pilot)


# The server's side


async def on_server(server: RunningServer, username: str) -> AdminUser | None:
    listing = await Admin(server.core).list_users()
    return next((user for user in listing.items if user.username == username), None)


async def signed_in(server: RunningServer, username: str, password: str = PASSWORD) -> str:
    """A live session of the user, over HTTP: its token."""
    async with server.client() as http:
        return str((await login(http, username, password))["token"])


async def session_works(server: RunningServer, token: str) -> bool:
    async with server.client() as http:
        return (await http.get("/api/v1/me", headers=bearer(token))).status_code == 200


# State


def test_the_state_is_in_words_without_colour() -> None:
    """State: disabled, a temporary password, a lock and failed attempts read as words in one
    State column (plain text: nothing in it relies on colour); an account with none is "-"."""
    now = datetime.now(UTC)

    def user(**changes: object) -> AdminUser:
        fields: dict[str, object] = {
            "username": "alice",
            "is_admin": False,
            "totp_enabled": False,
            "totp_enabled_at": None,
            "created_at": now,
            "last_login": None,
            "failed_attempts": 0,
            "locked_until": None,
            "disabled_at": None,
            "password_change_required": False,
            "recovery_codes_left": 0,
        }
        return AdminUser(**{**fields, **changes})  # type: ignore[arg-type]

    assert state_cell(user()) == "-"
    assert state_cell(user(disabled_at=now)) == "disabled"
    assert state_cell(user(password_change_required=True)) == "temporary password"
    assert state_cell(user(failed_attempts=2)) == "2 failed"
    both = user(disabled_at=now, password_change_required=True, failed_attempts=3)
    assert state_cell(both) == "disabled, temporary password, 3 failed"
    locked = user(failed_attempts=5, locked_until=now + timedelta(seconds=90))
    assert re.fullmatch(r"locked, \d+ s left", state_cell(locked))


async def test_the_users_table_marks_disabled_and_temporary_accounts(
    server: RunningServer,
) -> None:
    """State: a disabled account is still listed, marked "disabled"; one with a temporary
    password is marked too; the rest show "-"."""
    await server.add_user("root", ROOT_PW, admin=True)
    for name in ("alice", "bob", "carol"):
        await server.add_user(name)
    await Admin(server.core).disable(CONSOLE, "bob")
    await Admin(server.core).reset_password(CONSOLE, "carol", "carol-temp-1", True)
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "root", ROOT_PW)
        pane = await open_users(app, pilot)
        assert list(rows(pane, "users")) == ["alice", "bob", "carol", "root"]
        assert str(users_table(pane).columns[users_table(pane).ordered_columns[4].key].label) == (
            "State"
        )
        assert state_of(pane, "alice") == "-"
        assert state_of(pane, "bob") == "disabled"
        assert state_of(pane, "carol") == "temporary password"


# Actions


async def test_disable_asks_then_ends_the_sessions_and_enable_lets_them_back(
    server: RunningServer,
) -> None:
    """Actions: D on an enabled account asks, saying what happens; then its live session stops
    at once, the table says "disabled" and a notice says so. The button follows the selected
    account (Disable (d) / Enable (e)); E asks and enables it again. The keys do nothing
    outside the Users section."""
    await server.add_user("root", ROOT_PW, admin=True)
    await server.add_user("alice")
    token = await signed_in(server, "alice")
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "root", ROOT_PW)
        await pilot.press("v")  # Services: D is not for services
        await settle(app, pilot)
        await pilot.press("d")
        await pilot.pause(0.1)
        assert app.screen is home

        pane = await open_users(app, pilot)
        await choose(pilot, pane, "alice")
        toggle = pane.query_one("#admin-disable", Button)
        assert str(toggle.label) == "Disable (d)"
        await pilot.press("e")  # not disabled: nothing to enable, nothing asked
        await pilot.pause(0.1)
        assert app.screen is home
        assert notices(app)[-1] == "alice is not disabled."

        title, text, confirm = await question(app, pilot, "d")
        assert title == "Disable alice?"
        assert "alice's sessions end at once" in text
        assert "cannot sign in until" in text
        assert confirm == "Disable"
        await answer(app, pilot, "#confirm")

        alice = await on_server(server, "alice")
        assert alice is not None
        assert alice.disabled_at is not None
        assert not await session_works(server, token)
        assert state_of(pane, "alice") == "disabled"
        assert notices(app)[-1].startswith("alice is disabled")
        assert str(toggle.label) == "Enable (e)"

        title, text, confirm = await question(app, pilot, "e")
        assert title == "Enable alice?"
        assert "can sign in again" in text
        await answer(app, pilot, "#confirm")
        alice = await on_server(server, "alice")
        assert alice is not None
        assert alice.disabled_at is None
        assert state_of(pane, "alice") == "-"
        assert notices(app)[-1].startswith("alice is enabled")
        assert str(toggle.label) == "Disable (d)"

    assert await signed_in(server, "alice")


async def test_delete_names_the_user_and_cancel_keeps_the_account(server: RunningServer) -> None:
    """Actions: X asks naming the user, says what goes (2FA, recovery codes, sessions) and
    what stays (the sign-in history, for administrators), and its button names the user;
    Cancel keeps the account; confirmed, the account is gone from the server and the table."""
    await server.add_user("root", ROOT_PW, admin=True)
    await server.add_user("alice")
    await server.add_user("bob")
    token = await signed_in(server, "bob")
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "root", ROOT_PW)
        pane = await open_users(app, pilot)
        await choose(pilot, pane, "bob")

        title, text, confirm = await question(app, pilot, "x")
        assert title == "Delete bob?"
        for goes in ("two-factor authentication", "recovery codes", "sessions"):
            assert goes in text
        assert "sign-in history stays" in text
        assert confirm == "Delete bob"
        await answer(app, pilot, "#cancel")
        assert await on_server(server, "bob") is not None
        assert await session_works(server, token)
        assert "bob" in rows(pane, "users")

        await question(app, pilot, "x")
        await answer(app, pilot, "#confirm")
        assert await on_server(server, "bob") is None
        assert not await session_works(server, token)
        assert list(rows(pane, "users")) == ["alice", "root"]
        assert notices(app)[-1].startswith("bob is deleted")


async def test_administrator_rights_are_granted_and_removed(server: RunningServer) -> None:
    """Actions: M on a user asks, saying what an administrator can do, and grants the rights;
    M again asks and removes them. The table and the server follow each time."""
    await server.add_user("root", ROOT_PW, admin=True)
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "root", ROOT_PW)
        pane = await open_users(app, pilot)
        await choose(pilot, pane, "bob")
        assert str(pane.query_one("#admin-admin", Button).label) == "Make admin (m)"

        title, text, confirm = await question(app, pilot, "m")
        assert title == "Make bob an administrator?"
        assert "manage users" in text
        assert confirm == "Make administrator"
        await answer(app, pilot, "#confirm")
        bob = await on_server(server, "bob")
        assert bob is not None
        assert bob.is_admin
        assert rows(pane, "users")["bob"][1] == "✔ admin"
        assert notices(app)[-1] == "bob is now an administrator."
        assert str(pane.query_one("#admin-admin", Button).label) == "Remove admin (m)"

        title, text, _ = await question(app, pilot, "m")
        assert title == "Remove bob's administrator rights?"
        await answer(app, pilot, "#confirm")
        bob = await on_server(server, "bob")
        assert bob is not None
        assert not bob.is_admin
        assert rows(pane, "users")["bob"][1] == ""
        assert notices(app)[-1] == "bob is no longer an administrator."

        audit = rows(pane, "audit")
        actions = [row[2] for row in audit.values()][:2]
        assert actions == ["Admin rights removed", "Made administrator"]


def test_a_name_on_a_button_is_text() -> None:
    """Actions: the delete button names the user; a name another server could send is shown
    as sent (markup characters too), and a long one is cut short (the question has it all)."""
    for name in ("[$x]", "[B]x", "[@click=app.quit]q", "[/]", "x\\[b]y", "a]b"):
        assert Content.from_markup(f"Delete {button_name(name)}").plain == f"Delete {name}"
    assert Content.from_markup(button_name("a" * 64)).plain == "a" * 19 + "…"


def test_the_audit_log_says_each_act_on_an_account_in_words() -> None:
    """Actions: the audit log names each new act and its details in words."""
    assert ACTIONS["password_reset"] == "Password set"
    assert audit_detail("password_reset", {"temporary": True, "sessions_ended": 2}) == (
        "temporary, 2 session(s) ended"
    )
    assert audit_detail("user_disabled", {"sessions_ended": 1}) == "1 session(s) ended"
    assert audit_detail("user_enabled", {"disabled_seconds": 90_000}) == "disabled for 1 day"
    assert audit_detail("user_enabled", {"disabled_seconds": 7_300}) == "disabled for 2 h"
    assert audit_detail("user_enabled", {"disabled_seconds": 42}) == "disabled for 42 s"
    deleted = {"was_admin": False, "had_2fa": True, "sessions_ended": 0}
    assert audit_detail("user_deleted", deleted) == "user, had 2FA, 0 session(s) ended"
    assert audit_detail("admin_revoked", {"is_admin": False}) == "no longer administrator"
    for action in ("user_disabled", "user_enabled", "user_deleted", "admin_granted"):
        assert action in ACTIONS
    rotated = {"generation": 2, "totp_secrets": 40, "pending_setups": 1, "recovery_codes": 390}
    assert ACTIONS["server_key_rotated"] == "Server key rotated"
    assert audit_detail("server_key_rotated", rotated) == (
        "generation 2: 40 2FA secret(s), 390 recovery code(s) re-keyed"
    )


# Refusals


async def test_the_last_administrator_is_kept_and_the_refusal_is_said(
    server: RunningServer,
) -> None:
    """Refusals: alone as administrator, removing your own rights and disabling yourself are
    refused by the server, whose words are shown; nothing changes on the server or in the
    table, and you stay in the Admin tab."""
    await server.add_user("root", ROOT_PW, admin=True)
    await server.add_user("alice")
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "root", ROOT_PW)
        pane = await open_users(app, pilot)
        await choose(pilot, pane, "root")
        before = rows(pane, "users")

        title, _text, _confirm = await question(app, pilot, "m")
        assert title == "Remove your own administrator rights?"
        await answer(app, pilot, "#confirm")
        assert notices(app)[-1] == (
            "root is the last enabled administrator, so you cannot remove administrator rights"
            " from this account. Make another account an administrator first."
        )
        root = await on_server(server, "root")
        assert root is not None
        assert root.is_admin

        await question(app, pilot, "d")
        await answer(app, pilot, "#confirm")
        assert notices(app)[-1] == (
            "You cannot disable your own account: another administrator must do it."
        )
        root = await on_server(server, "root")
        assert root is not None
        assert root.disabled_at is None

        await pilot.press("w")  # their own password: the Security tab's way, which keeps them in
        await pilot.pause(0.1)
        assert app.screen is home
        assert notices(app)[-1].startswith("To change your own password, use Change password")

        assert rows(pane, "users") == before
        assert app.screen is home
        assert home.query_one(AdminPane) is pane


async def test_removing_your_own_rights_leaves_the_admin_tab(server: RunningServer) -> None:
    """Refusals: with another administrator left, removing your own rights is allowed (after
    a question that says so); Home comes back without the Admin tab."""
    await server.add_user("root", ROOT_PW, admin=True)
    await server.add_user("ann", admin=True)
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "root", ROOT_PW)
        pane = await open_users(app, pilot)
        await choose(pilot, pane, "root")
        _title, text, _confirm = await question(app, pilot, "m")
        assert "the Admin tab goes away" in text
        await pilot.click("#confirm")
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, HomeScreen) and app.screen is not home,
            "Home again",
        )
        await settle(app, pilot)
        assert not app.screen.query(AdminPane)
        assert "You are no longer an administrator." in notices(app)
    root = await on_server(server, "root")
    assert root is not None
    assert not root.is_admin


# Reset password


def test_a_suggested_password_is_long_random_and_readable() -> None:
    """Reset password: the suggestion is four groups of four from the unambiguous alphabet of
    the recovery codes (no 0/O, 1/I/L), in lower case, from `secrets`: 80 bits or so."""
    shape = re.compile(
        rf"[{RECOVERY_ALPHABET.lower()}]{{4}}(-[{RECOVERY_ALPHABET.lower()}]{{4}}){{3}}"
    )
    suggestions = {suggest_password() for _ in range(20)}
    assert len(suggestions) == 20
    for suggestion in suggestions:
        assert shape.fullmatch(suggestion), suggestion
        assert len(suggestion.replace("-", "")) >= 16


async def test_a_reset_with_the_suggested_password_makes_the_user_change_it(
    server: RunningServer,
) -> None:
    """Reset password: W opens the dialog with a suggested password and "temporary" ticked,
    saying that the user's sessions end; after it, the password is shown once (never in a
    notice), the table says "temporary password", the old session is over and the user's next
    sign-in answers password_change_required."""
    await server.add_user("root", ROOT_PW, admin=True)
    await server.add_user("alice")
    token = await signed_in(server, "alice")
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "root", ROOT_PW)
        pane = await open_users(app, pilot)
        await choose(pilot, pane, "alice")
        await pilot.press("w")
        dialog = await dialog_open(app, pilot, ResetPasswordScreen)
        suggested = dialog.query_one("#password", Input).value
        assert len(suggested) >= 16
        assert dialog.query_one("#temporary", Checkbox).value is True
        said = shown(app, "#dialog-title") + " " + shown(app, "#dialog-text")
        assert "alice" in said
        assert "sessions end" in said

        await pilot.click("#set")
        screen = await dialog_open(app, pilot, PasswordShownScreen)
        assert suggested in shown(app, "#secret")
        assert "must choose a new one" in shown(app, "#warning")
        await pilot.click("#stored")
        await answer(app, pilot, "#done")
        assert not screen.is_attached

        assert state_of(pane, "alice") == "temporary password"
        assert not any(suggested in notice for notice in notices(app))
        assert notices(app)[-1].startswith("alice's password is set")

    assert not await session_works(server, token)
    async with TfaClient(server.base_url) as api:
        assert isinstance(await api.login("alice", suggested), PasswordChangeRequired)


async def test_a_typed_password_that_is_not_temporary(server: RunningServer) -> None:
    """Reset password: a typed password instead of the suggestion, too short first (said in
    the dialog, which stays open), then one that is not temporary: the user signs in with it
    as usual."""
    await server.add_user("root", ROOT_PW, admin=True)
    await server.add_user("alice")
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "root", ROOT_PW)
        pane = await open_users(app, pilot)
        await choose(pilot, pane, "alice")
        await pilot.press("w")
        dialog = await dialog_open(app, pilot, ResetPasswordScreen)
        assert app.focused is dialog.query_one("#password")
        await pilot.press("ctrl+u", *"short", "enter")
        await wait_for(pilot, lambda: shown(app, "#dialog-error") != "", "the problem")
        assert shown(app, "#dialog-error") == "Passwords need at least 8 characters."
        assert app.screen is dialog

        await pilot.press("ctrl+u", *"typed-pw2")
        await pilot.click("#temporary")
        assert dialog.query_one("#temporary", Checkbox).value is False
        await pilot.click("#set")
        await dialog_open(app, pilot, PasswordShownScreen)
        assert "typed-pw2" in shown(app, "#secret")
        await pilot.click("#stored")
        await answer(app, pilot, "#done")
        assert state_of(pane, "alice") == "-"

    async with TfaClient(server.base_url) as api:
        assert isinstance(await api.login("alice", "typed-pw2"), Authenticated)


# Deleted history


async def test_history_of_a_deleted_account_is_marked(server: RunningServer) -> None:
    """Deleted history: in Admin > Sign-in history, the rows of a deleted account read
    "alice (deleted)" (plain text), and those of a new account with the same name do not."""
    await server.add_user("root", ROOT_PW, admin=True)
    await server.add_user("alice")
    await signed_in(server, "alice")
    await Admin(server.core).delete(CONSOLE, "alice")
    await server.add_user("alice")
    await signed_in(server, "alice")
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "root", ROOT_PW)
        await pilot.press("i")
        await settle(app, pilot)
        pane = app.screen.query_one(AdminPane)
        users = [row[0] for row in rows(pane, "history").values()]
        assert users.count("alice") == 1  # the new account's sign-in
        assert users.count("alice (deleted)") >= 2  # the old one's sign-in and its deletion
        assert set(users) == {"root", "alice", "alice (deleted)"}
