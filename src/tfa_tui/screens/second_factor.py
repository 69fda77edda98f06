"""The second step of signing in: a 6-digit code, or a recovery code instead."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Button, Footer, Input, Static

from tfa_tui.api.errors import ChallengeExpired, TooManyAttempts, Unauthorized
from tfa_tui.plain import plain, template
from tfa_tui.screens.base import TfaScreen
from tfa_tui.widgets.code_input import CodeInput
from tfa_tui.words import describe

TOTP_PROMPT = "Enter the 6-digit code from your authenticator app."
RECOVERY_PROMPT = "Enter one of your recovery codes. Each works only once."


class SecondFactorScreen(TfaScreen):
    CSS_PATH = "second_factor.tcss"
    BINDINGS = [
        Binding("ctrl+r", "toggle_method", "Use a recovery code", id="toggle-method"),
        Binding("escape", "back", "Back to sign in"),
    ]
    AUTO_FOCUS = "#code"

    def __init__(self, username: str, *, remember: bool) -> None:
        super().__init__()
        self.username = username
        self.remember = remember
        self.recovery = False

    def compose(self) -> ComposeResult:
        card = Vertical(id="card")
        card.border_title = "Two-factor authentication"
        with card:
            yield Static(template("Signing in as [b]$name[/b].", name=self.username), id="who")
            yield Static(TOTP_PROMPT, id="prompt")
            yield CodeInput(id="code")
            yield Input(
                placeholder="XXXX-XXXX-XXXX",
                id="recovery",
                max_length=20,
                classes="hidden",
                compact=True,
            )
            yield Static("", id="error", classes="hidden")
            yield Button("Use a recovery code instead", id="toggle", compact=True)
        yield Footer()

    @on(Input.Changed, "#code")
    def _auto_submit(self) -> None:
        field = self.query_one("#code", CodeInput)
        if field.complete:
            self.submit(field.digits, recovery=False)

    @on(Input.Submitted, "#code")
    def _submit_code(self) -> None:
        field = self.query_one("#code", CodeInput)
        if not field.complete:
            self._show_error("The code has 6 digits.")
            return
        self.submit(field.digits, recovery=False)

    @on(Input.Submitted, "#recovery")
    def _submit_recovery(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.submit(event.value, recovery=True)

    @on(Button.Pressed, "#toggle")
    def action_toggle_method(self) -> None:
        self.recovery = not self.recovery
        code, recovery = self.query_one("#code", Input), self.query_one("#recovery", Input)
        code.set_class(self.recovery, "hidden")
        recovery.set_class(not self.recovery, "hidden")
        self.query_one("#prompt", Static).update(RECOVERY_PROMPT if self.recovery else TOTP_PROMPT)
        self.query_one("#toggle", Button).label = (
            "Use the authenticator app instead" if self.recovery else "Use a recovery code instead"
        )
        self._show_error("")
        (recovery if self.recovery else code).focus()

    def action_back(self) -> None:
        self.tfa.show_sign_in()

    def _show_error(self, text: str) -> None:
        error = self.query_one("#error", Static)
        error.update(plain(text))
        error.set_class(not text, "hidden")

    @work(exclusive=True, exit_on_error=False, group="second-factor")
    async def submit(self, code: str, *, recovery: bool) -> None:
        card = self.query_one("#card")
        field = self.query_one("#recovery" if recovery else "#code", Input)
        card.loading = True
        try:
            api = self.tfa.api
            result = await (api.login_recovery(code) if recovery else api.login_totp(code))
        except (ChallengeExpired, Unauthorized) as exc:
            self.tfa.show_sign_in(notice=describe(exc))
            return
        except TooManyAttempts as exc:
            self._show_error(describe(exc))
            return
        except Exception as exc:
            self._show_error(describe(exc))
            field.value = ""
            field.focus()
            return
        finally:
            card.loading = False
        if result.recovery_codes_left is not None:
            left = result.recovery_codes_left
            self.notify(
                f"Recovery code used. {left} left."
                + (" Generate new ones soon (Security tab)." if left <= 2 else ""),
                severity="warning" if left <= 2 else "information",
            )
        self.tfa.signed_in(result, remember=self.remember)
