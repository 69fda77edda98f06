"""The keyring holds a session only when "Remember me" is ticked, and only a full session (F17):
never a challenge token (password done, code not yet), never anything without the tick."""

from __future__ import annotations

import pytest

from tfa_tui.screens.home import HomeScreen
from tfa_tui.screens.second_factor import SecondFactorScreen

from ..conftest import PASSWORD, RunningServer, bearer, totp_code
from .conftest import MemoryKeyring, running_app, settle, sign_in, user_with_totp

pytestmark = pytest.mark.finding("F17")


async def test_without_remember_me_a_password_sign_in_stores_nothing(
    server: RunningServer, memory_keyring: MemoryKeyring
) -> None:
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "bob", PASSWORD, remember=False)
        assert isinstance(app.screen, HomeScreen)
        assert memory_keyring.entries == {}
    assert memory_keyring.entries == {}


async def test_without_remember_me_a_sign_in_with_a_code_stores_nothing(
    server: RunningServer, memory_keyring: MemoryKeyring
) -> None:
    secret, _ = await user_with_totp(server, "alice")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "alice", PASSWORD, remember=False)
        assert isinstance(app.screen, SecondFactorScreen)
        assert memory_keyring.entries == {}
        await pilot.press(*totp_code(secret, server.clock))
        await settle(app, pilot)
        assert isinstance(app.screen, HomeScreen)
        assert memory_keyring.entries == {}
    assert memory_keyring.entries == {}


async def test_remember_me_stores_the_full_session_only_after_the_code(
    server: RunningServer, memory_keyring: MemoryKeyring
) -> None:
    secret, _ = await user_with_totp(server, "alice")
    async with running_app(server) as (app, pilot):
        await sign_in(app, pilot, "alice", PASSWORD, remember=True)
        assert isinstance(app.screen, SecondFactorScreen)
        challenge = app.api.token
        assert challenge is not None
        assert memory_keyring.entries == {}, "a challenge token was stored"
        await pilot.press(*totp_code(secret, server.clock))
        await settle(app, pilot)
        assert isinstance(app.screen, HomeScreen)
        session = app.api.token
    service = f"tfa:{server.base_url}"
    assert memory_keyring.entries == {(service, "last-user"): "alice", (service, "alice"): session}
    assert session != challenge
    async with server.client() as http:  # what is stored opens the account; the challenge not
        assert (await http.get("/api/v1/me", headers=bearer(session or ""))).status_code == 200
        assert (await http.get("/api/v1/me", headers=bearer(challenge))).status_code == 401
