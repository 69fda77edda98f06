"""Sign in: server, username, masked password, remember me."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widgets import Button, Checkbox, Footer, Input, Label, Static

from tfa_tui.api.client import sends_in_clear
from tfa_tui.api.errors import TooManyAttempts, Unreachable
from tfa_tui.plain import plain, template
from tfa_tui.screens.base import TfaScreen
from tfa_tui.words import describe


class SignInScreen(TfaScreen):
    CSS_PATH = "sign_in.tcss"
    BINDINGS = [Binding("escape", "clear", "Clear", show=False)]
    AUTO_FOCUS = "#username"

    def __init__(self, notice: str = "") -> None:
        super().__init__()
        self._notice = notice
        self._retry_seconds = 0

    def compose(self) -> ComposeResult:
        card = Vertical(id="card")
        card.border_title = "Sign in to tfa"
        with card:
            with Horizontal(classes="row"):
                yield Label("Server", classes="field-label")
                yield Label(plain(self.tfa.api.base_url), id="server")
            if sends_in_clear(self.tfa.api.base_url):  # only with --insecure-http
                yield Static(
                    "⚠ Not encrypted (http://): your password crosses the network where"
                    " others on the way can read it.",
                    id="insecure",
                )
            yield Static(plain(self._notice), id="notice", classes="" if self._notice else "hidden")
            with Horizontal(classes="row"):
                yield Label("Username", classes="field-label")
                yield Input(placeholder="username", id="username", max_length=64, compact=True)
            with Horizontal(classes="row"):
                yield Label("Password", classes="field-label")
                yield Input(
                    placeholder="password",
                    password=True,
                    id="password",
                    max_length=1024,
                    compact=True,
                )
            yield Checkbox(
                "Remember me on this computer",
                id="remember",
                disabled=self.tfa.demo is not None,
                compact=True,
                tooltip="Keeps the session in your system keyring, never in a plain file.",
            )
            yield Static("", id="error", classes="hidden")
            with Horizontal(id="actions"):
                yield Button("Sign in", variant="primary", id="sign-in", compact=True)
                yield Button("Retry", id="retry", classes="hidden", compact=True)
        if self.tfa.demo is not None:
            lines = [
                template(
                    "[b]$name[/b] $password $about",
                    name=f"{account.username:<6}",
                    password=f"{account.password:<11}",
                    about=account.description,
                )
                for account in self.tfa.demo.accounts
            ]
            demo = Static(Content("\n").join(lines), id="demo-accounts")
            demo.border_title = "Demo accounts: username, password"
            yield demo
        yield Footer()

    @on(Input.Submitted, "#username")
    def _to_password(self) -> None:
        self.query_one("#password", Input).focus()

    @on(Input.Submitted, "#password")
    @on(Button.Pressed, "#sign-in")
    @on(Button.Pressed, "#retry")
    def _submit(self) -> None:
        username = self.query_one("#username", Input).value.strip()
        password = self.query_one("#password", Input).value
        if not username or not password:
            self.show_error("Enter your username and password.")
            self.query_one("#username" if not username else "#password", Input).focus()
            return
        if self._retry_seconds > 0:
            return
        self.sign_in(username, password, self.query_one("#remember", Checkbox).value)

    def action_clear(self) -> None:
        self.query_one("#password", Input).value = ""

    def show_error(self, text: str, *, retry: bool = False) -> None:
        error = self.query_one("#error", Static)
        error.update(plain(text))
        error.set_class(not text, "hidden")
        self.query_one("#retry").set_class(not retry, "hidden")

    @work(exclusive=True, exit_on_error=False, group="sign-in")
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
        self.tfa.signed_in(result, remember=remember)

    def _count_down(self, seconds: int) -> None:
        self._retry_seconds = seconds
        button = self.query_one("#sign-in", Button)
        button.disabled = True

        def tick() -> None:
            self._retry_seconds -= 1
            if self._retry_seconds <= 0:
                timer.stop()
                button.disabled = False
                self.show_error("You can try again now.")
                return
            self.show_error(self._throttle_text())

        self.show_error(self._throttle_text())
        timer = self.set_interval(1.0, tick)

    def _throttle_text(self) -> str:
        return (
            "Too many failed attempts for this account or from this address."
            f" Try again in {self._retry_seconds} s."
        )
