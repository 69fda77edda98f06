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
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import pyotp

from tfa_server.admin import Actor, Admin
from tfa_server.app import Application, initialise, open_core
from tfa_server.clock import Clock, SystemClock
from tfa_server.config import PasswordHashing, Settings, default_key_path
from tfa_tui.api.client import TfaClient
from tfa_tui.api.errors import InvalidCredentials


@dataclass
class DemoAccount:
    username: str
    password: str
    description: str
    secret: str | None = None  # the demo's stand-in for a phone


@dataclass
class DemoAccounts:
    accounts: list[DemoAccount] = field(
        default_factory=lambda: [
            DemoAccount("admin", "admin-demo", "administrator, no 2FA yet"),
            DemoAccount("alice", "alice-demo", "2FA on, has failed attempts"),
            DemoAccount("bob", "bob-demo1", "no 2FA"),
        ]
    )
    now: Callable[[], float] = time.time  # the phone's clock; the server's in tests

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
        self.accounts = DemoAccounts(now=self.clock.now)
        self._port = port
        self._passwords = passwords or PasswordHashing()
        self._folder = Path(tempfile.mkdtemp(prefix="tfa-demo-"))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._app: Application | None = None
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
        self._app = Application(core)
        await self._app.start("127.0.0.1", self._port)
        url = f"http://127.0.0.1:{self._app.port}"
        admin = Admin(core)
        actor = Actor("cli:demo", None)
        for account in self.accounts.accounts:  # one by one: the audit log keeps this order
            await admin.create_user(
                actor, account.username, account.password, account.username == "admin"
            )
        await self._seed_alice(url)
        return url

    async def _seed_alice(self, url: str) -> None:
        """Alice has 2FA and a history with failed attempts, as a real account would."""
        alice = self.accounts.find("alice")
        assert alice is not None
        async with TfaClient(url, agent="tfa-demo-seed") as api:
            await api.login(alice.username, alice.password)
            secret = (await api.totp_setup()).secret
            # A code from the previous step (inside the window), so the code the demo panel
            # shows right now is still unused.
            await api.totp_confirm(pyotp.TOTP(secret).at(self.clock.now() - 30))
            await api.logout()
            for wrong in ("alice123", "Alice-demo"):
                with contextlib.suppress(InvalidCredentials):
                    await api.login(alice.username, wrong)
        alice.secret = secret

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
