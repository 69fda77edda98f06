"""The tfa terminal app: routes between sign-in, second factor, setup and home."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.notifications import Notify, SeverityLevel
from textual.screen import Screen

from tfa_protocol import types as wire  # its PasswordChangeRequired: the sign-in answer
from tfa_tui import exit_guard
from tfa_tui.api import Authenticated, Me, SignInResult, TotpRequired
from tfa_tui.api.client import TfaClient
from tfa_tui.api.errors import ApiError, EnrollmentRequired, PasswordChangeRequired, Unauthorized
from tfa_tui.commands import TfaCommands
from tfa_tui.plain import visible
from tfa_tui.session_store import SessionStore
from tfa_tui.words import describe

if TYPE_CHECKING:  # the demo's server code loads only for `tfa --demo`
    from tfa_tui.demo import DemoAccounts

LOGOUT_ON_QUIT = 2.0  # seconds: quitting never waits longer on the server than this
SIGNED_OUT = "You are signed out."
# A session that may only change a temporary password, met where the password is not at hand.
TEMPORARY_SET = "Your administrator set a temporary password. Sign in with it to choose a new one."
SIGNED_OUT_HERE = (
    "Signed out here; the server could not be told, so the session stays valid until it"
    " expires or you revoke it from Sessions."
)


@runtime_checkable
class GuardsLeaving(Protocol):
    """A screen holding what cannot be shown again (the recovery codes): before the app quits
    or signs out, it is asked, and may ask the person, whether leaving it is safe."""

    async def may_leave(self) -> bool: ...


class TfaApp(App[None]):
    TITLE = "tfa"
    SUB_TITLE = "two-factor authentication"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", priority=True, id="quit"),
        Binding("f2", "toggle_demo", "DEMO codes", id="demo"),
        # Not priority: `?` typed into a field is a character; F1 works from anywhere.
        Binding("f1,question_mark", "key_map", "Keys", show=False, id="key-map"),
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
        self.call_after_refresh(self._prepare_connection)
        if not self.demo:
            self.call_after_refresh(self._look_for_remembered_session)

    @work(exit_on_error=False, group="prepare")
    async def _prepare_connection(self) -> None:
        await self.api.prepare()

    @work(thread=True, exit_on_error=False, group="remembered")
    def _look_for_remembered_session(self) -> None:
        """The keyring is asked on a thread once the sign-in screen is up: finding its backend
        takes a while, and a desktop keyring may be slow to answer or wait on an unlock."""
        remembered = self.store.load(self.api.base_url)
        if remembered is not None:
            self.call_from_thread(self.resume, *remembered)

    def _exit_on_hangup(self) -> None:
        """A dropped SSH connection (SIGHUP), SIGTERM or an interrupt ends the app normally, so
        a live terminal is restored. The program's exit guard receives the signal on a thread
        of its own and ends the process anyway if this cannot finish (tfa_tui.exit_guard)."""
        guard = exit_guard.installed()
        if guard is not None:  # None: the app runs inside a test, not as the tfa program
            loop = asyncio.get_running_loop()
            guard.on_exit_request(lambda: self._exit_from_thread(loop))

    def _exit_from_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: the app has ended
            loop.call_soon_threadsafe(self.exit)

    async def action_quit(self) -> None:
        """Ctrl+Q and the palette's Quit: a person's own way out, which asks first where
        something would be lost. A hang-up or SIGTERM ends the app at once (see above)."""
        if not any(worker.group == "quit" and worker.is_running for worker in self.workers):
            self._quit()

    @work(exit_on_error=False, group="quit")
    async def _quit(self) -> None:
        if not await self._may_leave():
            return
        await self._end_unremembered_session()
        self.exit()

    async def _may_leave(self) -> bool:
        """Every screen on the stack that guards what it shows agrees, the top one first."""
        for screen in reversed(self.screen_stack):
            if isinstance(screen, GuardsLeaving) and not await screen.may_leave():
                return False
        return True

    async def _end_unremembered_session(self) -> None:
        """A session this computer does not remember can never be used again, yet would stay
        valid on the server until it expires (every start would add one): end it, without
        keeping the person waiting on a server that does not answer. A remembered session
        is kept, which is the point of remembering it."""
        if self.remembered or self.api.token is None:
            return
        with contextlib.suppress(ApiError, TimeoutError):
            async with asyncio.timeout(LOGOUT_ON_QUIT):
                await self.api.logout()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_demo":
            return self.demo is not None
        if action == "key_map":
            from tfa_tui.screens.key_map import KeyMapScreen

            return not isinstance(self.screen, KeyMapScreen)
        return True

    def action_key_map(self) -> None:
        """`?` and F1: every key of the screen on top, in a dialog."""
        from tfa_tui.screens.key_map import KeyMapScreen, key_map

        self.push_screen(KeyMapScreen(key_map(self.screen)))

    def action_toggle_demo(self) -> None:
        self.demo_visible = not self.demo_visible
        self.sync_demo_panel(self.screen)

    def sync_demo_panel(self, screen: Screen[Any]) -> None:
        """The DEMO panel follows the person from screen to screen while it is switched on."""
        if self.demo is None:  # nothing to show, and nothing of the demo to load
            return
        from tfa_tui.widgets.demo_panel import DemoPanel

        panels = screen.query(DemoPanel)
        if self.demo_visible and not panels:
            screen.mount(DemoPanel(self.demo))
        elif not self.demo_visible:
            panels.remove()

    @work(exclusive=True, exit_on_error=False, group="resume", description="resume")
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

    def signed_in(
        self, result: SignInResult, *, remember: bool, password: str | None = None
    ) -> None:
        """The one place a sign-in's answer leads on from, whichever step gave it (password,
        code, a new password). `password`: what was just typed on the sign-in screen, which a
        temporary password's screen sends as the current one; passed on, never kept here."""
        from tfa_tui.screens.new_password import NewPasswordScreen
        from tfa_tui.screens.second_factor import SecondFactorScreen
        from tfa_tui.screens.setup import SetupScreen

        self.username = result.user.username
        if isinstance(result, wire.PasswordChangeRequired):  # never remembered: it opens nothing
            if password is None:  # not from the sign-in screen: the password is not at hand
                self.sign_out(TEMPORARY_SET)
            else:
                self.switch_screen(NewPasswordScreen(self.username, password, remember=remember))
            return
        if isinstance(result, TotpRequired):
            self.switch_screen(SecondFactorScreen(result.user.username, remember=remember))
            return
        if remember:
            self._remember(result.token)
        if isinstance(result, Authenticated):
            self.show_home(result.user)
        else:  # enrollment_required: a session that may only set up 2FA
            self.switch_screen(SetupScreen(forced=True))

    def api_failed(self, error: BaseException) -> None:
        """One place for the failures of every worker on a signed-in screen: an ended session
        goes back to sign in, one the policy holds goes to the setup, one held to a new
        password is signed out (only the sign-in screen has the temporary password), the rest
        is said."""
        if isinstance(error, Unauthorized):
            self.session_ended()
        elif isinstance(error, EnrollmentRequired):
            self.enrollment_required()
        elif isinstance(error, PasswordChangeRequired):
            self.sign_out(TEMPORARY_SET)
        else:
            self.notify(describe(error), severity="error")

    def enrollment_required(self) -> None:
        """A session the policy now holds to the setup (2FA forced, the grace period over):
        straight into the setup, with the usual words, as at sign-in."""
        from tfa_tui.screens.setup import SetupScreen

        if not isinstance(self.screen, SetupScreen):
            self.switch_screen(SetupScreen(forced=True))

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

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notification is plain text, whatever the caller asks: most quote a username or
        the server's own words (F01)."""
        super().notify(
            visible(message), title=title, severity=severity, timeout=timeout, markup=False
        )

    def on_notify(self, event: Notify) -> None:
        """One problem, one notification: several calls failing the same way at once (the
        refresh of Home) would stack identical ones. One still on screen stands for them all."""
        new = event.notification
        if any(
            (shown.message, shown.title, shown.severity) == (new.message, new.title, new.severity)
            for shown in self._notifications
        ):
            event.prevent_default()  # App._on_notify, which would add it, is not called

    def show_home(self, me: Me) -> None:
        from tfa_tui.screens.home import HomeScreen

        self.switch_screen(HomeScreen(me))

    @work(exclusive=True, exit_on_error=False, group="home")
    async def go_home(self) -> None:
        try:
            me = await self.api.me()
        except ApiError as exc:
            self.api_failed(exc)
            return
        self.show_home(me)

    def show_sign_in(self, notice: str = "") -> None:
        from tfa_tui.screens.sign_in import SignInScreen

        self.api.token = None
        self.switch_screen(SignInScreen(notice, username=self.username))  # signs in again

    def session_ended(self, notice: str = "Your session has ended. Sign in again.") -> None:
        """Any call that finds the session gone lands here: back to sign in, with words."""
        self._forget()
        self.show_sign_in(notice)

    def _forget(self) -> None:
        if self.remembered:
            self.store.forget(self.api.base_url, self.username)
            self.remembered = False

    @work(exclusive=True, exit_on_error=False, group="sign-out", description="sign out")
    async def sign_out(self, notice: str = SIGNED_OUT) -> None:
        """Signed out here in any case; the words say whether the session ended on the server
        too (an answer that it had already ended counts: the client takes it as done)."""
        if not await self._may_leave():
            return
        try:
            await self.api.logout()
        except ApiError:  # not heard: the server still holds the session
            notice = SIGNED_OUT_HERE
        self._forget()
        self.show_sign_in(notice)

    async def on_unmount(self) -> None:
        await self.api.aclose()
