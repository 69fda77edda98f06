"""Issue 11 around signing in: a lock-out that counts down and ends the same way on both sign-in
screens, messages that belong to their moment, a server address that can be corrected (and
refused at start when it cannot be an address), and a username that is kept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual.widgets import Button, Input

from tfa_server.admin import Actor, Admin
from tfa_server.config import ThrottleRules
from tfa_tui.api.client import TfaClient, server_problem
from tfa_tui.app import TfaApp
from tfa_tui.cli import main
from tfa_tui.screens.confirm import ConfirmScreen
from tfa_tui.screens.home import HomeScreen
from tfa_tui.screens.reauth import ReauthScreen
from tfa_tui.screens.second_factor import SecondFactorScreen
from tfa_tui.screens.sign_in import SignInScreen
from tfa_tui.session_store import SessionStore

from ..conftest import PASSWORD, RunningServer, start_server, totp_code
from .conftest import (
    CountingTransport,
    at_the_code_step,
    running_app,
    settle,
    shown,
    sign_in,
    type_into,
    user_with_totp,
    wait_for,
)


@pytest.fixture
async def quick_locks(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A server whose accounts lock after one failure, for 3 s: a countdown a test can watch."""
    rules = ThrottleRules(account_free_failures=1, account_base_lock=3.0)
    running = await start_server(tmp_path, throttle=rules)
    yield running
    await running.app.stop()


def focused_id(app: TfaApp) -> str | None:
    return app.focused.id if app.focused is not None else None


def seconds_left(text: str) -> int:
    return int(text.split("Try again in ")[1].split()[0])


def wrong(code: str, by: int = 1) -> str:
    return f"{(int(code) + by) % 1_000_000:06d}"


# Point 3: a lock-out counts down, and ends with the focus where the next try is typed


async def test_the_password_has_the_focus_when_a_lock_out_ends(quick_locks: RunningServer) -> None:
    """Point 3: after "You can try again now." nothing had the focus."""
    await quick_locks.add_user("bob")
    async with running_app(quick_locks) as (app, pilot):
        await sign_in(app, pilot, "bob", "wrong")  # the one free failure
        await pilot.press(*"wrong", "enter")
        await settle(app, pilot)
        assert 0 < seconds_left(shown(app, "#error")) <= 3
        assert app.screen.query_one("#sign-in", Button).disabled
        await wait_for(pilot, lambda: "try again now" in shown(app, "#error"), "the end")
        assert not app.screen.query_one("#sign-in", Button).disabled
        assert focused_id(app) == "password"


async def test_the_code_screen_counts_a_lock_out_down_and_ends_it(
    quick_locks: RunningServer,
) -> None:
    """Point 3: "Too many failed attempts. Try again in 3 seconds." stayed as it was on the code
    screen; now it counts down and ends as on the sign-in screen, the code field focused."""
    secret, _ = await user_with_totp(quick_locks, "alice")
    sent = CountingTransport()
    async with running_app(quick_locks, transport=sent) as (app, pilot):
        await sign_in(app, pilot, "alice", PASSWORD)
        assert isinstance(app.screen, SecondFactorScreen)
        code = totp_code(secret, quick_locks.clock)
        await pilot.press(*wrong(code))  # the one free failure
        await settle(app, pilot)
        await pilot.press(*wrong(code, 2))
        await settle(app, pilot)
        first = shown(app, "#error")
        assert "Too many failed attempts" in first
        assert 1 < seconds_left(first) <= 3
        tries = sent.requests.count("POST /api/v1/login/totp")
        await pilot.press(*wrong(code, 3))  # refused here while it counts: no request
        await settle(app, pilot)
        assert sent.requests.count("POST /api/v1/login/totp") == tries
        await wait_for(pilot, lambda: "Try again in 1 s" in shown(app, "#error"), "1 s left")
        await wait_for(pilot, lambda: shown(app, "#error") == "You can try again now.", "the end")
        assert focused_id(app) == "code"


# Point 4: each message belongs to its moment


async def test_a_new_attempt_replaces_the_notice(server: RunningServer) -> None:
    """Point 4: "You are signed out." stayed above "Wrong username or password."."""
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        assert isinstance(app.screen, HomeScreen)
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, SignInScreen), "the sign-in")
        await settle(app, pilot)
        assert "signed out" in shown(app, "#notice")
        app.screen.query_one("#username", Input).value = "bob"
        await type_into(pilot, app, "#password", "not the password")
        await pilot.press("enter")
        await settle(app, pilot)
        assert "username or password" in shown(app, "#error").lower()
        assert not app.screen.query_one("#notice").display


async def test_setup_forgets_a_wrong_code_after_back_and_next(server: RunningServer) -> None:
    """Point 4: "That code did not match" was still there after Back, then Next."""
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        secret = await at_the_code_step(app, pilot, server)
        screen = app.screen
        await pilot.press(*wrong(totp_code(secret, server.clock)))
        await settle(app, pilot)
        assert "did not match" in shown(app, "#error")
        await pilot.click("#back-to-scan")
        await pilot.click("#to-verify")
        await pilot.pause()
        assert focused_id(app) == "code"
        assert not screen.query_one("#error").display


# Point 5: the server address


async def test_the_server_can_be_corrected_on_the_sign_in_screen(server: RunningServer) -> None:
    """Point 5: the Server line was a label; a typo in it meant quitting. Now it is a field, and
    what is typed there is checked and used for the sign-in."""
    await server.add_user("bob")
    typo = server.base_url.replace("127.0.0.1", "127.0.0.2")  # nobody listens there
    app = TfaApp(TfaClient(typo), store=SessionStore())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        field = app.screen.query_one("#server", Input)
        assert field.value == typo
        await type_into(pilot, app, "#server", server.base_url.removeprefix("http://"))
        await pilot.press("enter")
        assert focused_id(app) == "username"
        await pilot.press(*"bob", "enter", *PASSWORD, "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "Home")
        assert app.api.base_url == server.base_url


async def test_the_unencrypted_warning_follows_the_corrected_server() -> None:
    """Point 5: with --insecure-http the warning is shown exactly while the address typed is
    plain http:// to another machine (nothing is sent: the host does not even resolve)."""
    remote = "http://tfa.example.org"
    app = TfaApp(TfaClient(remote, insecure_http=True), store=SessionStore())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.screen.query("#insecure")
        await type_into(pilot, app, "#server", "tfa.example.org")  # https:// by default
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.query_one("#server", Input).value == "https://tfa.example.org"
        assert app.api.base_url == "https://tfa.example.org"
        assert not app.screen.query("#insecure")
        await type_into(pilot, app, "#server", remote)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen.query("#insecure")
        assert not app.screen.query_one("#error").display


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("not a url", "cannot contain spaces"),
        ("ftp://example.org", "must start with http:// or https://"),
        ("http://tfa.example.org", "sends your password unencrypted"),
        ("", "Enter the server address"),
    ],
)
async def test_a_server_that_cannot_be_used_is_said_in_words(
    server: RunningServer, typed: str, said: str
) -> None:
    """Point 5: the same rules as the command line, said in the error line; nothing is sent
    and the focus goes back to the address."""
    await server.add_user("bob")
    sent = CountingTransport()
    async with running_app(server, transport=sent) as (app, pilot):
        app.screen.query_one("#server", Input).value = typed
        await type_into(pilot, app, "#username", "bob")
        await type_into(pilot, app, "#password", PASSWORD)
        await pilot.press("enter")
        await settle(app, pilot)
        assert said in shown(app, "#error")
        assert focused_id(app) == "server"
        assert sent.requests == []
        assert app.api.base_url == server.base_url


def test_an_address_with_spaces_is_refused_at_start(capsys: pytest.CaptureFixture[str]) -> None:
    """Point 5: `tfa --server 'not a url'` became https://not a url and passed the check, to
    fail only at the first sign-in. Now one line and exit 2."""
    assert server_problem("https://not a url", insecure_http=False) is not None
    assert main(["--server", "not a url"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("tfa: error: --server 'not a url': ")


# Point 6: the username is kept


async def test_escape_from_the_code_screen_keeps_the_username(server: RunningServer) -> None:
    """Point 6: Escape on the code screen came back to an empty sign-in screen."""
    await user_with_totp(server, "alice")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "alice", PASSWORD)
        assert isinstance(app.screen, SecondFactorScreen)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, SignInScreen), "the sign-in")
        await settle(app, pilot)
        assert app.screen.query_one("#username", Input).value == "alice"
        assert focused_id(app) == "password"


async def test_the_sign_out_after_a_forced_disconnect_keeps_the_username(
    server: RunningServer,
) -> None:
    """Point 6: disconnecting 2FA while it is mandatory signs out; the name was lost."""
    secret, _ = await user_with_totp(server, "alice")
    await Admin(server.core).set_policy(Actor("test", None), True, 0)
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "alice", PASSWORD)
        await pilot.press(*totp_code(secret, server.clock))
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "Home")
        await settle(app, pilot)
        server.clock.advance(30)
        await pilot.click("#disconnect")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the warning")
        await pilot.click("#confirm")
        await wait_for(pilot, lambda: isinstance(app.screen, ReauthScreen), "the dialog")
        await type_into(pilot, app, "#password", PASSWORD)
        await pilot.press("enter", *totp_code(secret, server.clock), "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SignInScreen), "the sign-in")
        await settle(app, pilot)
        assert "signed out" in shown(app, "#notice")
        assert app.screen.query_one("#username", Input).value == "alice"
        assert focused_id(app) == "password"


def test_an_address_with_a_password_is_refused_without_repeating_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Point 5, and never print passwords: the refusal of `https://me:secret@host` says why in
    one line and does not echo the address with its password."""
    assert main(["--server", "https://me:hunter2-secret@tfa.example.org"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "user name or password" in err
    assert "hunter2" not in err
