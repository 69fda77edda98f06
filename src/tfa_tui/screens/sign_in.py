"""Sign in: server, username, masked password, remember me."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Footer, Input, Label, Static

from tfa_tui.api.client import normalise_server_url, sends_in_clear, server_problem
from tfa_tui.api.errors import TooManyAttempts, Unreachable
from tfa_tui.plain import plain
from tfa_tui.screens.base import TfaScreen
from tfa_tui.widgets.fields import Field
from tfa_tui.widgets.message_line import MessageLine
from tfa_tui.widgets.tick_box import TickBox
from tfa_tui.words import describe

INSECURE = (
    "⚠ Not encrypted (http://): your password crosses the network where"
    " others on the way can read it."
)
LOCKED = "Too many failed attempts for this account or from this address."


class SignInScreen(TfaScreen):
    CSS_PATH = "sign_in.tcss"
    BINDINGS = [Binding("escape", "clear", "Clear", show=False)]
    AUTO_FOCUS = "#username"

    def __init__(self, notice: str = "", *, username: str = "") -> None:
        """`username`: the name to sign in again with (after Escape from the code screen or a
        session that ended), filled in, with the focus on the password."""
        super().__init__()
        self._notice = notice
        self._username = username
        self._server_refused = False  # the error line says why the Server field was refused

    def compose(self) -> ComposeResult:
        card = Vertical(id="card")
        card.border_title = "Sign in to tfa"
        with card:
            with Horizontal(classes="row", id="server-row"):
                yield Label("Server", classes="field-label")
                yield Field(
                    value=self.tfa.api.base_url,
                    placeholder="https://tfa.example.org",
                    id="server",
                    max_length=2048,
                    compact=True,
                    enter_moves_to="#username",
                )
            yield Static(plain(self._notice), id="notice", classes="" if self._notice else "hidden")
            with Horizontal(classes="row"):
                yield Label("Username", classes="field-label")
                yield Field(
                    value=self._username,
                    placeholder="username",
                    id="username",
                    max_length=64,
                    compact=True,
                    enter_moves_to="#password",
                )
            with Horizontal(classes="row"):
                yield Label("Password", classes="field-label")
                yield Field(
                    placeholder="password",
                    password=True,
                    id="password",
                    max_length=1024,
                    compact=True,
                )
            yield TickBox(
                "Remember me on this computer",
                id="remember",
                disabled=self.tfa.demo is not None,
                compact=True,
                tooltip="Keeps the session in your system keyring, never in a plain file.",
            )
            yield MessageLine(id="error")
            with Horizontal(id="actions"):
                yield Button("Sign in", variant="primary", id="sign-in", compact=True)
                yield Button("Retry", id="retry", classes="hidden", compact=True)
        if self.tfa.demo is not None:
            from tfa_tui.widgets.demo_accounts import DemoAccountsBox

            yield DemoAccountsBox(self.tfa.demo)
        yield Footer()

    def on_mount(self) -> None:
        self._warn_if_in_clear()
        # Now, so the screen's AUTO_FOCUS finds the focus taken. The field may be gone
        # already when the app quits while this screen is still being mounted.
        password = self.query("#password")
        if self._username and password:
            self.set_focus(password.first())

    @on(Input.Submitted, "#server")
    def _server_entered(self) -> None:
        self._use_server()

    def _use_server(self) -> bool:
        """Point the client at the address in the Server field, checked by the command line's
        rules; False, with the reason on the screen and the focus back there, when it cannot
        be used."""
        field = self.query_one("#server", Input)
        api = self.tfa.api
        url = normalise_server_url(field.value)
        if not field.value.strip():
            problem: str | None = "Enter the server address."
        else:
            reason = server_problem(url, insecure_http=api.insecure_http)
            problem = None if reason is None else f"That server address cannot be used: {reason}."
        if problem is not None:
            self.show_error(problem)
            self._server_refused = True
            field.focus()
            return False
        if url != api.base_url:
            api.use_server(url)
        if field.value != url:
            field.value = url
        self._warn_if_in_clear()
        if self._server_refused:
            self._server_refused = False
            self.show_error("")
        return True

    def _warn_if_in_clear(self) -> None:
        """The warning follows the address: shown exactly while it is plain http:// to another
        machine (only reachable with --insecure-http)."""
        warning = self.query("#insecure")
        if sends_in_clear(self.tfa.api.base_url) and not warning:
            self.query_one("#card").mount(Static(INSECURE, id="insecure"), after="#server-row")
        elif not sends_in_clear(self.tfa.api.base_url):
            warning.remove()

    @on(Input.Submitted, "#password")
    @on(Button.Pressed, "#sign-in")
    @on(Button.Pressed, "#retry")
    def _submit(self) -> None:
        if self.query_one("#error", MessageLine).counting:
            return  # locked: the countdown says when
        if not self._use_server():
            return
        username = self.query_one("#username", Input).value.strip()
        password = self.query_one("#password", Input).value
        if not username or not password:
            self.show_error("Enter your username and password.")
            self.query_one("#username" if not username else "#password", Input).focus()
            return
        self.sign_in(username, password, self.query_one("#remember", Checkbox).value)

    def action_clear(self) -> None:
        self.query_one("#password", Input).value = ""

    def show_error(self, text: str, *, retry: bool = False) -> None:
        """What the latest attempt came to; it replaces the notice the screen opened with."""
        self.query_one("#error", MessageLine).say(text)
        self.query_one("#retry").set_class(not retry, "hidden")
        if text:
            self.query_one("#notice").add_class("hidden")

    @work(exclusive=True, exit_on_error=False, group="sign-in", description="sign in")
    async def sign_in(self, username: str, password: str, remember: bool) -> None:
        card = self.query_one("#card")
        card.loading = True
        self.show_error("")
        try:
            result = await self.tfa.api.login(username, password)
        except TooManyAttempts as exc:
            self._count_down(exc.retry_after)
            return
        except Unreachable as exc:
            self.show_error(
                f"{exc.message} Check the address and that the server runs.", retry=True
            )
            return
        except Exception as exc:
            self.show_error(describe(exc))
            self.query_one("#password", Input).value = ""
            self.query_one("#password", Input).focus()
            return
        finally:
            card.loading = False
        self.query_one("#password", Input).value = ""
        # A temporary password is the current one on the "Choose a new password" screen.
        self.tfa.signed_in(result, remember=remember, password=password)

    def _count_down(self, seconds: int) -> None:
        button = self.query_one("#sign-in", Button)
        button.disabled = True
        self.query_one("#notice").add_class("hidden")

        password = self.query_one("#password")
        self.set_focus(password)  # the sign-in's loading cover took it

        def over() -> None:
            button.disabled = False
            self.set_focus(password)

        self.query_one("#error", MessageLine).count_down(seconds, LOCKED, over)
