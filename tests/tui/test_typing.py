"""Issue 11, "Inputs that keep up with fast typing": keys that arrive in one burst (tmux, a slow
SSH link, a password manager's auto-type) give what the same keys typed one by one give, in
every field; and code fields show nothing but the characters a code can have.

`pilot.press` waits for the app after each key, so it cannot show the problem: `burst` queues
every key before the app handles the first, as the terminal driver does with one read. The
process test at the end writes the bytes to a real `tfa --demo` on a pseudo-terminal.
"""

from __future__ import annotations

from pathlib import Path

from textual import events
from textual.pilot import Pilot
from textual.widgets import Input

from tfa_server import recovery
from tfa_tui.app import TfaApp
from tfa_tui.screens.home import HomeScreen
from tfa_tui.screens.reauth import ReauthScreen
from tfa_tui.screens.recovery_codes import RecoveryCodesScreen
from tfa_tui.screens.second_factor import SecondFactorScreen
from tfa_tui.screens.setup import SetupScreen
from tfa_tui.screens.sign_in import SignInScreen
from tfa_tui.widgets.code_input import RECOVERY_ALPHABET, SEPARATORS

from ..conftest import PASSWORD, RunningServer, totp_code
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
from .test_demo_process import Terminal

# What the terminal driver makes of these bytes: the key's name and the character it carries.
NAMES = {" ": "space", "-": "minus", "!": "exclamation_mark", "\r": "enter", "\t": "tab"}
CHARACTERS = {"space": " ", "minus": "-", "enter": "\r", "tab": "\t", "backspace": "\x7f"}


def burst(app: TfaApp, *keys: str) -> None:
    """Queue the keys all at once, as one read from the terminal does."""
    for key in keys:
        name = NAMES.get(key, key)
        app.post_message(events.Key(name, CHARACTERS.get(name, key if len(key) == 1 else None)))


def value(app: TfaApp, selector: str) -> str:
    return app.screen.query_one(selector, Input).value


async def on_home(app: TfaApp, pilot: Pilot[None]) -> None:
    await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "the Home screen")
    await settle(app, pilot)


# Point 1: bursts


async def test_backspaces_and_a_code_in_one_burst_sign_in(server: RunningServer) -> None:
    """Point 1: `12`, then Backspace Backspace and the code in one burst. Backspace is a binding
    Textual ran only once the key had bubbled up to the app, after the digits behind it were
    already in the field: it showed `12` and five digits of the code, and nothing was sent."""
    secret, _ = await user_with_totp(server, "alice")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "alice", PASSWORD)
        assert isinstance(app.screen, SecondFactorScreen)
        await pilot.press("1", "2")
        burst(app, "backspace", "backspace", *totp_code(secret, server.clock))
        await on_home(app, pilot)


async def test_name_enter_password_enter_in_one_burst_signs_in(server: RunningServer) -> None:
    """Point 1: Enter moved to the password only once the Submitted message had gone round, so
    the password typed behind it landed in the username field."""
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        burst(app, *"bob", "\r", *PASSWORD, "\r")
        await on_home(app, pilot)


async def test_corrections_in_one_burst_in_the_sign_in_fields(server: RunningServer) -> None:
    """Point 1: a typo corrected within the burst, in the username and in the password."""
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        burst(app, *"box", "backspace", "b", "tab", *PASSWORD, "!", "!", "backspace", "backspace")
        await wait_for(pilot, lambda: value(app, "#password") == PASSWORD, "the password")
        assert value(app, "#username") == "bob"
        burst(app, "home", "delete", "end", "enter")  # Home, Delete: a character too few
        await settle(app, pilot)
        assert isinstance(app.screen, SignInScreen)
        assert "username or password" in shown(app, "#error").lower()
        burst(app, *PASSWORD, "enter")
        await on_home(app, pilot)


async def test_the_code_and_enter_in_one_burst_sign_in(server: RunningServer) -> None:
    """Point 1: the sixth digit sends the code by itself; an Enter right behind it (typed out of
    habit) must not send it a second time (it did: two requests, the first one cancelled)."""
    secret, _ = await user_with_totp(server, "alice")
    sent = CountingTransport()
    async with running_app(server, transport=sent) as (app, pilot):
        await sign_in(app, pilot, "alice", PASSWORD)
        burst(app, *totp_code(secret, server.clock), "enter")
        await on_home(app, pilot)
    assert sent.requests.count("POST /api/v1/login/totp") == 1


async def test_setup_next_then_the_code_in_one_burst_connects(server: RunningServer) -> None:
    """Point 1: in the setup, Enter on Next and the code typed at once. The step changed only
    after the button's message, so the digits went to the button and were lost."""
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        await pilot.press("enter")  # Connect authenticator app
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, SetupScreen)
        await pilot.press("enter")  # step 1: the app is installed
        await wait_for(pilot, lambda: screen.setup is not None, "the secret")
        assert screen.setup is not None
        secret = screen.setup.secret
        burst(app, "enter", *totp_code(secret, server.clock))
        await wait_for(
            pilot, lambda: isinstance(app.screen, RecoveryCodesScreen), "the recovery codes"
        )


async def test_setup_corrections_in_one_burst_connect(server: RunningServer) -> None:
    """Point 1: the setup's code field, `12` then Backspace Backspace and the code at once.
    Point 2: it keeps only digits, as at sign-in."""
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        secret = await at_the_code_step(app, pilot, server)
        await pilot.press(*"pass-1!")
        assert value(app, "#code") == "1"
        await pilot.press("2")
        burst(app, "backspace", "backspace", *totp_code(secret, server.clock))
        await wait_for(
            pilot, lambda: isinstance(app.screen, RecoveryCodesScreen), "the recovery codes"
        )


async def test_reauth_password_enter_code_enter_in_one_burst(server: RunningServer) -> None:
    """Point 1: "Confirm it is you" moved from the password to the code field only after the
    Submitted message, so the code landed in the password field.
    Point 2: its code field (6 digits or a recovery code) showed a password typed into it; it
    keeps digits and the recovery alphabet."""
    secret, _ = await user_with_totp(server, "alice")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "alice", PASSWORD)
        await pilot.press(*totp_code(secret, server.clock))
        await on_home(app, pilot)
        server.clock.advance(30)
        await pilot.click("#disconnect")
        await wait_for(pilot, lambda: isinstance(app.screen, ReauthScreen), "the dialog")
        await type_into(pilot, app, "#code", "moo1!l0i-abc")
        assert value(app, "#code") == "M10-ABC"
        app.screen.query_one("#code", Input).value = ""
        await type_into(pilot, app, "#password", "")
        burst(app, *PASSWORD, "enter", *totp_code(secret, server.clock), "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "Home again")
        await wait_for(
            pilot,
            lambda: "not connected" in shown(app, "#status"),
            "2FA disconnected",
        )


def test_the_real_program_keeps_up_with_one_write(tmp_path: Path) -> None:
    """Point 1, as seen in tmux: `tfa --demo` on a pseudo-terminal gets "bob<Enter>password
    <Enter>" in one write(2) and signs bob in."""
    term = Terminal(tmp_path)
    try:
        term.wait_for("Sign in to tfa")
        term.type("bob\rbob-demo1\r")
        term.wait_for("Connect authenticator app", seconds=15)
        term.type("\x11")  # Ctrl+Q
        term.ended_within(10)
    finally:
        term.close()


# Point 2: code fields keep only what a code can contain


def test_every_code_the_server_makes_fits_the_recovery_field() -> None:
    """Point 2: the recovery field keeps only what a code can hold, so it must hold every
    character of the codes the server prints (letters, digits and the dashes)."""
    printed = "".join(recovery.format_code(code) for code in recovery.generate(200))
    assert set(printed) <= set(RECOVERY_ALPHABET + SEPARATORS)


async def test_code_fields_drop_what_no_code_contains(server: RunningServer) -> None:
    """Point 2: a password typed into the second factor's fields by mistake. The recovery field
    showed it in clear; now it keeps the recovery alphabet (in capitals, as printed) and the
    6-digit field only digits. A paste keeps the same characters."""
    await user_with_totp(server, "alice")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "alice", PASSWORD)
        await type_into(pilot, app, "#code", "hunter2!")
        assert value(app, "#code") == "2"
        app.screen.query_one("#code", Input).value = ""
        app.post_message(events.Paste("12-3 4\n"))
        await pilot.pause()
        assert value(app, "#code") == "123 4"

        await pilot.press("ctrl+r")
        await type_into(pilot, app, "#recovery", "moo1!l0i-abc 2")
        assert value(app, "#recovery") == "M-ABC 2"
        assert all(char in RECOVERY_ALPHABET + "- " for char in value(app, "#recovery"))
