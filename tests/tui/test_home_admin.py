"""Home, the Admin tab, the Add user dialog and the command palette, as issue 11 found them.

Each test names the point of issue 11 it covers. The app runs against the real server on
127.0.0.1 (port 0); the client's clock is the server's fake clock (tests/tui/conftest.py), so
deadlines and locks are judged as they would be with one real clock. The sign-in itself is the
app's own (`api.login` and `signed_in`): these tests are about what comes after it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from msgspec.structs import replace
from textual import events
from textual.pilot import Pilot
from textual.widgets import Checkbox, DataTable, Input, Static, Switch, TabbedContent

from tfa_server.admin import Actor, Admin
from tfa_server.openapi import document as openapi_document
from tfa_server.second_factor import Verdict
from tfa_tui.api import HistoryItem
from tfa_tui.app import TfaApp
from tfa_tui.commands import TfaCommands
from tfa_tui.screens.add_user import AddUserScreen
from tfa_tui.screens.confirm import ConfirmScreen
from tfa_tui.screens.home import HomeScreen, history_row
from tfa_tui.screens.setup import SetupScreen
from tfa_tui.widgets.admin_pane import AdminPane
from tfa_tui.widgets.fit_table import FitTable
from tfa_tui.words import REASONS, local_time

from ..conftest import PASSWORD, START, RunningServer, bearer, enable_totp, login
from .conftest import at_home, dialog_open, running_app, settle, shown, wait_for

ADMIN_PW = "root-pw-1"


async def with_2fa(server: RunningServer, username: str, password: str = PASSWORD) -> str:
    """Connect an authenticator app for `username` over the API; returns the secret."""
    async with server.client() as http:
        token = (await login(http, username, password))["token"]
        secret, _codes = await enable_totp(http, token, server.clock)
        await http.post("/api/v1/logout", headers=bearer(token))
    return secret


async def open_add_user(app: TfaApp, pilot: Pilot[None]) -> AddUserScreen:
    await pilot.press("a")
    await settle(app, pilot)
    await pilot.click("#--content-tab-admin-users")
    await settle(app, pilot)
    await pilot.click("#admin-add")
    dialog = await dialog_open(app, pilot, AddUserScreen)
    await wait_for(pilot, lambda: app.focused is not None, "the dialog's focus")
    return dialog


def focused_id(app: TfaApp) -> str | None:
    return app.focused.id if app.focused is not None else None


async def user_on_server(server: RunningServer, username: str) -> dict[str, object] | None:
    listing = msgspec.to_builtins(await Admin(server.core).list_users())
    return next((u for u in listing["items"] if u["username"] == username), None)


# 1. Add user: Enter moves on only from a filled field, never ticks Administrator


async def test_enter_on_an_empty_username_keeps_the_focus_and_says_why(
    server: RunningServer,
) -> None:
    """Point 1: Enter on an empty Username moved to Password, so the name typed next landed in
    the password field. Now the dialog says what is missing and the focus stays."""
    await server.add_user("root", ADMIN_PW, admin=True)
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "root", ADMIN_PW)
        await open_add_user(app, pilot)
        await pilot.press("enter")
        assert focused_id(app) == "username"
        assert shown(app, "#dialog-error") == "Enter a username."
        await pilot.press(*"carol", "enter")
        assert focused_id(app) == "password"
        assert shown(app, "#dialog-error") == ""  # the message belonged to the empty name
        await pilot.press("enter")  # an empty password does not move on either
        assert focused_id(app) == "password"
        assert "at least 8 characters" in shown(app, "#dialog-error")
        await pilot.press(*"carol-pw", "enter", *"carol-pw", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "the dialog to close")
    carol = await user_on_server(server, "carol")
    assert carol is not None
    assert carol["is_admin"] is False
    async with server.client() as http:
        assert (await login(http, "carol", "carol-pw"))["status"] == "authenticated"


async def test_enter_never_ticks_administrator_and_space_still_does(
    server: RunningServer,
) -> None:
    """Point 1: Textual's Checkbox toggles on Enter, so a further Enter made an administrator.
    Enter on the box submits (here: an empty form, so it says what is missing); Space ticks."""
    await server.add_user("root", ADMIN_PW, admin=True)
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "root", ADMIN_PW)
        dialog = await open_add_user(app, pilot)
        box = dialog.query_one("#admin", Checkbox)
        await pilot.press("tab", "tab", "tab")
        assert app.focused is box
        await pilot.press("enter")
        assert box.value is False
        assert shown(app, "#dialog-error") == "Enter a username."
        assert focused_id(app) == "username"  # where the fix is
        await pilot.press("tab", "tab", "tab", "space")
        assert box.value is True
        await pilot.press("enter")
        assert box.value is True


async def test_the_form_typed_in_one_burst_lands_in_its_fields(server: RunningServer) -> None:
    """Point 1: keys sent in one burst ("carol⏎password⏎password⏎") reached the old field,
    because the Submitted handler moved the focus only after they were delivered."""
    await server.add_user("root", ADMIN_PW, admin=True)
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "root", ADMIN_PW)
        await open_add_user(app, pilot)
        burst = [*"carol", "\r", *"carol-pw", "\r", *"carol-pw", "\r"]
        for character in burst:
            key = "enter" if character == "\r" else ("minus" if character == "-" else character)
            app.post_message(events.Key(key, character))
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "the dialog to close")
        await settle(app, pilot)
    carol = await user_on_server(server, "carol")
    assert carol is not None
    assert carol["is_admin"] is False
    async with server.client() as http:
        assert (await login(http, "carol", "carol-pw"))["status"] == "authenticated"


# 2. Users: a lock counts down and ends


async def test_a_lock_counts_down_while_on_screen_and_then_is_gone(server: RunningServer) -> None:
    """Point 2: the Users table said "Locked until 12:55:57" after that time had passed."""
    await server.add_user("root", ADMIN_PW, admin=True)
    await server.add_user("carol")
    async with server.client() as http:
        for _ in range(5):
            await http.post("/api/v1/login", json={"username": "carol", "password": "wrong one"})
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "root", ADMIN_PW)
        await pilot.press("a")
        await settle(app, pilot)
        await pilot.click("#--content-tab-admin-users")
        await settle(app, pilot)
        table = app.screen.query_one("#admin-users-table", DataTable)

        def lock() -> str:
            return str(table.get_row("carol")[4])

        assert lock() == "locked, 30 s left"
        server.clock.advance(12)
        await wait_for(pilot, lambda: lock() == "locked, 18 s left", "the count to follow")
        server.clock.advance(18)
        await wait_for(pilot, lambda: "locked" not in lock(), "the lock to end")
        assert "12:" not in lock()  # no time either


# 3. Deadlines: words for whoever reads them, never a deadline in the past


async def test_the_admin_who_forces_2fa_is_told_in_words_for_an_admin(
    server: RunningServer,
) -> None:
    """Point 3: the administrator who forced 2FA read "Your administrator requires...", and
    only after a refresh; the banner follows the policy as soon as it is saved."""
    await server.add_user("root", ADMIN_PW, admin=True)
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "root", ADMIN_PW)
        banner = home.query_one("#deadline-banner", Static)
        assert not banner.display or banner.has_class("hidden")
        await pilot.press("a")
        await settle(app, pilot)
        home.query_one("#admin-force", Switch).value = True
        grace = home.query_one("#admin-grace", Input)
        grace.value = "7"
        await pilot.click("#admin-save")
        await dialog_open(app, pilot, ConfirmScreen)
        await pilot.click("#confirm")
        await wait_for(pilot, lambda: app.screen is home, "the dialog to close")
        await settle(app, pilot)
        said = shown(app, "#deadline-banner")
        assert not banner.has_class("hidden")
        assert "Your administrator" not in said
        assert "every account, yours too" in said
        assert local_time(datetime.fromtimestamp(START, UTC) + timedelta(days=7)) in said

        home.query_one("#admin-force", Switch).value = False
        await pilot.click("#admin-save")
        await dialog_open(app, pilot, ConfirmScreen)
        await pilot.click("#confirm")
        await wait_for(pilot, lambda: app.screen is home, "the dialog to close")
        await settle(app, pilot)
        assert banner.has_class("hidden")  # the policy it spoke of is gone


async def test_a_deadline_that_passes_is_never_shown_as_a_deadline(server: RunningServer) -> None:
    """Point 3: a deadline in the past stayed on screen as a deadline. Past, it says "now";
    passing while on screen, the server is asked, and its rule leads to the setup."""
    await server.add_user("bob")
    await Admin(server.core).set_policy(Actor("test", None), True, 1)
    server.clock.advance(24 * 3600 - 30)  # the deadline is 30 s ahead: the session outlives it
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "bob")
        said = shown(app, "#deadline-banner")
        deadline = datetime.fromtimestamp(START, UTC) + timedelta(days=1)
        assert "Your administrator requires" in said
        assert local_time(deadline) in said

        home.show_me(replace(home.me, enrollment_deadline=deadline - timedelta(days=2)))
        said = shown(app, "#deadline-banner")
        assert "before" not in said
        assert "20" not in said
        assert "now" in said
        home.show_me(replace(home.me, enrollment_deadline=deadline))

        server.clock.advance(31)
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), "the forced setup")
        await settle(app, pilot)
        assert app.screen.forced


async def test_disconnecting_under_a_forced_policy_speaks_to_the_admin(
    server: RunningServer,
) -> None:
    """Point 3: the administrator's own policy was called "Your administrator requires..." in
    the confirmation before disconnecting (other users keep those words: the scene
    disconnect-warning shows them)."""
    await server.add_user("root", ADMIN_PW, admin=True)
    secret = await with_2fa(server, "root", ADMIN_PW)
    await Admin(server.core).set_policy(Actor("test", None), True, 0)
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "root", ADMIN_PW, secret)
        await pilot.click("#disconnect")
        await dialog_open(app, pilot, ConfirmScreen)
        said = shown(app, "#dialog-text")
        assert "Your administrator" not in said
        assert "yours too (the policy under Admin)" in said
        assert "turn the policy off first" in said
        await pilot.press("escape")


# 4. Revoke names the session


async def test_revoke_names_the_session_in_plain_text(server: RunningServer) -> None:
    """Point 4: "Revoke this session?" did not say which; the client string is the network's,
    so it is shown literally (markup characters and all)."""
    await server.add_user("bob")
    async with server.client() as http:
        http.headers["User-Agent"] = "laptop-agent [/b] 2.0"
        other = (await login(http, "bob"))["token"]
    server.clock.advance(60)
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "bob")
        await pilot.press("n")
        await settle(app, pilot)
        table = app.screen.query_one("#sessions-table", DataTable)
        while "laptop" not in str(table.get_row_at(table.cursor_row)[-1]):  # Client, last
            await pilot.press("down")
        await pilot.click("#revoke")
        await dialog_open(app, pilot, ConfirmScreen)
        said = shown(app, "#dialog-text")
        assert "laptop-agent [/b] 2.0" in said
        assert "127.0.0.1" in said
        assert local_time(datetime.fromtimestamp(START, UTC)) in said
        await pilot.click("#confirm")
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "the dialog to close")
        await settle(app, pilot)
    async with server.client() as http:
        assert (await http.get("/api/v1/me", headers=bearer(other))).status_code == 401


# 5. Reasons in words


async def test_every_reason_the_server_writes_has_words(server: RunningServer) -> None:
    """Point 5: the Reason column showed internal codes such as `totp_required`. Every code the
    server documents (and every verdict of a code check) has words; an unknown one shows as
    itself."""
    schemas = openapi_document(server.app.api.routes)["components"]["schemas"]
    documented = schemas["HistoryItem"]["properties"]["reason"]["description"].split(", ")
    verdicts = [verdict.value for verdict in Verdict if verdict is not Verdict.ACCEPTED]
    missing = [code for code in [*documented, *verdicts] if code not in REASONS]
    assert not missing
    assert REASONS["totp_required"] == "second factor needed"
    assert REASONS["bad_password"] == "wrong password"
    entry = {
        "id": 1,
        "at": "2026-11-28T12:00:00Z",
        "event": "password",
        "success": False,
        "method": "password",
        "reason": "some_new_code",
        "ip": "127.0.0.1",
        "client": "x",
        "service": None,
        "service_ip": None,
        "count": 1,
    }
    assert str(history_row(msgspec.convert(entry, HistoryItem))["reason"]) == "some_new_code"


async def test_history_says_why_in_words(server: RunningServer) -> None:
    """Point 5: History and the administrators' Sign-in history said `bad password`,
    `totp required`, `throttled`."""
    await server.add_user("root", ADMIN_PW, admin=True)
    secret = await with_2fa(server, "root", ADMIN_PW)
    async with server.client() as http:
        for _ in range(6):  # five wrong, then refused while locked
            await http.post("/api/v1/login", json={"username": "root", "password": "wrong one"})
    server.clock.advance(3600)
    words = {"wrong password", "locked out", "second factor needed"}
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "root", ADMIN_PW, secret)
        table = home.query_one("#history-table", FitTable)
        reasons = {str(table.fields(key)["Reason"]) for key in table.records}
        assert words <= reasons
        assert not {"bad password", "throttled", "totp required"} & reasons
        await pilot.press("a")
        await settle(app, pilot)
        await pilot.click("#--content-tab-admin-history")
        await settle(app, pilot)
        table = home.query_one("#admin-history-table", FitTable)
        assert words <= {str(table.fields(key)["Reason"]) for key in table.records}


# 6. The command palette offers the actions


def palette(app: TfaApp) -> dict[str, object]:
    """What the palette offers over the current screen, by name: the callbacks it would run."""
    provider = TfaCommands(app.screen)
    return {name: callback for name, _help, callback in provider._commands()}


async def test_the_palette_offers_the_actions_that_apply(server: RunningServer) -> None:
    """Point 6: the palette offered only places. Now the actions too, each where it applies,
    each running the very method its button or key runs."""
    await server.add_user("root", ADMIN_PW, admin=True)
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "root", ADMIN_PW)
        offered = palette(app)
        assert offered["Connect authenticator app"] == home.action_connect  # the button's
        assert offered["Refresh"] == home.action_refresh  # r
        assert offered["Sign out"] == home.action_sign_out  # Ctrl+O
        assert "New recovery codes" not in offered  # root has no 2FA
        assert "Force 2FA on" in offered
        assert "Force 2FA off" not in offered

        me = home.me
        home.show_me(replace(me, totp_enabled=True))
        offered = palette(app)
        assert offered["New recovery codes"] == home.action_new_codes  # g
        assert "Connect authenticator app" not in offered
        home.show_me(replace(me, is_admin=False))
        assert not {"Add user", "Force 2FA on", "Force 2FA off", "Open admin"} & set(palette(app))
        home.show_me(me)

        # Typed into the real palette, as a person would.
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"add u")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await dialog_open(app, pilot, AddUserScreen)
        assert home.query_one("#admin-tabs", TabbedContent).active == "admin-users"
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is home, "the dialog to close")

        force = palette(app)["Force 2FA on"]
        assert callable(force)
        force()
        await dialog_open(app, pilot, ConfirmScreen)
        assert shown(app, "#dialog-title") == "Force two-factor authentication?"
        await pilot.click("#confirm")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "the answer")
        await settle(app, pilot)
        assert (await Admin(server.core).get_policy()).force_2fa is True


# 7. Keys for the admin sections


async def test_the_admin_sections_have_keys(server: RunningServer) -> None:
    """Point 7: the Admin sub-tabs could be reached only by Tab and arrows or the mouse. Their
    keys work from any tab, as the main tabs' do, and are the underlined letters."""
    await server.add_user("root", ADMIN_PW, admin=True)
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "root", ADMIN_PW)
        main = home.query_one(TabbedContent)
        sections = home.query_one("#admin-tabs", TabbedContent)
        assert main.active == "security"
        for key, section in (
            ("u", "admin-users"),
            ("i", "admin-history"),
            ("l", "admin-audit"),
            ("p", "admin-policy"),
        ):
            await pilot.press(key)
            await settle(app, pilot)
            assert (main.active, sections.active) == ("admin", section), key
            label = home.query_one(f"#--content-tab-{section}")
            letter = next(span for span in label.label.spans if span.style == "u")  # underlined
            assert label.label.plain[letter.start : letter.end].lower() == key
            if section != "admin-policy":  # the section's table, so its keys work at once
                assert app.focused is home.query_one(f"#{section}-table")
        await pilot.press("i")
        await pilot.click("#admin-user-filter")
        await pilot.press(*"lu")  # letters in a field are typed, not keys
        assert home.query_one("#admin-user-filter", Input).value == "lu"
        assert sections.active == "admin-history"


async def test_the_admin_section_keys_are_only_for_admins(server: RunningServer) -> None:
    """Point 7: the keys do nothing for someone without the Admin tab."""
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "bob")
        await pilot.press("u", "p")
        await settle(app, pilot)
        assert home.query_one(TabbedContent).active == "security"
        assert not home.query(AdminPane)
