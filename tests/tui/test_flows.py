"""Every flow of the app, by keyboard, against the real server on a free loopback port."""

from __future__ import annotations

import stat
import threading
from pathlib import Path
from typing import Any, TypeVar

import keyring
import pyotp
import pytest
from keyring.backends import fail
from textual import events
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Button, DataTable, Input, TabbedContent

from tfa_server.admin import Actor, Admin
from tfa_tui.api.client import TfaClient
from tfa_tui.app import TfaApp
from tfa_tui.screens.confirm import ConfirmScreen
from tfa_tui.screens.home import HomeScreen
from tfa_tui.screens.reauth import ReauthScreen
from tfa_tui.screens.recovery_codes import RecoveryCodesScreen
from tfa_tui.screens.second_factor import SecondFactorScreen
from tfa_tui.screens.setup import SetupScreen
from tfa_tui.screens.sign_in import SignInScreen
from tfa_tui.session_store import SessionStore
from tfa_tui.widgets.qr import QrCode

from ..conftest import PASSWORD, RunningServer, bearer, login, totp_code
from .conftest import (
    CountingTransport,
    MemoryKeyring,
    notices,
    record_notices,
    running_app,
    settle,
    shown,
    sign_in,
    type_into,
    user_with_totp,
)

S = TypeVar("S", bound=Screen[Any])


def focused_id(app: TfaApp) -> str | None:
    return app.focused.id if app.focused is not None else None


async def wait_for_screen(app: TfaApp, pilot: Pilot[None], kind: type[S]) -> S:
    """Poll until a dialog or screen is on top, its widgets composed (a click on a loaded
    machine came before its buttons); settle() would wait on its worker forever."""
    for _ in range(200):
        if isinstance(app.screen, kind) and app.screen.is_mounted:
            return app.screen
        await pilot.pause(0.02)
    raise AssertionError(f"{kind.__name__} never opened; {type(app.screen).__name__} is on top")


async def force_2fa(server: RunningServer, grace_days: int = 0) -> None:
    await Admin(server.core).set_policy(Actor("test", None), True, grace_days)


# Sign in


async def test_sign_in_without_2fa_opens_security_with_connect_focused(
    server: RunningServer,
) -> None:
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        assert isinstance(app.screen, SignInScreen)
        assert focused_id(app) == "username"
        await sign_in(app, pilot, "bob", PASSWORD)
        assert isinstance(app.screen, HomeScreen)
        assert "not connected" in shown(app, "#status")
        assert focused_id(app) == "connect"


async def test_typed_in_one_burst_as_a_password_manager_does_it_signs_in(
    server: RunningServer,
) -> None:
    """Auto-type sends "name<Tab>password<Enter>" in one write. Tab was only a screen binding, so
    it bubbled up from the username field after the password's keys had been queued there."""
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        burst = [*"bob", "\t", *PASSWORD, "\r"]
        named = {"\t": "tab", "\r": "enter", " ": "space"}
        for character in burst:
            app.post_message(events.Key(named.get(character, character), character))
        await settle(app, pilot)
        assert isinstance(app.screen, HomeScreen)


async def test_wrong_password_is_explained_and_clears_the_password(server: RunningServer) -> None:
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", "not the password")
        assert isinstance(app.screen, SignInScreen)
        assert "username or password" in shown(app, "#error").lower()
        assert app.screen.query_one("#password", Input).value == ""
        assert app.screen.query_one("#username", Input).value == "bob"


@pytest.mark.finding("F19")
async def test_empty_fields_are_asked_for_without_a_request(server: RunningServer) -> None:
    await server.add_user("bob")
    sent = CountingTransport()
    async with running_app(server, transport=sent) as (app, pilot):
        await pilot.press("enter", "enter")  # Enter in the name field moves on to the password
        await settle(app, pilot)
        assert "Enter your username and password" in shown(app, "#error")
        assert focused_id(app) == "username"
        await pilot.press(*"bob", "enter", "enter")  # still no password
        await settle(app, pilot)
        assert "Enter your username and password" in shown(app, "#error")
        assert focused_id(app) == "password"
        assert sent.requests == []
        await pilot.press(*PASSWORD, "enter")  # the recorder does see a sign-in
        await settle(app, pilot)
        assert sent.requests[0] == "POST /api/v1/login"
        assert isinstance(app.screen, HomeScreen)


async def test_throttling_shows_a_live_countdown(server: RunningServer) -> None:
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        for _ in range(8):
            await sign_in(app, pilot, "bob", "wrong")
            if "Try again in" in shown(app, "#error"):
                break
            app.screen.query_one("#username", Input).value = ""
            app.screen.query_one("#username", Input).focus()
        first = shown(app, "#error")
        assert "Too many failed attempts" in first
        assert app.screen.query_one("#sign-in", Button).disabled
        seconds = int(first.split("Try again in ")[1].split()[0])
        assert 1 < seconds <= 30
        await pilot.pause(1.3)
        later = int(shown(app, "#error").split("Try again in ")[1].split()[0])
        assert later < seconds


async def test_unreachable_server_is_explained_with_retry(server: RunningServer) -> None:
    url = server.base_url
    await server.app.stop()
    app = TfaApp(TfaClient(url), store=SessionStore())
    record_notices(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await sign_in(app, pilot, "bob", PASSWORD)
        assert "Cannot reach the server" in shown(app, "#error")
        retry = app.screen.query_one("#retry", Button)
        assert retry.display
        assert not retry.has_class("hidden")
        await pilot.click("#retry")
        await settle(app, pilot)
        assert "Cannot reach the server" in shown(app, "#error")


# Setting up 2FA and the recovery codes


async def test_set_up_2fa_then_keep_the_recovery_codes(
    server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        await pilot.press("enter")  # Connect authenticator app
        await settle(app, pilot)
        assert isinstance(app.screen, SetupScreen)
        await pilot.press("enter")  # step 1: the app is installed
        key = shown(app, "#key").replace(" ", "").replace("\n", "")
        assert len(key) == 32
        uri = app.screen.query_one(QrCode).data
        assert uri == pyotp.TOTP(key).provisioning_uri(name="bob", issuer_name="tfa")
        await pilot.press("ctrl+k")
        assert app.clipboard == key
        await pilot.press("enter")  # step 2: scanned
        assert focused_id(app) == "code"
        wrong = f"{(int(totp_code(key, server.clock)) + 1) % 1_000_000:06d}"
        await pilot.press(*wrong)
        await settle(app, pilot)
        assert "did not match" in shown(app, "#error")
        assert focused_id(app) == "code"
        await pilot.press(*totp_code(key, server.clock))  # submits by itself at 6 digits
        await settle(app, pilot)

        screen = app.screen
        assert isinstance(screen, RecoveryCodesScreen)
        assert len(screen.codes) == 10
        assert all(code in shown(app, "#codes") for code in screen.codes)
        done = screen.query_one("#done", Button)
        assert done.disabled
        await pilot.press("ctrl+y")
        assert all(code in app.clipboard for code in screen.codes)

        await pilot.press("ctrl+s")  # shows the file name
        await pilot.press("enter")  # saves there
        await settle(app, pilot)
        saved = tmp_path / "tfa-recovery-codes-bob.txt"
        assert stat.S_IMODE(saved.stat().st_mode) == 0o600
        assert all(code in saved.read_text() for code in screen.codes)

        saved.write_text("something else\n")
        await pilot.press("ctrl+s", "enter")  # the file exists now: asks first
        dialog = await wait_for_screen(app, pilot, ConfirmScreen)
        await pilot.press("enter")  # Cancel has the focus
        await settle(app, pilot)
        assert dialog is not app.screen
        assert saved.read_text() == "something else\n"

        await pilot.press("escape")  # leaving early asks
        await wait_for_screen(app, pilot, ConfirmScreen)
        await pilot.press("enter")  # Stay
        await settle(app, pilot)
        assert app.screen is screen

        screen.query_one("#stored").focus()
        await pilot.press("space")
        assert not done.disabled
        assert app.focused is done
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, HomeScreen)
        assert "connected since" in shown(app, "#status")
        assert "Recovery codes left: 10" in shown(app, "#codes-left")


async def test_the_qr_code_and_key_fit_at_80x24(server: RunningServer) -> None:
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        await pilot.press("enter", "enter")
        await settle(app, pilot)
        screen_region = app.screen.region
        for selector in ("#qr", "#key", "#account", "#to-verify"):
            region = app.screen.query_one(selector).region
            assert screen_region.contains_region(region), selector
            assert region.bottom < screen_region.bottom  # above the footer
        assert shown(app, "#key")


async def test_forced_enrollment_goes_straight_to_setup(server: RunningServer) -> None:
    await server.add_user("bob")
    await force_2fa(server)
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        assert isinstance(app.screen, SetupScreen)
        assert "Your administrator requires two-factor authentication" in shown(app, "#forced")
        await pilot.press("escape")  # leaving setup signs out: the session is only for setup
        await settle(app, pilot)
        assert isinstance(app.screen, SignInScreen)


# Second factor


async def test_sign_in_with_a_code_submits_at_six_digits(server: RunningServer) -> None:
    secret, _ = await user_with_totp(server, "alice")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "alice", PASSWORD)
        assert isinstance(app.screen, SecondFactorScreen)
        assert focused_id(app) == "code"
        await pilot.press(*"12a")
        assert app.screen.query_one("#code", Input).value == "12"  # digits only
        app.screen.query_one("#code", Input).value = ""
        await pilot.press(*totp_code(secret, server.clock))
        await settle(app, pilot)
        assert isinstance(app.screen, HomeScreen)
        assert "connected since" in shown(app, "#status")


async def test_a_reused_code_is_refused_in_words(server: RunningServer) -> None:
    secret, _ = await user_with_totp(server, "alice")
    code = totp_code(secret, server.clock)
    async with server.client() as http:
        challenge = (await login(http, "alice"))["token"]
        used = await http.post("/api/v1/login/totp", headers=bearer(challenge), json={"code": code})
        assert used.status_code == 200
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "alice", PASSWORD)
        await pilot.press(*code)
        await settle(app, pilot)
        assert isinstance(app.screen, SecondFactorScreen)
        assert "already been used" in shown(app, "#error")
        assert app.screen.query_one("#code", Input).value == ""


async def test_sign_in_with_a_recovery_code_once(server: RunningServer) -> None:
    _, codes = await user_with_totp(server, "alice")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "alice", PASSWORD)
        await pilot.press("ctrl+r")
        assert focused_id(app) == "recovery"
        await pilot.press(*codes[0].lower().replace("-", ""), "enter")
        await settle(app, pilot)
        assert isinstance(app.screen, HomeScreen)
        assert any("Recovery code used. 9 left" in notice for notice in notices(app))
        assert "Recovery codes left: 9" in shown(app, "#codes-left")

        await pilot.press("ctrl+o")  # sign out
        await settle(app, pilot)
        await pilot.press(*PASSWORD, "enter")  # the username is kept, the password focused
        await settle(app, pilot)
        await pilot.press("ctrl+r", *codes[0], "enter")
        await settle(app, pilot)
        assert isinstance(app.screen, SecondFactorScreen)
        assert shown(app, "#error")


async def test_a_used_up_challenge_returns_to_sign_in(server: RunningServer) -> None:
    secret, _ = await user_with_totp(server, "alice")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "alice", PASSWORD)
        right = totp_code(secret, server.clock)
        for attempt in range(6):
            if not isinstance(app.screen, SecondFactorScreen):
                break
            await pilot.press(*f"{(int(right) + 1 + attempt) % 1_000_000:06d}")
            await settle(app, pilot)
        assert isinstance(app.screen, SignInScreen)
        assert "password again" in shown(app, "#notice")


# Home


async def test_disconnect_under_forced_policy_ends_in_sign_in(server: RunningServer) -> None:
    secret, _ = await user_with_totp(server, "alice")
    await force_2fa(server)
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "alice", PASSWORD)
        await pilot.press(*totp_code(secret, server.clock))
        await settle(app, pilot)
        server.clock.advance(30)
        token = app.api.token
        await pilot.click("#disconnect")
        warning = await wait_for_screen(app, pilot, ConfirmScreen)
        assert "mandatory" in shown(app, "#dialog-title")
        assert "signed out" in shown(app, "#dialog-text")
        await pilot.click("#confirm")
        await wait_for_screen(app, pilot, ReauthScreen)
        assert warning is not app.screen
        await type_into(pilot, app, "#password", PASSWORD)
        await pilot.press("enter", *totp_code(secret, server.clock), "enter")
        await settle(app, pilot)
        assert isinstance(app.screen, SignInScreen)
        assert "signed out" in shown(app, "#notice")
    async with server.client() as http:
        assert (await http.get("/api/v1/me", headers=bearer(token or ""))).status_code == 401
        assert (await login(http, "alice"))["status"] == "enrollment_required"


async def test_regenerate_recovery_codes_voids_the_old_ones(server: RunningServer) -> None:
    secret, old = await user_with_totp(server, "alice")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "alice", PASSWORD)
        await pilot.press(*totp_code(secret, server.clock))
        await settle(app, pilot)
        assert focused_id(app) == "regenerate"
        await pilot.press("enter")
        await wait_for_screen(app, pilot, ReauthScreen)
        await pilot.press(*PASSWORD, "enter", *old[0], "enter")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, RecoveryCodesScreen)
        assert set(screen.codes).isdisjoint(old)
    async with server.client() as http:
        challenge = (await login(http, "alice"))["token"]
        refused = await http.post(
            "/api/v1/login/recovery", headers=bearer(challenge), json={"code": old[1]}
        )
        assert refused.status_code == 401


async def test_failed_attempts_banner_after_sign_in(server: RunningServer) -> None:
    await server.add_user("bob")
    async with server.client() as http:
        await login(http, "bob")
        server.clock.advance(60)
        for _ in range(3):
            await http.post("/api/v1/login", json={"username": "bob", "password": "nope"})
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        banner = shown(app, "#failed-banner")
        assert "3 failed sign-in attempts since your last sign-in" in banner
        assert "127.0.0.1" in banner


async def test_history_pages_and_filters(server: RunningServer) -> None:
    await server.add_user("bob")
    async with server.client() as http:
        for _ in range(2):
            await http.post("/api/v1/login", json={"username": "bob", "password": "nope"})
        for _ in range(30):  # signed in and out, so they stay below the sessions cap
            token = (await login(http, "bob"))["token"]
            await http.post("/api/v1/logout", headers=bearer(token))
    async with running_app(server, size=(120, 40)) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        await pilot.press("h")
        await settle(app, pilot)
        table = app.screen.query_one("#history-table", DataTable)
        assert table.row_count == 50
        newest = table.get_row_at(0)
        assert "✔ successful" in str(newest[2])  # Time, Event, Result, ...
        await pilot.click("#older")
        await settle(app, pilot)
        assert table.row_count == 63  # 2 failed, 30 sign-ins and outs, 1 sign-in
        assert app.screen.query_one("#older", Button).disabled
        app.screen.query_one("#history-filter").value = "failed"  # type: ignore[attr-defined]
        await settle(app, pilot)
        assert table.row_count == 2
        assert all("✘ failed" in str(table.get_row_at(row)[2]) for row in range(2))


async def test_revoke_another_session(server: RunningServer) -> None:
    await server.add_user("bob")
    async with server.client() as http:
        other = (await login(http, "bob"))["token"]
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        await pilot.press("n")
        await settle(app, pilot)
        table = app.screen.query_one("#sessions-table", DataTable)
        assert table.row_count == 2
        marks = [str(table.get_row_at(row)[0]) for row in range(2)]
        assert sum("this session" in mark for mark in marks) == 1
        table.move_cursor(row=marks.index(""))
        await pilot.click("#revoke")
        await wait_for_screen(app, pilot, ConfirmScreen)
        await pilot.click("#confirm")
        await settle(app, pilot)
        assert table.row_count == 1
        assert isinstance(app.screen, HomeScreen)
    async with server.client() as http:
        assert (await http.get("/api/v1/me", headers=bearer(other))).status_code == 401


async def test_an_expired_session_returns_to_sign_in_with_a_notice(server: RunningServer) -> None:
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        server.clock.advance(61 * 60)  # past the idle timeout
        await pilot.press("r")
        await settle(app, pilot)
        assert isinstance(app.screen, SignInScreen)
        assert "Sign in again" in shown(app, "#notice")


async def test_sign_out_ends_the_session(server: RunningServer) -> None:
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        token = app.api.token
        await pilot.press("ctrl+o")
        await settle(app, pilot)
        assert isinstance(app.screen, SignInScreen)
        assert "signed out" in shown(app, "#notice")
    async with server.client() as http:
        assert (await http.get("/api/v1/me", headers=bearer(token or ""))).status_code == 401


# Remembering the session


async def test_remember_me_resumes_and_sign_out_forgets(
    server: RunningServer, memory_keyring: MemoryKeyring
) -> None:
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD, remember=True)
        assert isinstance(app.screen, HomeScreen)
        token = app.api.token
    assert token in memory_keyring.entries.values()
    async with running_app(server) as (app, pilot):
        assert isinstance(app.screen, HomeScreen)  # resumed, no password asked
        assert app.api.token == token
        await pilot.press("ctrl+o")
        await settle(app, pilot)
    assert token not in memory_keyring.entries.values()
    async with running_app(server) as (app, pilot):
        assert isinstance(app.screen, SignInScreen)


class LockedKeyring(MemoryKeyring):
    """A desktop keyring waiting to be unlocked: it answers once the test unlocks it."""

    def __init__(self) -> None:
        super().__init__()
        self.unlocked = threading.Event()
        self.asked_on: set[str] = set()

    def get_password(self, service: str, username: str) -> str | None:
        self.asked_on.add(threading.current_thread().name)
        self.unlocked.wait(timeout=30)
        return super().get_password(service, username)


async def test_a_locked_keyring_does_not_hold_up_the_sign_in_screen(
    server: RunningServer, memory_keyring: MemoryKeyring
) -> None:
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD, remember=True)
    locked = LockedKeyring()
    locked.entries = dict(memory_keyring.entries)
    keyring.set_keyring(locked)  # the memory_keyring fixture puts the previous one back
    app = TfaApp(TfaClient(server.base_url), store=SessionStore())
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, SignInScreen)  # drawn and working while it waits
            await pilot.press("tab")
            assert not locked.unlocked.is_set()
            locked.unlocked.set()
            await settle(app, pilot)
            assert isinstance(app.screen, HomeScreen)  # then the remembered session resumes
            await pilot.pause(0.05)  # its widgets mounted before the app quits
    finally:
        locked.unlocked.set()
    assert locked.asked_on
    assert threading.main_thread().name not in locked.asked_on


async def test_a_remembered_session_the_server_rejects_shows_sign_in(
    server: RunningServer, memory_keyring: MemoryKeyring
) -> None:
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD, remember=True)
    server.clock.advance(13 * 3600)  # past the absolute lifetime
    async with running_app(server) as (app, pilot):
        assert isinstance(app.screen, SignInScreen)
    assert memory_keyring.entries == {}


async def test_without_a_keyring_it_says_so_once_and_carries_on(
    server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keyring

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    keyring.set_keyring(fail.Keyring())
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD, remember=True)
        assert isinstance(app.screen, HomeScreen)
        said = [notice for notice in notices(app) if "cannot remember" in notice]
        assert len(said) == 1
        await pilot.press("ctrl+o")
        await settle(app, pilot)
        await sign_in(app, pilot, "bob", PASSWORD, remember=True)
        said = [notice for notice in notices(app) if "cannot remember" in notice]
        assert len(said) == 1
    assert not any(home.rglob("*"))  # and no token in a plain file


async def test_a_wrong_code_when_confirming_identity_can_be_retried_in_place(
    server: RunningServer,
) -> None:
    secret, _ = await user_with_totp(server, "alice")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "alice", PASSWORD)
        used = totp_code(secret, server.clock)
        await pilot.press(*used)
        await settle(app, pilot)
        await pilot.click("#disconnect")
        dialog = await wait_for_screen(app, pilot, ReauthScreen)
        await pilot.press(*PASSWORD, "enter", *used, "enter")  # the code just used to sign in
        await settle(app, pilot)
        assert app.screen is dialog  # still open, with the reason
        assert "already been used" in shown(app, "#dialog-error")
        assert focused_id(app) == "code"
        assert dialog.query_one("#password", Input).value == PASSWORD
        server.clock.advance(30)
        await pilot.press(*totp_code(secret, server.clock), "enter")
        await settle(app, pilot)
        assert isinstance(app.screen, HomeScreen)
        assert "not connected" in shown(app, "#status")


async def test_few_codes_left_warns_with_a_key_to_make_new_ones(server: RunningServer) -> None:
    secret, codes = await user_with_totp(server, "alice")
    async with server.client() as http:
        for code in codes[:8]:
            challenge = (await login(http, "alice"))["token"]
            used = await http.post(
                "/api/v1/login/recovery", headers=bearer(challenge), json={"code": code}
            )
            assert used.status_code == 200
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "alice", PASSWORD)
        await pilot.press(*totp_code(secret, server.clock))
        await settle(app, pilot)
        left = shown(app, "#codes-left")
        assert "Recovery codes left: 2" in left
        assert "press G" in left
        await pilot.press("g")
        await wait_for_screen(app, pilot, ReauthScreen)


async def test_a_grace_period_shows_its_deadline(server: RunningServer) -> None:
    await server.add_user("bob")
    await force_2fa(server, grace_days=7)
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        assert isinstance(app.screen, HomeScreen)
        banner = shown(app, "#deadline-banner")
        assert "requires two-factor authentication" in banner
        assert "2026-12-05" in banner  # START is 2026-11-28 12:00 UTC, plus 7 days


async def test_the_command_palette_opens_history(server: RunningServer) -> None:
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"open history")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.screen.query_one(TabbedContent).active == "history"
