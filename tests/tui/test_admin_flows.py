"""The Admin tab, driven by keyboard and mouse at 80x24 against the real server.

Every test signs in through the real Sign in screen and checks both what the screen shows and
what the server really did. Dialogs opened by `push_screen_wait` are waited for by polling,
never with `settle()` (its wait for the workers would wait for the dialog's answer).
"""

from __future__ import annotations

from typing import Any

import msgspec
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Button, DataTable, Select, Static, Switch, TabbedContent

from tfa_server.admin import Admin
from tfa_tui.app import TfaApp
from tfa_tui.screens.add_user import AddUserScreen
from tfa_tui.screens.confirm import ConfirmScreen
from tfa_tui.screens.home import HomeScreen
from tfa_tui.screens.setup import SetupScreen
from tfa_tui.widgets.admin_pane import AdminPane
from tfa_tui.widgets.fit_table import FitTable

from ..conftest import PASSWORD, RunningServer, bearer, enable_totp, login
from .conftest import running_app, settle, wait_for

SECTIONS = ("admin-policy", "admin-users", "admin-history", "admin-audit")
# Typing costs ~0.1 s a key under Pilot: whoever signs in on screen has a short password.
TYPED = "typed-pw"


# Helpers: the person's side


async def sign_in(app: TfaApp, pilot: Pilot[None], name: str, password: str = PASSWORD) -> None:
    await pilot.click("#username")
    await pilot.press(*name, "enter")  # Enter moves on to the password
    await pilot.press(*password, "enter")
    await settle(app, pilot)
    assert isinstance(app.screen, HomeScreen), "the sign-in did not reach the home screen"


async def open_admin(app: TfaApp, pilot: Pilot[None], section: str = "admin-policy") -> AdminPane:
    """Key `a`, then the section's tab by mouse (which also proves the tab is on screen)."""
    await pilot.press("a")
    await settle(app, pilot)
    assert app.screen.query_one(TabbedContent).active == "admin"
    pane = app.screen.query_one(AdminPane)
    if section != "admin-policy":
        await pilot.click(f"#--content-tab-{section}")
        await settle(app, pilot)
    assert pane.query_one("#admin-tabs", TabbedContent).active == section
    return pane


async def wait_for_dialog(app: TfaApp, pilot: Pilot[None], kind: type[Any]) -> Any:
    await wait_for(pilot, lambda: isinstance(app.screen, kind), f"the {kind.__name__}")
    await wait_for(pilot, lambda: bool(app.screen.query("Button")), "the dialog's buttons")
    return app.screen


async def answer(app: TfaApp, pilot: Pilot[None], button: str) -> None:
    """Click a ConfirmScreen button, wait until the dialog is gone and the work is done."""
    await pilot.click(button)
    await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "the dialog to close")
    await settle(app, pilot)


def rows(pane: AdminPane, name: str) -> dict[str, list[str]]:
    """A table's rows as shown, by row key, newest (or first) first."""
    table: DataTable[str] = pane.query_one(f"#admin-{name}-table", DataTable)
    return {str(key.value): [str(cell) for cell in table.get_row(key)] for key in table.rows}


def users_shown(pane: AdminPane) -> dict[str, list[str]]:
    return rows(pane, "users")


async def choose_user(pilot: Pilot[None], pane: AdminPane, username: str) -> None:
    """Move the Users table's cursor to `username` with the arrow keys."""
    table: DataTable[str] = pane.query_one("#admin-users-table", DataTable)
    table.focus()
    await pilot.press("home")
    for _ in range(table.row_count):
        if table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == username:
            return
        await pilot.press("down")
    assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == username


def text_of(widget: Widget) -> str:
    assert isinstance(widget, Static)
    return str(widget.content)


# Helpers: the server's side


# As the API writes them (times in RFC 3339), so the checks read like the wire.


async def policy_on_server(server: RunningServer) -> dict[str, Any]:
    return msgspec.to_builtins(await Admin(server.core).get_policy())  # type: ignore[no-any-return]


async def user_on_server(server: RunningServer, username: str) -> dict[str, Any] | None:
    listing = msgspec.to_builtins(await Admin(server.core).list_users())
    return next((u for u in listing["items"] if u["username"] == username), None)


async def audit_on_server(server: RunningServer) -> list[dict[str, Any]]:
    audit = msgspec.to_builtins(await Admin(server.core).audit_log(200, None))
    return audit["items"]  # type: ignore[no-any-return]


# (a) The policy


async def test_forcing_2fa_is_confirmed_saved_and_enforced(server: RunningServer) -> None:
    await server.add_user("root", TYPED, admin=True)
    await server.add_user("alice")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "root", TYPED)
        pane = await open_admin(app, pilot)
        assert text_of(pane.query_one("#admin-force-state")) == "off"

        await pilot.click("#admin-force")
        assert pane.query_one("#admin-force", Switch).value is True
        await wait_for(
            pilot,
            lambda: text_of(pane.query_one("#admin-force-state")) == "on - not saved yet",
            "the unsaved state in words",
        )
        await pilot.click("#admin-save")
        dialog = await wait_for_dialog(app, pilot, ConfirmScreen)
        said = text_of(dialog.query_one("#dialog-title")) + text_of(
            dialog.query_one("#dialog-text")
        )
        assert "Force two-factor authentication?" in said
        assert "before they can do anything else" in said  # what happens to users without 2FA
        assert "2 of 2 users have no two-factor authentication yet: alice, root." in said
        assert "That includes you: you will set it up right after saving." in said
        await pilot.click("#confirm")
        # The policy holds this administrator too: straight into the setup, as it said.
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), "the setup")
        await settle(app, pilot)
        assert "Your administrator requires" in text_of(app.screen.query_one("#forced"))

        saved = await policy_on_server(server)
        assert saved["force_2fa"] is True
        assert saved["grace_period_days"] == 0

    async with server.client() as http:
        assert (await login(http, "alice"))["status"] == "enrollment_required"


async def test_cancelling_the_policy_confirmation_changes_nothing(server: RunningServer) -> None:
    await server.add_user("root", TYPED, admin=True)
    await server.add_user("alice")
    before = await policy_on_server(server)
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "root", TYPED)
        pane = await open_admin(app, pilot)
        # By keyboard this time: the switch follows the section's tabs in the focus order.
        await pilot.press("tab")
        assert app.focused is pane.query_one("#admin-force")
        await pilot.press("space")
        await pilot.click("#admin-save")
        await wait_for_dialog(app, pilot, ConfirmScreen)
        await answer(app, pilot, "#cancel")

        assert await policy_on_server(server) == before
        assert before["force_2fa"] is False
        assert not [e for e in await audit_on_server(server) if e["action"] == "policy_changed"]
        assert "not forced" in text_of(pane.query_one("#admin-policy-status"))

    async with server.client() as http:
        assert (await login(http, "alice"))["status"] == "authenticated"


# (b) Reset 2FA


async def test_reset_2fa_after_confirmation_turns_it_off(server: RunningServer) -> None:
    await server.add_user("root", TYPED, admin=True)
    await server.add_user("bob")
    async with server.client() as http:
        bob_token = (await login(http, "bob"))["token"]
        await enable_totp(http, bob_token, server.clock)
    assert (await user_on_server(server, "bob") or {})["totp_enabled"] is True

    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "root", TYPED)
        pane = await open_admin(app, pilot, "admin-users")
        assert "on" in users_shown(pane)["bob"][2]
        await choose_user(pilot, pane, "bob")

        await pilot.click("#admin-reset")  # first time: Escape backs out
        dialog = await wait_for_dialog(app, pilot, ConfirmScreen)
        assert text_of(dialog.query_one("#dialog-title")) == "Reset 2FA of bob?"
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "the dialog to close")
        assert (await user_on_server(server, "bob") or {})["totp_enabled"] is True

        await pilot.click("#admin-reset")
        dialog = await wait_for_dialog(app, pilot, ConfirmScreen)
        assert "signs them out everywhere" in text_of(dialog.query_one("#dialog-text"))
        await answer(app, pilot, "#confirm")

        assert (await user_on_server(server, "bob") or {})["totp_enabled"] is False
        assert "off" in users_shown(pane)["bob"][2]
        assert isinstance(app.screen, HomeScreen)  # the admin is still signed in

    async with server.client() as http:  # bob's session ended with the reset
        gone = await http.get("/api/v1/me", headers=bearer(bob_token))
        assert gone.status_code == 401
        assert (await login(http, "bob"))["status"] == "authenticated"


# (c) Unlock


async def test_unlock_clears_a_locked_account(server: RunningServer) -> None:
    await server.add_user("root", TYPED, admin=True)
    await server.add_user("carol")
    async with server.client() as http:
        for _ in range(5):
            wrong = await http.post(
                "/api/v1/login", json={"username": "carol", "password": "not her password"}
            )
            assert wrong.status_code == 401
        locked = await http.post("/api/v1/login", json={"username": "carol", "password": PASSWORD})
        assert locked.status_code == 429
    assert (await user_on_server(server, "carol") or {})["locked_until"] is not None

    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "root", TYPED)
        pane = await open_admin(app, pilot, "admin-users")
        assert users_shown(pane)["carol"][4] != "-"  # "Locked until" shows a time
        await choose_user(pilot, pane, "carol")
        await pilot.click("#admin-unlock")
        await settle(app, pilot)

        carol = await user_on_server(server, "carol") or {}
        assert carol["locked_until"] is None
        assert carol["failed_attempts"] == 0
        assert users_shown(pane)["carol"][4] == "-"

    async with server.client() as http:
        assert (await login(http, "carol"))["status"] == "authenticated"


# (d) Add a user


async def test_add_user_then_a_duplicate_is_refused_in_words(server: RunningServer) -> None:
    await server.add_user("root", TYPED, admin=True)
    await server.add_user("alice")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "root", TYPED)
        pane = await open_admin(app, pilot, "admin-users")

        await pilot.press("plus")  # the key the button names
        dialog = await wait_for_dialog(app, pilot, AddUserScreen)
        assert app.focused is dialog.query_one("#username")
        await pilot.press(*"dave", "enter", *"pw-dave1", "enter", *"pw-dave2", "enter")
        assert text_of(dialog.query_one("#dialog-error")) == "The two passwords are not the same."
        assert app.focused is dialog.query_one("#repeat")
        await pilot.press("ctrl+u", *"pw-dave1", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "the dialog to close")
        await settle(app, pilot)

        dave = await user_on_server(server, "dave")
        assert dave is not None
        assert dave["is_admin"] is False
        assert "dave" in users_shown(pane)

        await pilot.click("#admin-add")
        dialog = await wait_for_dialog(app, pilot, AddUserScreen)
        await pilot.press(*"alice", "enter", *"pw-12345", "enter", *"pw-12345", "enter")
        error = dialog.query_one("#dialog-error", Static)
        await wait_for(pilot, lambda: text_of(error) != "", "the server's answer")
        assert text_of(error) == "The username 'alice' is taken."
        assert app.screen is dialog  # still open, to fix the name
        assert app.focused is dialog.query_one("#username")

        # A long error (three lines) still leaves every control of the dialog on screen.
        await pilot.press("ctrl+e", "ctrl+u", *"-bad", "enter", "enter", "enter")
        await wait_for(pilot, lambda: "Usernames are" in text_of(error), "the name rule")
        for widget in dialog.query("Input, Checkbox, Button"):
            assert app.screen.region.contains_region(widget.region), widget
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "the dialog to close")

    names = [user.username for user in (await Admin(server.core).list_users()).items]
    assert names == ["alice", "dave", "root"]
    async with server.client() as http:
        assert (await login(http, "dave", "pw-dave1"))["status"] == "authenticated"


# (e) Everyone's sign-in history


async def test_history_shows_everyone_and_filters_narrow_it(server: RunningServer) -> None:
    await server.add_user("root", TYPED, admin=True)
    await server.add_user("alice")
    await server.add_user("bob")
    async with server.client() as http:
        await login(http, "alice")
        wrong = await http.post("/api/v1/login", json={"username": "bob", "password": "nope"})
        assert wrong.status_code == 401
        await login(http, "bob")
        wrong = await http.post("/api/v1/login", json={"username": "mallory", "password": "x"})
        assert wrong.status_code == 401

    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "root", TYPED)
        pane = await open_admin(app, pilot, "admin-history")

        def shown() -> list[tuple[str, str]]:
            """(user, result) of every row on screen."""
            return [(row[0], row[3]) for row in rows(pane, "history").values()]

        assert {user for user, _ in shown()} == {"root", "alice", "bob", "mallory"}
        assert any("failed" in result for _, result in shown())

        await pilot.click("#admin-user-filter")
        await pilot.press(*"bob", "enter")
        await settle(app, pilot)
        assert {user for user, _ in shown()} == {"bob"}
        assert sorted("failed" in result for _, result in shown()) == [False, True]

        select = pane.query_one("#admin-result", Select)
        select.focus()
        await pilot.press("enter")  # opens the list: All results, Successful, Failed
        await pilot.press("down", "down", "enter")
        await settle(app, pilot)
        assert select.value == "failed"
        assert len(shown()) == 1
        assert shown()[0][0] == "bob"
        assert "failed" in shown()[0][1]

        await pilot.click("#admin-user-filter")
        await pilot.press("ctrl+e", "ctrl+u", "enter")  # no name: everyone's failures
        await settle(app, pilot)
        assert {user for user, _ in shown()} == {"bob", "mallory"}
        assert all("failed" in result for _, result in shown())


# (f) The audit log


async def test_audit_log_shows_the_policy_change_by_the_admin(server: RunningServer) -> None:
    await server.add_user("root", TYPED, admin=True)
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "root", TYPED)
        pane = await open_admin(app, pilot)
        await pilot.click("#admin-force")
        await pilot.click("#admin-grace")
        await pilot.press("ctrl+e", "ctrl+u", "7", "enter")  # Enter in the field saves too
        dialog = await wait_for_dialog(app, pilot, ConfirmScreen)
        assert "within 7 days" in text_of(dialog.query_one("#dialog-text"))
        await answer(app, pilot, "#confirm")
        saved = await policy_on_server(server)
        assert (saved["force_2fa"], saved["grace_period_days"]) == (True, 7)

        await pilot.click("#--content-tab-admin-audit")
        await settle(app, pilot)
        table = pane.query_one("#admin-audit-table", FitTable)
        newest = {
            label: str(text) for label, text in table.fields(next(iter(table.records))).items()
        }
        assert (newest["Who"], newest["Action"], newest["Target"]) == (
            "root",
            "Policy changed",
            "-",
        )
        assert newest["Details"] == "force 2FA off→on, grace 0→7 days"
        assert newest["From"] == "127.0.0.1"

    entry = (await audit_on_server(server))[0]
    assert (entry["actor"], entry["action"]) == ("root", "policy_changed")


# (g) Not for everyone


async def test_no_admin_tab_for_a_user(server: RunningServer) -> None:
    await server.add_user("alice", TYPED)
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "alice", TYPED)
        tabs = app.screen.query_one(TabbedContent)
        await pilot.press("a")
        await settle(app, pilot)
        assert tabs.active == "security"
        assert not app.screen.query("#admin")
        assert not app.screen.query(AdminPane)
        assert [pane.id for pane in tabs.query("TabPane")] == ["security", "history", "sessions"]


# Layout: every control is on screen and reachable by Tab at 80x24


async def test_every_admin_control_fits_and_takes_the_focus(server: RunningServer) -> None:
    await server.add_user("root", TYPED, admin=True)
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "root", TYPED)
        pane = await open_admin(app, pilot)
        screen = app.screen.region
        for section in SECTIONS:
            await pilot.click(f"#--content-tab-{section}")
            await settle(app, pilot)
            controls = {
                widget
                for widget in pane.query_one(f"#{section}").query(
                    "Switch, Input, Select, Button, DataTable"
                )
                if not (isinstance(widget, Button) and widget.disabled)
            }
            assert controls, section
            for widget in controls:
                assert widget.region.height > 0, widget
                assert screen.contains_region(widget.region), widget
            missing = set(controls)
            for _ in range(len(app.screen.focus_chain) + 1):  # one round is enough
                await pilot.press("tab")
                missing.discard(app.focused)
                if not missing:
                    break
            assert not missing, f"Tab never reaches {missing} in {section}"
