"""The tfa terminal app: routes between sign-in, second factor, setup and home."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.screen import Screen

from tfa_tui.api.client import TfaClient
from tfa_tui.api.errors import ApiError, Unauthorized
from tfa_tui.api.models import Me, SignInResult
from tfa_tui.commands import TfaCommands
from tfa_tui.demo import DemoAccounts
from tfa_tui.session_store import SessionStore
from tfa_tui.words import describe


class TfaApp(App[None]):
    TITLE = "tfa"
    SUB_TITLE = "two-factor authentication"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True, id="quit"),
        Binding("f2", "toggle_demo", "DEMO codes", id="demo"),
        # Textual's Tab is a screen binding, reached only after the focused field has had the
        # key; keys typed in one burst (a password manager's auto-type) would land in the old
        # field. As a priority binding, focus moves before the next key is delivered.
        Binding("tab", "focus_next", show=False, priority=True),
        Binding("shift+tab", "focus_previous", show=False, priority=True),
    ]
    COMMANDS = App.COMMANDS | {TfaCommands}

    def __init__(
        self,
        api: TfaClient,
        *,
        store: SessionStore | None = None,
        demo: DemoAccounts | None = None,
    ) -> None:
        super().__init__()
        self.api = api
        self.store = store or SessionStore()
        self.demo = demo
        self.username = ""
        self.remembered = False
        self._told_no_keyring = False
        self.demo_visible = demo is not None

    def on_mount(self) -> None:
        from tfa_tui.screens.sign_in import SignInScreen

        self._exit_on_hangup()

        self.push_screen(SignInScreen())
        remembered = None if self.demo else self.store.load(self.api.base_url)
        if remembered is not None:
            self.resume(*remembered)

    def _exit_on_hangup(self) -> None:
        """A dropped SSH connection (SIGHUP) or SIGTERM ends the app normally, so the demo's
        throw-away database is removed and a real terminal is restored."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            for signum in (signal.SIGHUP, signal.SIGTERM):
                loop.add_signal_handler(signum, self.exit)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_demo":
            return self.demo is not None
        return True

    def action_toggle_demo(self) -> None:
        self.demo_visible = not self.demo_visible
        self.sync_demo_panel(self.screen)

    def sync_demo_panel(self, screen: Screen[Any]) -> None:
        """The DEMO panel follows the person from screen to screen while it is switched on."""
        from tfa_tui.widgets.demo_panel import DemoPanel

        panels = screen.query(DemoPanel)
        if self.demo is not None and self.demo_visible and not panels:
            screen.mount(DemoPanel(self.demo))
        elif not self.demo_visible:
            panels.remove()

    @work(exclusive=True, exit_on_error=False, group="resume")
    async def resume(self, username: str, token: str) -> None:
        """Continue a remembered session if the server still accepts it."""
        self.api.token = token
        try:
            me = await self.api.me()
        except ApiError:
            self.api.token = None
            self.store.forget(self.api.base_url, username)
            return
        self.username, self.remembered = me.username, True
        self.show_home(me)

    def signed_in(self, result: SignInResult, *, remember: bool) -> None:
        from tfa_tui.screens.second_factor import SecondFactorScreen
        from tfa_tui.screens.setup import SetupScreen

        self.username = result.user.username
        if result.status == "totp_required":
            self.switch_screen(SecondFactorScreen(result.user.username, remember=remember))
            return
        if remember:
            self._remember(result.token)
        if result.status == "enrollment_required":
            self.switch_screen(SetupScreen(forced=True))
            return
        self.show_home(result.user)

    def _remember(self, token: str) -> None:
        if self.store.save(self.api.base_url, self.username, token):
            self.remembered = True
        elif not self._told_no_keyring:
            self._told_no_keyring = True
            self.notify(
                "This computer has no keyring, so tfa cannot remember your session."
                " You will sign in again next time.",
                severity="warning",
            )

    def show_home(self, me: Me) -> None:
        from tfa_tui.screens.home import HomeScreen

        self.switch_screen(HomeScreen(me))

    @work(exclusive=True, exit_on_error=False, group="home")
    async def go_home(self) -> None:
        try:
            me = await self.api.me()
        except Unauthorized:
            self.session_ended()
            return
        except ApiError as exc:
            self.notify(describe(exc), severity="error")
            return
        self.show_home(me)

    def show_sign_in(self, notice: str = "") -> None:
        from tfa_tui.screens.sign_in import SignInScreen

        self.api.token = None
        self.switch_screen(SignInScreen(notice))

    def session_ended(self, notice: str = "Your session has ended. Sign in again.") -> None:
        """Any call that finds the session gone lands here: back to sign in, with words."""
        self._forget()
        self.show_sign_in(notice)

    def _forget(self) -> None:
        if self.remembered:
            self.store.forget(self.api.base_url, self.username)
            self.remembered = False

    @work(exclusive=True, exit_on_error=False, group="sign-out")
    async def sign_out(self) -> None:
        with contextlib.suppress(ApiError):  # the session is gone either way
            await self.api.logout()
        self._forget()
        self.show_sign_in("You are signed out.")

    async def on_unmount(self) -> None:
        await self.api.aclose()
