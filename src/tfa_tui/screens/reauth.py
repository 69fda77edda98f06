"""Password plus a current code, asked before disconnecting 2FA or replacing recovery codes."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


@dataclass(frozen=True, slots=True)
class Reauthentication:
    password: str
    code: str

    def __repr__(self) -> str:
        return "Reauthentication(<hidden>)"


class ReauthScreen(ModalScreen[Reauthentication | None]):
    CSS_PATH = "reauth.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    AUTO_FOCUS = "#password"

    def __init__(self, title: str, text: str, confirm: str) -> None:
        super().__init__()
        self._title, self._text, self._confirm = title, text, confirm

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self._title, id="dialog-title")
            yield Static(self._text)
            yield Label("Password")
            yield Input(password=True, id="password", max_length=1024, compact=True)
            yield Label("Code from your app, or a recovery code")
            yield Input(
                placeholder="6 digits or XXXX-XXXX-XXXX", id="code", max_length=20, compact=True
            )
            yield Static("", id="dialog-error")
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button(self._confirm, id="confirm", variant="error", compact=True)

    @on(Input.Submitted, "#password")
    def _next(self) -> None:
        self.query_one("#code", Input).focus()

    @on(Input.Submitted, "#code")
    @on(Button.Pressed, "#confirm")
    def _submit(self) -> None:
        password = self.query_one("#password", Input).value
        code = self.query_one("#code", Input).value.strip()
        if not password or not code:
            self.query_one("#dialog-error", Static).update("Enter your password and a code.")
            return
        self.dismiss(Reauthentication(password, code))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
