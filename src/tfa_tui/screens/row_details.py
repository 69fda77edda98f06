"""One row of a table, every field in full: what Enter opens on a FitTable's row."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class RowDetailsScreen(ModalScreen[None]):
    """The values are Text (the server's words stay literal); the labels are ours."""

    CSS_PATH = "row_details.tcss"
    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, title: str, fields: Mapping[str, Text]) -> None:
        super().__init__()
        self._title = title
        self._fields = dict(fields)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Content(self._title), id="dialog-title")
            with VerticalScroll(id="fields", can_focus=False):
                for label, value in self._fields.items():
                    with Horizontal(classes="field"):
                        yield Static(Content(label), classes="field-label")
                        yield Static(value, classes="field-value")
            with Horizontal(id="dialog-buttons"):
                yield Button("Close", id="close", variant="primary", compact=True)

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)
