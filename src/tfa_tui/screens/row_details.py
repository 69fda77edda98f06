"""One row of a table, every field in full: what Enter opens on a FitTable's row."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Static

from tfa_tui.screens.base import ReadingDialog


class RowDetailsScreen(ReadingDialog):
    """The values are Text (the server's words stay literal); the labels are ours."""

    CSS_PATH = "row_details.tcss"

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
            yield from self.close_button()
