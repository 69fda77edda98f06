"""A session the policy holds to the setup, and the password an older session must give
before connecting an authenticator, as the client meets them."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from tfa_protocol.types import Challenged
from tfa_server.config import SessionRules
from tfa_tui.api import TotpRequired
from tfa_tui.screens.home import HomeScreen
from tfa_tui.screens.reauth import ReauthScreen
from tfa_tui.screens.setup import SetupScreen

from ..conftest import PASSWORD, RunningServer
from .conftest import running_app, settle, shown, sign_in
from .test_flows import force_2fa, wait_for_screen


@pytest.mark.finding("F05")
async def test_a_session_the_policy_now_holds_goes_to_setup_with_words(
    server: RunningServer,
) -> None:
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        assert isinstance(app.screen, HomeScreen)
        await force_2fa(server, grace_days=0)
        await pilot.press("r")
        await settle(app, pilot)
        assert isinstance(app.screen, SetupScreen)
        assert "Your administrator requires two-factor authentication" in shown(app, "#forced")
        assert app.screen.setup is not None  # fresh sign-in: no password asked


@pytest.mark.finding("F06")
async def test_connecting_an_app_on_an_older_session_asks_for_the_password(
    server: RunningServer,
) -> None:
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        server.clock.advance(SessionRules().fresh_sign_in + 1)
        await pilot.press("enter")  # Connect authenticator app has the focus
        dialog = await wait_for_screen(app, pilot, ReauthScreen)
        assert not dialog.query("#code")  # the password alone
        await pilot.press(*"not my password", "enter")
        await pilot.pause(0.2)
        await settle(app, pilot)
        assert app.screen is dialog
        assert "password is not right" in shown(app, "#dialog-error")
        assert dialog.query_one("#password", Input).value == ""
        await pilot.press(*PASSWORD, "enter")
        await pilot.pause(0.2)
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, SetupScreen)
        assert screen.setup is not None
        assert shown(app, "#key")


async def test_cancelling_the_password_leaves_the_setup(server: RunningServer) -> None:
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        server.clock.advance(SessionRules().fresh_sign_in + 1)
        await pilot.press("enter")
        await wait_for_screen(app, pilot, ReauthScreen)
        await pilot.press("escape")
        await settle(app, pilot)
        await settle(app, pilot)
        assert isinstance(app.screen, HomeScreen)


# The API layer on its own, against the real server


@pytest.mark.finding("F04")
async def test_the_client_reads_a_challenge_that_names_only_the_account(
    server: RunningServer,
) -> None:
    from .test_api_client import connect_totp, real_client

    await server.add_user("alice")
    async with real_client(server) as api:
        await api.login("alice", PASSWORD)
        await connect_totp(api, server)
        result = await api.login("alice", PASSWORD)
        assert isinstance(result, TotpRequired)
        assert result.user == Challenged(username="alice")


@pytest.mark.finding("F06")
async def test_the_client_sends_the_password_when_the_server_asks(server: RunningServer) -> None:
    from tfa_tui.api.errors import InvalidCredentials, PasswordRequired

    from .test_api_client import real_client

    await server.add_user("alice")
    async with real_client(server) as api:
        await api.login("alice", PASSWORD)
        server.clock.advance(SessionRules().fresh_sign_in + 1)
        with pytest.raises(PasswordRequired) as asked:
            await api.totp_setup()
        assert asked.value.status == 403
        with pytest.raises(InvalidCredentials):
            await api.totp_setup("not the password")
        setup = await api.totp_setup(PASSWORD)
        assert setup.account == "alice"


@pytest.mark.finding("F08")
async def test_counted_refusals_say_how_many_in_history(server: RunningServer) -> None:
    from tfa_tui.widgets.fit_table import FitTable

    await server.add_user("bob")
    async with server.client() as http:
        for _ in range(5 + 3):  # five failures lock the account; three refusals are counted
            await http.post("/api/v1/login", json={"username": "bob", "password": "wrong-pw"})
    server.clock.advance(31)
    async with running_app(server, size=(120, 40)) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD)
        await pilot.press("h")
        await settle(app, pilot)
        table = app.screen.query_one("#history-table", FitTable)
        cells = [
            {label: value.plain for label, value in table.fields(key).items()}
            for key in table.records
        ]
        refused = [row for row in cells if row["Reason"] == "locked out"]
        assert len(refused) == 1
        assert "✘ failed 3 times" in refused[0]["Result"]
