"""The key map (`?` or F1): every key of the screen it was opened on, the ones the footer has
no room for included, grouped by where they act."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from tfa_tui.screens.base import ReadingDialog

# Textual's own bindings that come without words.
UNNAMED = {"focus_next": "Next field", "focus_previous": "Previous field"}
FOCUSED, SCREEN, EVERYWHERE = "Where the focus is", "On this screen", "Everywhere"


@dataclass
class KeyEntry:
    keys: list[str]  # as the footer writes them: "^o", "f1", "?"
    description: str
    enabled: bool  # False: the key exists here but does nothing right now


def key_map(screen: Screen[Any]) -> dict[str, list[KeyEntry]]:
    """The active bindings of `screen` (its focused widget's, the screen's and the app's), by
    where they act; one entry per action, with each of its keys."""
    app = screen.app
    focused = screen.focused
    # The screen's own keys first: the focused widget's are mostly Textual's (cursor, paging).
    groups: dict[str, dict[tuple[str, str], KeyEntry]] = {SCREEN: {}, FOCUSED: {}, EVERYWHERE: {}}
    for active in screen.active_bindings.values():
        binding = active.binding
        action = binding.action.removeprefix("app.").removeprefix("screen.")
        description = binding.description or UNNAMED.get(action, "")
        if not description:
            continue
        node = active.node
        group = EVERYWHERE if node is app else FOCUSED if node is focused else SCREEN
        entry = groups[group].setdefault(
            (binding.action, description), KeyEntry([], description, active.enabled)
        )
        display = app.get_key_display(binding)
        if display not in entry.keys:
            entry.keys.append(display)
    return {group: list(entries.values()) for group, entries in groups.items() if entries}


class KeyMapScreen(ReadingDialog):
    CSS_PATH = "key_map.tcss"

    def __init__(self, keys: dict[str, list[KeyEntry]]) -> None:
        super().__init__()
        self._keys = keys

    def compose(self) -> ComposeResult:
        width = max(
            (len(", ".join(entry.keys)) for entries in self._keys.values() for entry in entries),
            default=4,
        )
        with Vertical(id="dialog"):
            yield Static("Keys on this screen", id="dialog-title")
            with VerticalScroll(id="keys"):
                for group, entries in self._keys.items():
                    yield Static(group, classes="group")
                    lines = Text()
                    for entry in entries:
                        lines.append(f"{', '.join(entry.keys):<{width}}", style="bold")
                        lines.append("  ")
                        lines.append(
                            entry.description + ("" if entry.enabled else " (not now)"),
                            style="" if entry.enabled else "dim",
                        )
                        lines.append("\n")
                    lines.rstrip()
                    yield Static(lines, classes="entries")
            yield from self.close_button()
