"""`tfa --demo`: the bundled server on a free loopback port, with seeded accounts.

The server runs on its own thread and event loop, so its work never competes with the UI's.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from tfa_server.admin import Admin
from tfa_server.app import Application, initialise, open_core
from tfa_server.clock import Clock, SystemClock
from tfa_server.config import PasswordHashing, Settings, default_key_path
from tfa_server.demo_accounts import DEMO_ACCOUNTS, DemoCredentials, seed_demo_accounts


@dataclass
class DemoAccount:
    username: str
    password: str
    is_admin: bool = False
    has_2fa: bool = False  # as the server said when last asked
    note: str = ""
    secret: str | None = None  # the demo's stand-in for a phone

    @classmethod
    def seeded(cls, seed: DemoCredentials) -> DemoAccount:
        return cls(seed.username, seed.password, seed.is_admin, seed.with_2fa, seed.note)

    @property
    def description(self) -> str:
        role = "administrator" if self.is_admin else ""
        state = "2FA on" if self.has_2fa else "no 2FA"
        return ", ".join(part for part in (role, state, self.note) if part)


@dataclass
class DemoAccounts:
    accounts: list[DemoAccount] = field(
        default_factory=lambda: [DemoAccount.seeded(seed) for seed in DEMO_ACCOUNTS]
    )
    now: Callable[[], float] = time.time  # the phone's clock; the server's in tests
    # Who has 2FA now, by username, as the demo server says; None: nobody to ask.
    ask_server: Callable[[], Awaitable[dict[str, bool]]] | None = None

    async def refresh(self) -> None:
        """Take each account's 2FA state from the server: people connect and disconnect apps
        (in this app, or with curl) after the seeding."""
        if self.ask_server is None:
            return
        states = await self.ask_server()
        for account in self.accounts:
            account.has_2fa = states.get(account.username, account.has_2fa)

    def find(self, username: str) -> DemoAccount | None:
        return next((acc for acc in self.accounts if acc.username == username.lower()), None)

    def remember_secret(self, username: str, secret: str | None) -> None:
        account = self.find(username)
        if account is not None:
            account.secret = secret


class DemoServer:
    """The bundled server with the demo accounts, on its own thread.

    `clock`, `port` and `passwords` are for screenshots and snapshot tests, which need the
    same screen every run.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        port: int = 0,
        passwords: PasswordHashing | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self.accounts = DemoAccounts(now=self.clock.now, ask_server=self._two_factor_states)
        self._port = port
        self._passwords = passwords or PasswordHashing()
        self._folder = Path(tempfile.mkdtemp(prefix="tfa-demo-"))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._app: Application | None = None
        self._admin: Admin | None = None
        self._starting: Future[str] | None = None
        self.url = ""

    def start(self) -> str:
        self.begin()
        url = self.wait()
        assert url is not None  # nothing to give up on
        return url

    def begin(self) -> None:
        """Start in the background, so the caller can load the UI meanwhile."""
        self._thread.start()
        self._starting = asyncio.run_coroutine_threadsafe(self._start(), self._loop)

    def wait(self, give_up: threading.Event | None = None) -> str | None:
        """The server's URL once it runs; None if `give_up` is set first (a hang-up while
        the server starts), so the program need not wait for a server nobody will use."""
        assert self._starting is not None, "begin() first"
        deadline = time.monotonic() + 60
        while give_up is None or not give_up.is_set():
            try:
                self.url = self._starting.result(timeout=0.05)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
                continue
            return self.url
        return None

    async def _start(self) -> str:
        db = self._folder / "demo.db"
        settings = Settings(
            db_path=db, key_path=default_key_path(db), issuer="tfa", passwords=self._passwords
        )
        initialise(settings)
        core = open_core(settings, self.clock)
        for username, secret in (await seed_demo_accounts(core)).items():
            self.accounts.remember_secret(username, secret)
        self._admin = Admin(core)
        self._app = Application(core)
        await self._app.start("127.0.0.1", self._port)
        return f"http://127.0.0.1:{self._app.port}"

    async def _two_factor_states(self) -> dict[str, bool]:
        """Who has 2FA, read on the server's own loop: the caller's loop (the UI's) only
        awaits the answer."""
        if self._admin is None or not self._thread.is_alive():  # not running: nobody to ask
            return {}
        listing = asyncio.run_coroutine_threadsafe(self._admin.list_users(), self._loop)
        listed = await asyncio.wrap_future(listing)
        return {item.username: item.totp_enabled for item in listed.items}

    def stop(self) -> None:
        """Stop the server, waiting a bounded time for its thread, and remove the database
        whatever that thread does."""
        try:
            if self._thread.is_alive():
                if self._starting is not None:
                    self._starting.cancel()  # stopped while starting: stop seeding too
                if self._app is not None:
                    stopping = asyncio.run_coroutine_threadsafe(self._app.stop(), self._loop)
                    with contextlib.suppress(TimeoutError):
                        stopping.result(timeout=5)
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=5)
            if not self._thread.is_alive():
                self._loop.close()
        finally:
            self.discard()

    def discard(self) -> None:
        """Remove the throw-away database, from any thread, as often as called.

        It never waits for the server's thread, which may be stuck: a hang-up's watchdog calls
        it just before ending the process. The folder is renamed away first, so that a write in
        flight cannot create a file in it again between emptying it and removing it.
        """
        doomed = self._folder.with_name(self._folder.name + ".removing")
        with contextlib.suppress(OSError):  # already renamed or gone
            self._folder.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        shutil.rmtree(self._folder, ignore_errors=True)
