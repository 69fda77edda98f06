"""A checkbox that is empty when unticked, in every terminal."""

from __future__ import annotations

from typing import Any

from textual.widgets import Checkbox


class TickBox(Checkbox):
    """Textual draws the same `X` ticked or not, in another colour only: with NO_COLOR, in a
    screen reader or in a copy of the screen an unticked box reads as ticked. Here the X is
    there only when ticked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.BUTTON_INNER = self._inner(self.value)

    @staticmethod
    def _inner(value: bool) -> str:
        return "X" if value else " "

    def watch_value(self) -> None:
        self.BUTTON_INNER = self._inner(self.value)
        super().watch_value()
