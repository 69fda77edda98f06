"""Leaving the app, signing out and the notifications on the way (issue 11): the recovery codes
are never lost to Ctrl+Q, a session ends when the person thinks it ended, one problem is one
notification."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from textual.pilot import Pilot

from tfa_tui.app import TfaApp
from tfa_tui.screens.confirm import ConfirmScreen
from tfa_tui.screens.home import HomeScreen
from tfa_tui.screens.reauth import ReauthScreen
from tfa_tui.screens.recovery_codes import RecoveryCodesScreen
from tfa_tui.screens.sign_in import SignInScreen

from ..conftest import PASSWORD, RunningServer, bearer, enable_totp, login, totp_code
from .conftest import running_app, settle, shown, sign_in, wait_for

CODES = [f"abcd-{number:04d}" for number in range(10)]


async def new_codes(server: RunningServer, app: TfaApp, pilot: Pilot[None]) -> list[str]:
    """Sign alice in with her app and make new recovery codes: the old set is void from now."""
    await server.add_user("alice")
    async with server.client() as http:
        token = (await login(http, "alice"))["token"]
        secret, old = await enable_totp(http, token, server.clock)
    await sign_in(app, pilot, "alice", PASSWORD)
    await pilot.press(*totp_code(secret, server.clock))
    await settle(app, pilot)
    await pilot.press("g")
    await wait_for(pilot, lambda: isinstance(app.screen, ReauthScreen), "the identity check")
    await pilot.press(*PASSWORD, "enter", *old[0], "enter")
    await settle(app, pilot)
    assert isinstance(app.screen, RecoveryCodesScreen)
    return app.screen.codes


async def leave_question(app: TfaApp, pilot: Pilot[None]) -> ConfirmScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
    assert isinstance(app.screen, ConfirmScreen)
    assert shown(app, "#dialog-title") == "Leave without storing the codes?"
    return app.screen


async def ended(app: TfaApp, pilot: Pilot[None]) -> None:
    await wait_for(pilot, lambda: app.return_code is not None, "the app to end")


async def test_ctrl_q_on_the_recovery_codes_asks_first(server: RunningServer) -> None:
    """Issue 11, "Never lose what cannot be shown again": Ctrl+Q asks the question Escape asks;
    Stay keeps the codes on screen, Leave anyway quits."""
    async with running_app(server) as (app, pilot):
        codes = await new_codes(server, app, pilot)
        await pilot.press("ctrl+q")
        await leave_question(app, pilot)
        await pilot.press("enter")  # Stay has the focus
        await settle(app, pilot)
        assert app.return_code is None
        assert isinstance(app.screen, RecoveryCodesScreen)
        assert all(code in shown(app, "#codes") for code in codes)

        await pilot.press("escape")  # asked by Escape, then Ctrl+Q: one question for both
        await leave_question(app, pilot)
        await pilot.press("ctrl+q")
        await pilot.pause(0.1)
        assert sum(isinstance(screen, ConfirmScreen) for screen in app.screen_stack) == 1
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.return_code is None
        assert isinstance(app.screen, RecoveryCodesScreen)

        await pilot.press("ctrl+q")
        await leave_question(app, pilot)
        await pilot.click("#confirm")
        await ended(app, pilot)


async def test_the_palette_quit_on_the_recovery_codes_asks_first(server: RunningServer) -> None:
    """Issue 11, "Never lose what cannot be shown again": the command palette's Quit asks too;
    once "I have stored these codes" is ticked, Ctrl+Q quits without a question."""
    async with running_app(server) as (app, pilot):
        await app.switch_screen(RecoveryCodesScreen(CODES, "alice"))  # how it came is elsewhere
        await settle(app, pilot)
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"quit")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await leave_question(app, pilot)
        await pilot.press("escape")  # Stay
        await settle(app, pilot)
        assert app.return_code is None
        assert isinstance(app.screen, RecoveryCodesScreen)

        await pilot.click("#stored")
        await pilot.press("ctrl+q")
        await ended(app, pilot)
        assert not isinstance(app.screen, ConfirmScreen)


async def test_signing_out_unheard_by_the_server_says_so(server: RunningServer) -> None:
    """Issue 11, "Sessions end when the person thinks they ended": with the server unreachable,
    signing out does not claim the session ended; it says where it still lives."""
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        assert isinstance(app.screen, HomeScreen)
        await server.app.stop()
        await pilot.press("ctrl+o")
        await settle(app, pilot)
        assert isinstance(app.screen, SignInScreen)
        notice = shown(app, "#notice")
        assert "You are signed out." not in notice
        assert "the server could not be told" in notice
        assert "revoke it from Sessions" in notice


async def test_signing_out_of_a_session_already_ended_is_a_plain_sign_out(
    server: RunningServer,
) -> None:
    """Issue 11, "Sessions end when the person thinks they ended": a session the server has
    already ended (401) is signed out all the same; nothing lives on."""
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        async with server.client() as http:
            await http.post("/api/v1/logout", headers=bearer(app.api.token or ""))
        await pilot.press("ctrl+o")
        await settle(app, pilot)
        assert shown(app, "#notice") == "You are signed out."


async def test_quitting_ends_a_session_that_is_not_remembered(server: RunningServer) -> None:
    """Issue 11, "Sessions end when the person thinks they ended": without a keyring every
    start would add a session that outlives the app; Ctrl+Q ends it on the server."""
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        assert not app.remembered
        token = app.api.token or ""
        await pilot.press("ctrl+q")
        await ended(app, pilot)
    async with server.client() as http:
        assert (await http.get("/api/v1/me", headers=bearer(token))).status_code == 401


async def test_quitting_keeps_a_remembered_session(server: RunningServer) -> None:
    """Issue 11, "Sessions end when the person thinks they ended": a remembered session is kept
    on quitting, which is the point of remembering it."""
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD, remember=True)
        assert app.remembered
        token = app.api.token or ""
        await pilot.press("ctrl+q")
        await ended(app, pilot)
    async with server.client() as http:
        assert (await http.get("/api/v1/me", headers=bearer(token))).status_code == 200


@asynccontextmanager
async def silent_server(port: int) -> AsyncIterator[list[bytes]]:
    """A listener on `port` that accepts and reads but never answers: a hung server. Yields the
    first bytes of each request it got."""
    requests: list[bytes] = []
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        requests.append(await reader.read(64))

    listener = await asyncio.start_server(hold, "127.0.0.1", port)
    try:
        yield requests
    finally:
        listener.close()
        for writer in held:
            writer.close()


async def test_quitting_never_hangs_on_a_silent_server(server: RunningServer) -> None:
    """Issue 11, "Sessions end when the person thinks they ended": the logout on quitting is
    tried, but a server that does not answer holds the app for about two seconds at most."""
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        await server.app.stop()
        async with silent_server(server.app.port) as requests:
            loop = asyncio.get_running_loop()
            started = loop.time()
            await pilot.press("ctrl+q")
            await ended(app, pilot)
            took = loop.time() - started
            assert [request.split(b" HTTP")[0] for request in requests] == [b"POST /api/v1/logout"]
    assert took < 3.0  # the logout on quitting gives up after about 2 s


async def test_one_problem_is_one_notification(server: RunningServer) -> None:
    """Issue 11, "Texts that stay true": a refresh with the server down starts several calls
    that each fail the same way; the person sees that once."""
    await server.add_user("root", admin=True)
    async with running_app(server, notifications=True) as (app, pilot):
        await sign_in(app, pilot, "root", PASSWORD)
        assert isinstance(app.screen, HomeScreen)
        await server.app.stop()
        await pilot.press("r")
        await settle(app, pilot)
        await pilot.pause(0.1)
        live = [note.message for note in app._notifications]
        problem = f"Cannot reach the server at {server.base_url}: connection refused."
        assert live.count(problem) == 1, live
