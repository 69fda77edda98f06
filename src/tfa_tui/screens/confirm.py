"""A yes/no question as a modal, answered by keyboard or mouse."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    """The title and text are shown as plain text (no markup): they quote usernames and paths."""

    CSS_PATH = "confirm.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        title: str,
        text: str,
        *,
        confirm: str = "OK",
        cancel: str = "Cancel",
        danger: bool = False,
    ) -> None:
        super().__init__()
        self._title, self._text = title, text
        self._confirm, self._cancel, self._danger = confirm, cancel, danger

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self._title, id="dialog-title", markup=False)
            yield Static(self._text, id="dialog-text", markup=False)
            with Horizontal(id="dialog-buttons"):
                yield Button(self._cancel, id="cancel", compact=True)
                yield Button(
                    self._confirm,
                    id="confirm",
                    variant="error" if self._danger else "primary",
                    compact=True,
                )

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#confirm")
    def _yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)
