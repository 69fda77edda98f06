"""Issue 14, the person's side in the terminal app: "Change password" in the Security tab, and the
"Choose a new password" screen after a sign-in with a temporary password set by an administrator.

Everything runs against the real server; a temporary password is set through `Admin`, as an
administrator's request or `tfa-server user passwd --temporary` would set it.
"""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import Input, TabbedContent

from tfa_server.admin import Actor, Admin
from tfa_tui.api.errors import PasswordChangeRequired
from tfa_tui.app import TfaApp
from tfa_tui.commands import TfaCommands
from tfa_tui.screens.change_password import ChangePasswordScreen
from tfa_tui.screens.home import HomeScreen
from tfa_tui.screens.new_password import NewPasswordScreen
from tfa_tui.screens.second_factor import SecondFactorScreen
from tfa_tui.screens.sign_in import SignInScreen

from ..conftest import PASSWORD, RunningServer, bearer, login, totp_code
from .conftest import (
    CountingTransport,
    MemoryKeyring,
    at_home,
    dialog_open,
    notices,
    running_app,
    settle,
    shown,
    sign_in,
    user_with_totp,
    wait_for,
)

NEW = "new-pass-1"
TEMPORARY = "temporary-pass"


def focused_id(app: TfaApp) -> str | None:
    return app.focused.id if app.focused is not None else None


def value(app: TfaApp, selector: str) -> str:
    return app.screen.query_one(selector, Input).value


async def open_dialog(app: TfaApp, pilot: Pilot[None]) -> ChangePasswordScreen:
    """The footer's key, from the Security tab."""
    await pilot.press("c")
    return await dialog_open(app, pilot, ChangePasswordScreen)


async def fill(pilot: Pilot[None], current: str, new: str, again: str) -> None:
    """Type as a person does: each field, then Enter, which moves on to the next."""
    await pilot.press(*current, "enter", *new, "enter", *again, "enter")


async def status_of_login(server: RunningServer, name: str, password: str) -> int:
    async with server.client() as http:
        response = await http.post("/api/v1/login", json={"username": name, "password": password})
        return response.status_code


async def temporary_password(server: RunningServer, name: str) -> None:
    await Admin(server.core).reset_password(Actor("test", None), name, TEMPORARY, True)


# Change password, from Home


async def test_change_password_without_2fa_signs_the_other_sessions_out(
    server: RunningServer,
) -> None:
    """Change my password (no 2FA): the key is in the footer, the dialog has no code field, the
    new password works and the old one does not, the other sessions end and this one stays."""
    await server.add_user("bob")
    async with server.client() as http:
        other = (await login(http, "bob"))["token"]
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "bob")
        assert any(
            binding.key == "c" and binding.description == "Change password" and binding.show
            for (_node, binding, enabled, _tip) in home.active_bindings.values()
            if enabled
        )
        dialog = await open_dialog(app, pilot)
        assert not dialog.query("#code")
        assert focused_id(app) == "current"
        await fill(pilot, PASSWORD, NEW, NEW)
        await wait_for(pilot, lambda: app.screen is home, "the dialog to close")
        await settle(app, pilot)
        said = " ".join(notices(app))
        assert "password is changed" in said
        assert "other sessions were signed out" in said
        await app.api.me()  # this session goes on
    assert await status_of_login(server, "bob", NEW) == 200
    assert await status_of_login(server, "bob", PASSWORD) == 401
    async with server.client() as http:
        assert (await http.get("/api/v1/me", headers=bearer(other))).status_code == 401


async def test_change_password_with_2fa_needs_a_code_and_retries_a_wrong_one(
    server: RunningServer,
) -> None:
    """Change my password with 2FA: the dialog asks for a code; a wrong one is said in words in
    the dialog, which stays open with the passwords kept and the code field emptied; the
    right one changes the password. Opened from the command palette this time."""
    secret, _codes = await user_with_totp(server, "alice")
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "alice", secret=secret)
        offered = {name: run for name, _help, run in TfaCommands(home)._commands()}
        offered["Change password"]()
        dialog = await dialog_open(app, pilot, ChangePasswordScreen)
        await fill(pilot, PASSWORD, NEW, NEW)
        assert focused_id(app) == "code"
        await pilot.press("enter")  # no code yet
        assert "code" in shown(app, "#dialog-error")
        wrong = totp_code(secret, server.clock, offset_steps=5)
        await pilot.press(*wrong, "enter")
        await wait_for(pilot, lambda: "not right" in shown(app, "#dialog-error"), "the refusal")
        assert app.screen is dialog
        assert value(app, "#code") == ""
        assert focused_id(app) == "code"
        assert (value(app, "#current"), value(app, "#new"), value(app, "#again")) == (
            PASSWORD,
            NEW,
            NEW,
        )
        await pilot.press(*totp_code(secret, server.clock), "enter")
        await wait_for(pilot, lambda: app.screen is home, "the dialog to close")
    assert await status_of_login(server, "alice", NEW) == 200


async def test_mismatched_short_and_unchanged_passwords_are_refused_before_sending(
    server: RunningServer,
) -> None:
    """Checks before sending: the two new passwords must match, have 8 to 1024 characters and
    differ from the current one; each refusal is in words, the new fields are emptied for
    retyping and nothing reaches the server."""
    await server.add_user("bob")
    sent = CountingTransport()
    async with running_app(server, transport=sent) as (app, pilot):
        await at_home(app, pilot, server, "bob")
        dialog = await open_dialog(app, pilot)
        for new, again, words in (
            (NEW, NEW + "x", "not the same"),
            ("short", "short", "at least 8 characters"),
            (PASSWORD, PASSWORD, "differ from the current"),
        ):
            dialog.query_one("#current", Input).value = PASSWORD
            dialog.query_one("#new", Input).value = new
            dialog.query_one("#again", Input).value = again
            dialog.query_one("#again").focus()
            await pilot.press("enter")
            assert words in shown(app, "#dialog-error")
            assert (value(app, "#new"), value(app, "#again")) == ("", "")
            assert focused_id(app) == "new"
            assert app.screen is dialog
        assert not [request for request in sent.requests if request.endswith("/me/password")]


async def test_a_wrong_current_password_and_a_lock_are_said_in_the_dialog(
    server: RunningServer,
) -> None:
    """Server refusals in words: a wrong current password (that field emptied and focused, the
    new ones kept), then the account's lock with its seconds; the dialog stays open."""
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "bob")
        dialog = await open_dialog(app, pilot)
        await fill(pilot, "not my password", NEW, NEW)
        await wait_for(pilot, lambda: "not right" in shown(app, "#dialog-error"), "the refusal")
        assert app.screen is dialog
        assert value(app, "#current") == ""
        assert focused_id(app) == "current"
        assert (value(app, "#new"), value(app, "#again")) == (NEW, NEW)
        async with server.client() as http:  # four more failures lock the account
            for _ in range(4):
                await http.post("/api/v1/login", json={"username": "bob", "password": "nope"})
        await pilot.press(*PASSWORD, "enter", "enter", "enter")  # current, new, again
        await wait_for(
            pilot, lambda: "Try again in" in shown(app, "#dialog-error"), "the lock's words"
        )
        assert "Too many failed attempts" in shown(app, "#dialog-error")
        assert app.screen is dialog
        await pilot.press("enter")  # refused here while the seconds count down
        assert app.screen is dialog
    assert await status_of_login(server, "bob", NEW) != 200


# Choose a new password, after a temporary one


async def test_a_temporary_password_leads_to_choosing_one_then_home(
    server: RunningServer, memory_keyring: MemoryKeyring
) -> None:
    """A temporary password set by an administrator (no 2FA): the sign-in shows "Choose a new
    password", which explains why; the restricted session opens nothing else and is not
    remembered; a mismatch is refused there; the new password leads Home (the full session
    remembered, as asked) and is the one that works from then on."""
    await server.add_user("bob")
    await temporary_password(server, "bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", TEMPORARY, remember=True)
        screen = await dialog_open(app, pilot, NewPasswordScreen)
        assert memory_keyring.entries == {}
        assert "administrator" in shown(app, "#explain")
        assert "temporary password" in shown(app, "#explain")
        assert focused_id(app) == "new"
        restricted = app.api.token or ""
        async with server.client() as http:
            refused = await http.get("/api/v1/me/history", headers=bearer(restricted))
            assert refused.status_code == 403
            assert refused.json()["error"] == "password_change_required"
        try:
            await app.api.sessions()
        except PasswordChangeRequired:
            pass
        else:
            raise AssertionError("the restricted session listed the sessions")
        await pilot.press(*NEW, "enter", *NEW, "x", "enter")
        assert "not the same" in shown(app, "#error")
        assert app.screen is screen
        await pilot.press(*NEW, "enter", *NEW, "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "the home screen")
        assert app.api.token in memory_keyring.entries.values()
    assert await status_of_login(server, "bob", NEW) == 200
    assert await status_of_login(server, "bob", TEMPORARY) == 401


async def test_a_temporary_password_with_2fa_continues_to_the_code(
    server: RunningServer,
) -> None:
    """With 2FA the change is followed by the usual second factor, then Home."""
    secret, _codes = await user_with_totp(server, "alice")
    await temporary_password(server, "alice")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "alice", TEMPORARY)
        await dialog_open(app, pilot, NewPasswordScreen)
        await pilot.press(*NEW, "enter", *NEW, "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SecondFactorScreen), "the code")
        await settle(app, pilot)
        await pilot.press(*totp_code(secret, server.clock))
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "the home screen")
    async with server.client() as http:
        assert (await login(http, "alice", NEW))["status"] == "totp_required"


async def test_escape_on_choosing_signs_out_and_returns_to_sign_in(
    server: RunningServer,
) -> None:
    """Escape on "Choose a new password" ends the restricted session on the server and goes
    back to sign in; the temporary password still is the one to sign in with."""
    await server.add_user("bob")
    await temporary_password(server, "bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", TEMPORARY)
        await dialog_open(app, pilot, NewPasswordScreen)
        restricted = app.api.token or ""
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, SignInScreen), "the sign-in")
        assert "signed out" in shown(app, "#notice")
        assert app.api.token is None
    async with server.client() as http:
        assert (await http.get("/api/v1/me", headers=bearer(restricted))).status_code == 401
        assert (await login(http, "bob", TEMPORARY))["status"] == "password_change_required"


async def test_an_expired_restricted_session_goes_back_to_sign_in(server: RunningServer) -> None:
    """The restricted session lasts minutes: when it has ended, the screen says so and goes
    back to sign in, the password unchanged."""
    await server.add_user("bob")
    await temporary_password(server, "bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", TEMPORARY)
        await dialog_open(app, pilot, NewPasswordScreen)
        server.clock.advance(server.settings.sessions.challenge_lifetime + 1)
        await pilot.press(*NEW, "enter", *NEW, "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SignInScreen), "the sign-in")
        assert "temporary password" in shown(app, "#notice")
    assert await status_of_login(server, "bob", NEW) == 401


async def test_a_temporary_password_met_without_it_signs_out(server: RunningServer) -> None:
    """The one dispatch of sign-in answers, reached without the typed password (not from the
    sign-in screen): it cannot choose a new password, so it ends that session and says to
    sign in with the temporary password."""
    await server.add_user("bob")
    await temporary_password(server, "bob")
    async with running_app(server) as (app, pilot):
        result = await app.api.login("bob", TEMPORARY)
        restricted = app.api.token or ""
        app.signed_in(result, remember=False)
        await wait_for(
            pilot,
            lambda: (
                isinstance(app.screen, SignInScreen)
                and "temporary password" in shown(app, "#notice")
            ),
            "the sign-in, with words",
        )
    async with server.client() as http:
        assert (await http.get("/api/v1/me", headers=bearer(restricted))).status_code == 401


async def test_the_section_keys_work_from_the_security_buttons(server: RunningServer) -> None:
    """The Change password button made two buttons in the Security tab for every account, and
    with two there, A and the Admin section keys did nothing (an administrator with 2FA met
    it before): Textual gave the focus of the hidden button to its sibling, whose tab opened
    again. The keys open their tab whichever button has the focus."""
    secret, _codes = await user_with_totp(server, "root")
    await Admin(server.core).set_admin(Actor("test", None), "root", True)
    async with running_app(server) as (app, pilot):
        home = await at_home(app, pilot, server, "root", secret=secret)
        tabbed = home.query_one(TabbedContent)
        for key, tab in (("a", "admin"), ("s", "security"), ("u", "admin"), ("s", "security")):
            await pilot.press(key)
            await settle(app, pilot)
            assert tabbed.active == tab, key
