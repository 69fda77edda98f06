"""The recovery codes, shown exactly once: copy, save to a private file, confirm storing them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Static

from tfa_tui.plain import visible
from tfa_tui.screens.confirm import ConfirmScreen
from tfa_tui.screens.shown_once import ShownOnceScreen
from tfa_tui.widgets.fields import Field
from tfa_tui.widgets.tick_box import TickBox


def codes_text(codes: list[str], username: str, server: str) -> str:
    created = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    lines = [
        f"tfa recovery codes for {username} at {server}",
        f"Created {created}. Each code signs you in once; new codes void these.",
        "",
    ]
    return "\n".join([*lines, *codes]) + "\n"


def codes_columns(codes: list[str]) -> str:
    """Two numbered columns, so all ten fit on an 80x24 screen with room to spare."""
    half = (len(codes) + 1) // 2
    rows = []
    for index in range(half):
        left = f"{index + 1:2d}. {codes[index]}"
        right = index + half
        rows.append(f"{left}      {right + 1:2d}. {codes[right]}" if right < len(codes) else left)
    return "\n".join(rows)


class RecoveryCodesScreen(ShownOnceScreen):
    CSS_PATH = "recovery_codes.tcss"
    BINDINGS = [Binding("ctrl+y", "copy", "Copy all")]
    WHAT = "these codes"

    def __init__(self, codes: list[str], username: str, *, after_setup: bool = False) -> None:
        super().__init__()
        self.codes = codes
        self.username = username
        self.after_setup = after_setup

    def compose(self) -> ComposeResult:
        panel = Vertical(id="panel")
        panel.border_title = (
            "Step 4 of 4 - Save your recovery codes" if self.after_setup else "New recovery codes"
        )
        with panel:
            yield Static(
                "If you lose your phone, each code signs you in once. Store them somewhere"
                " safe now: [b]they will never be shown again.[/b]",
                id="warning",
            )
            shown = [visible(code) for code in self.codes]
            yield Static(codes_columns(shown), id="codes", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Copy all", id="copy", compact=True)
                yield Button("Save to file", id="save", compact=True)
            yield Field(str(self.default_path()), id="path", classes="hidden", compact=True)
            yield TickBox("I have stored these codes", id="stored", compact=True)
            with Horizontal(classes="buttons"):
                yield Button("Done", variant="primary", id="done", disabled=True, compact=True)
        yield Footer()

    def secret_text(self) -> str:
        return codes_text(self.codes, self.username, self.tfa.api.base_url)

    def default_path(self) -> Path:
        return Path.home() / f"tfa-recovery-codes-{self.username}.txt"

    def finish(self) -> None:
        self.tfa.go_home()

    def leave_question(self) -> ConfirmScreen:
        """The new codes are live and the old ones void, so leaving unstored loses them."""
        return ConfirmScreen(
            "Leave without storing the codes?",
            "These codes will never be shown again. Without them, losing your phone locks you out.",
            confirm="Leave anyway",
            cancel="Stay",
            danger=True,
        )
