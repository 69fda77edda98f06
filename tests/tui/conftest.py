"""Client fixtures: the app against the real in-process server, and a keyring in memory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import keyring
import pytest
from keyring.backend import KeyringBackend
from textual.pilot import Pilot
from textual.screen import ModalScreen, Screen
from textual.widgets import Checkbox, Static
from textual.worker import WorkerCancelled

from tfa_tui import words
from tfa_tui.api import TotpRequired
from tfa_tui.api.client import TfaClient
from tfa_tui.app import TfaApp
from tfa_tui.screens.home import HomeScreen
from tfa_tui.session_store import SessionStore

from ..conftest import PASSWORD, RunningServer, enable_totp, login, totp_code

D = TypeVar("D", bound=Screen[Any])


class MemoryKeyring(KeyringBackend):
    """Stands in for the OS keyring: tests never touch the developer's real one."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        from keyring.errors import PasswordDeleteError

        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


@pytest.fixture
def database_url() -> None:
    """The client's tests run on SQLite alone (tests/conftest.py runs the server's on both)."""
    return


@pytest.fixture(autouse=True)
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


class CountingTransport(httpx.AsyncBaseTransport):
    """Passes every request on to the real network transport and notes its method and path: a
    recorder of what the app sent, not a stand-in for the server."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self._network = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        return await self._network.handle_async_request(request)

    async def aclose(self) -> None:
        await self._network.aclose()


@asynccontextmanager
async def running_app(
    server: RunningServer,
    size: tuple[int, int] = (80, 24),
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    notifications: bool = False,
    **kwargs: Any,
) -> AsyncIterator[tuple[TfaApp, Pilot[None]]]:
    """The app on the server; `notifications` draws them (Textual's tests leave them out)."""
    app = TfaApp(TfaClient(server.base_url, transport=transport), store=SessionStore(), **kwargs)
    record_notices(app)
    # The client judges the server's times (deadlines, locks) by its own clock: here that is
    # the server's fake clock, as one real clock serves both in use.
    system_clock = words.utc_now
    words.utc_now = lambda: datetime.fromtimestamp(server.clock.now(), UTC)
    try:
        async with app.run_test(size=size, notifications=notifications) as pilot:
            await settle(app, pilot)
            yield app, pilot
            # A screen the test's last step opened finishes mounting before the app quits: a
            # loaded machine showed widgets mounted after their children were taken down.
            await settle(app, pilot)
            await pilot.pause(0.05)
    finally:
        words.utc_now = system_clock


async def settle(app: TfaApp, pilot: Pilot[None]) -> None:
    """Wait for the app's workers (network calls) and the screen updates they cause.

    While a dialog is open its caller's worker waits for the answer, so then only the
    screen is let to catch up (waiting for that worker would wait forever).
    """
    for _ in range(5):
        if isinstance(app.screen, ModalScreen):
            await pilot.pause(0.05)
            return
        with contextlib.suppress(WorkerCancelled):  # an exclusive worker's newer run won
            await app.workers.wait_for_complete()
        await pilot.pause()
        if not any(worker.is_running for worker in app.workers):
            return


async def wait_for(pilot: Pilot[None], condition: Callable[[], bool], what: str) -> None:
    """Poll the app (a few ms at a time) until `condition` holds; fail after 10 s (a loaded
    CI machine with two test workers took more than 5 s for a screen that needs the server)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10.0
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.01)


async def dialog_open(app: TfaApp, pilot: Pilot[None], kind: type[D]) -> D:
    """Wait until a screen of this kind is on top with its buttons laid out (a worker pushes
    it; a click before the layout lands elsewhere, as a loaded machine showed)."""
    await wait_for(pilot, lambda: isinstance(app.screen, kind), f"the {kind.__name__}")
    await wait_for(
        pilot,
        lambda: (
            any(True for _ in app.screen.query("Button"))
            and all(button.region.area > 0 for button in app.screen.query("Button"))
        ),
        "its buttons",
    )
    assert isinstance(app.screen, kind)
    return app.screen


async def at_home(
    app: TfaApp,
    pilot: Pilot[None],
    server: RunningServer,
    username: str,
    password: str = PASSWORD,
    secret: str | None = None,
) -> HomeScreen:
    """Sign in through the app's own client (the second factor too) and wait for Home."""
    result = await app.api.login(username, password)
    if isinstance(result, TotpRequired):
        assert secret is not None
        result = await app.api.login_totp(totp_code(secret, server.clock))
        server.clock.advance(30)
    app.signed_in(result, remember=False)
    await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "the home screen")
    await settle(app, pilot)
    assert isinstance(app.screen, HomeScreen)
    return app.screen


def record_notices(app: TfaApp) -> list[str]:
    """Keep every notification's text in `app.notices`, for tests to read."""
    notices: list[str] = []
    original = app.notify

    def notify(message: str, **kwargs: Any) -> None:
        notices.append(message)
        original(message, **kwargs)

    app.notify = notify  # type: ignore[method-assign]
    app.notices = notices  # type: ignore[attr-defined]
    return notices


def notices(app: TfaApp) -> list[str]:
    return app.notices  # type: ignore[attr-defined,no-any-return]


def shown(app: TfaApp, selector: str) -> str:
    """The plain text a Static or Label on the current screen shows."""
    widget = app.screen.query_one(selector, Static)
    return widget.visual.plain if hasattr(widget.visual, "plain") else str(widget.visual)


async def type_into(pilot: Pilot[None], app: TfaApp, selector: str, text: str) -> None:
    """Focus a field and type into it key by key, as a person would."""
    app.screen.query_one(selector).focus()
    await pilot.pause()
    await pilot.press(*text)


async def sign_in(
    app: TfaApp, pilot: Pilot[None], username: str, password: str, *, remember: bool = False
) -> None:
    """Type the credentials on the Sign in screen: username, Tab, password, Enter."""
    await pilot.press(*username)
    await pilot.press("tab")
    await pilot.press(*password)
    if remember:
        app.screen.query_one("#remember", Checkbox).value = True
    await pilot.press("enter")
    await settle(app, pilot)


async def user_with_totp(server: RunningServer, name: str) -> tuple[str, list[str]]:
    """A user with 2FA connected through the API: its secret and recovery codes."""
    await server.add_user(name)
    async with server.client() as http:
        token = (await login(http, name))["token"]
        return await enable_totp(http, token, server.clock)


async def at_the_code_step(app: TfaApp, pilot: Pilot[None], server: RunningServer) -> str:
    """From Home without 2FA through the setup's first two steps (installed, scanned) to the
    code field: the secret the setup shows."""
    from tfa_tui.screens.setup import SetupScreen

    await pilot.press("enter")  # Connect authenticator app
    await settle(app, pilot)
    screen = app.screen
    assert isinstance(screen, SetupScreen)
    await pilot.press("enter", "enter")  # installed, scanned
    await wait_for(pilot, lambda: screen.setup is not None, "the secret")
    assert screen.setup is not None
    return screen.setup.secret
