"""The second step of signing in: a 6-digit code, or a recovery code instead."""

from __future__ import annotations

from msgspec import UNSET
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Button, Footer, Input, Static

from tfa_tui.api import Authenticated
from tfa_tui.api.errors import ChallengeExpired, TooManyAttempts, Unauthorized
from tfa_tui.plain import template
from tfa_tui.screens.base import TfaScreen
from tfa_tui.widgets.code_input import CodeInput, RecoveryCodeInput, is_complete
from tfa_tui.widgets.message_line import MessageLine
from tfa_tui.words import describe

TOTP_PROMPT = "Enter the 6-digit code from your authenticator app."
RECOVERY_PROMPT = "Enter one of your recovery codes. Each works only once."
LOCKED = "Too many failed attempts."


class SecondFactorScreen(TfaScreen):
    CSS_PATH = "second_factor.tcss"
    BINDINGS = [
        # Priority: the app switches fields before it hands on the keys typed after Ctrl+R.
        Binding(
            "ctrl+r", "toggle_method", "Use a recovery code", id="toggle-method", priority=True
        ),
        Binding("escape", "back", "Back to sign in"),
    ]
    AUTO_FOCUS = "#code"

    def __init__(self, username: str, *, remember: bool) -> None:
        super().__init__()
        self.username = username
        self.remember = remember
        self.recovery = False
        self._sending = False

    def compose(self) -> ComposeResult:
        card = Vertical(id="card")
        card.border_title = "Two-factor authentication"
        with card:
            yield Static(template("Signing in as [b]$name[/b].", name=self.username), id="who")
            yield Static(TOTP_PROMPT, id="prompt")
            yield CodeInput(id="code")
            yield RecoveryCodeInput(id="recovery", classes="hidden")
            yield MessageLine(id="error")
            yield Button("Use a recovery code instead", id="toggle", compact=True)
        yield Footer()

    @on(Input.Changed, "#code")
    def _auto_submit(self, event: Input.Changed) -> None:
        # The value this change made, not the field's value now: in a burst the field is
        # ahead, and every change before the sixth digit would send the code again.
        if is_complete(event.value):
            self._send(event.value, recovery=False)

    @on(Input.Submitted, "#code")
    def _submit_code(self, event: Input.Submitted) -> None:
        if self.query_one("#error", MessageLine).counting:
            return  # it says when
        if not is_complete(event.value):
            self._show_error("The code has 6 digits.")
            return
        self._send(event.value, recovery=False)

    @on(Input.Submitted, "#recovery")
    def _submit_recovery(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self._send(event.value, recovery=True)

    def _send(self, code: str, *, recovery: bool) -> None:
        """Once: an Enter right behind the sixth digit must not send the code a second time
        (the second request would cancel the first); nothing while a lock-out counts down."""
        if self._sending or self.query_one("#error", MessageLine).counting:
            return
        self._sending = True
        self.submit(code if recovery else code.replace(" ", ""), recovery=recovery)

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
        if not self.query_one("#error", MessageLine).counting:
            self._show_error("")
        self.set_focus(recovery if self.recovery else code)  # before the next key arrives

    def action_back(self) -> None:
        self.tfa.show_sign_in()

    def _show_error(self, text: str) -> None:
        self.query_one("#error", MessageLine).say(text)

    def _count_down(self, seconds: int) -> None:
        """As on the sign-in screen: the seconds go down, then the focus is back in the field."""

        def over() -> None:
            self.set_focus(self.query_one("#recovery" if self.recovery else "#code"))

        over()  # meanwhile too: the loading cover took the focus
        self.query_one("#error", MessageLine).count_down(seconds, LOCKED, over)

    @work(exclusive=True, exit_on_error=False, group="second-factor", description="submit")
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
            self._count_down(exc.retry_after)
            return
        except Exception as exc:
            self._show_error(describe(exc))
            field.value = ""
            field.focus()
            return
        finally:
            card.loading = False
            self._sending = False
        if isinstance(result, Authenticated) and result.recovery_codes_left is not UNSET:
            left = result.recovery_codes_left
            self.notify(
                f"Recovery code used. {left} left."
                + (" Generate new ones soon (Security tab)." if left <= 2 else ""),
                severity="warning" if left <= 2 else "information",
            )
        self.tfa.signed_in(result, remember=self.remember)
