"""What every full screen of the app shares: access to the app, and the DEMO panel; and what
the dialogs that are only read share: a Close button (Escape too)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import ModalScreen, Screen
from textual.widgets import Button

if TYPE_CHECKING:
    from tfa_tui.app import TfaApp


class TfaScreen(Screen[None]):
    @property
    def tfa(self) -> TfaApp:
        return cast("TfaApp", self.app)

    def on_screen_resume(self) -> None:
        self.tfa.sync_demo_panel(self)


class ReadingDialog(ModalScreen[None]):
    """A dialog to read, then close: Close has the focus, so Enter or Escape closes it."""

    BINDINGS = [Binding("escape", "close", "Close")]

    def close_button(self) -> ComposeResult:
        with Horizontal(id="dialog-buttons"):
            yield Button("Close", id="close", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)
