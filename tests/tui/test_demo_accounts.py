"""The demo accounts box on the Sign in screen of `tfa --demo` says what the server knows (issue
11, "Texts that stay true"): the real demo server on its own thread, the app in a pilot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pyotp
import pytest

from tfa_tui.api.client import TfaClient
from tfa_tui.app import TfaApp
from tfa_tui.demo import DemoServer
from tfa_tui.screens.sign_in import SignInScreen
from tfa_tui.session_store import SessionStore

from ..conftest import FAST_HASHING, FakeClock
from .conftest import settle, shown, sign_in


@pytest.fixture
async def demo() -> AsyncIterator[DemoServer]:
    server = DemoServer(clock=FakeClock(), passwords=FAST_HASHING)
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.stop)


def box_line(app: TfaApp, username: str) -> str:
    [line] = [
        line for line in shown(app, "#demo-accounts").splitlines() if line.startswith(username)
    ]
    return line


async def test_the_box_follows_the_server(demo: DemoServer) -> None:
    """Issue 11, the demo accounts box: after bob connects an app and alice disconnects hers,
    the next Sign in screen says bob has 2FA on and alice has none."""
    clock = demo.clock
    assert isinstance(clock, FakeClock)
    app = TfaApp(TfaClient(demo.url), store=SessionStore(), demo=demo.accounts)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        assert "no 2FA" in box_line(app, "bob")
        assert "2FA on" in box_line(app, "alice")

        await sign_in(app, pilot, "bob", "bob-demo1")
        assert not isinstance(app.screen, SignInScreen)
        # Meanwhile, on the same server: bob connects an app and alice disconnects hers.
        async with httpx.AsyncClient(base_url=f"{demo.url}/api/v1") as http:
            bob = await http.post("/login", json={"username": "bob", "password": "bob-demo1"})
            as_bob = {"Authorization": f"Bearer {bob.json()['token']}"}
            secret = (await http.post("/me/totp/setup", headers=as_bob)).json()["secret"]
            code = pyotp.TOTP(secret).at(clock.now())
            confirm = await http.post("/me/totp/confirm", headers=as_bob, json={"code": code})
            assert confirm.status_code == 200, confirm.text

            alice = demo.accounts.find("alice")
            assert alice is not None
            assert alice.secret is not None
            clock.advance(30)  # a code alice has not used yet
            challenge = await http.post(
                "/login", json={"username": "alice", "password": alice.password}
            )
            as_challenge = {"Authorization": f"Bearer {challenge.json()['token']}"}
            code = pyotp.TOTP(alice.secret).at(clock.now())
            full = await http.post("/login/totp", headers=as_challenge, json={"code": code})
            as_alice = {"Authorization": f"Bearer {full.json()['token']}"}
            clock.advance(30)
            code = pyotp.TOTP(alice.secret).at(clock.now())
            body = {"password": alice.password, "code": code}
            off = await http.request("DELETE", "/me/totp", headers=as_alice, json=body)
            assert off.status_code == 200, off.text

        await pilot.press("ctrl+o")
        await settle(app, pilot)
        assert isinstance(app.screen, SignInScreen)
        bob_line, alice_line = box_line(app, "bob"), box_line(app, "alice")
        assert "2FA on" in bob_line
        assert "no 2FA" not in bob_line
        assert "no 2FA" in alice_line
        assert "2FA on" not in alice_line
