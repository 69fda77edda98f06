"""The password an administrator just set for a user, shown once to pass on: copy it, save it
to a private file, confirm."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Static

from tfa_tui.plain import plain, template, visible
from tfa_tui.screens.confirm import ConfirmScreen
from tfa_tui.screens.shown_once import ShownOnceScreen
from tfa_tui.widgets.fields import Field
from tfa_tui.widgets.tick_box import TickBox


class PasswordShownScreen(ShownOnceScreen):
    """Pushed over Home after the reset; Done (or leaving, after a question) goes back. The
    server keeps only a hash, and this app keeps the password nowhere else."""

    CSS_PATH = "password_shown.tcss"
    BINDINGS = [Binding("ctrl+y", "copy", "Copy password")]
    WHAT = "this password"

    def __init__(self, username: str, password: str, *, temporary: bool) -> None:
        super().__init__()
        self.username = username
        self._password = password
        self.temporary = temporary

    def compose(self) -> ComposeResult:
        panel = Vertical(id="panel")
        panel.border_title = plain(f"New password for {self.username}")
        then = (
            " $name must choose a new one at the next sign-in."
            if self.temporary
            else " It stays $name's password until $name changes it."
        )
        with panel:
            yield Static(
                template(
                    "Give this password to $name in a safe way (in person, by phone)."
                    " [b]It will not be shown again:[/b] tfa keeps only a hash of it." + then,
                    name=self.username,
                ),
                id="warning",
            )
            yield Static(plain(self._password), id="secret")
            with Horizontal(classes="buttons"):
                yield Button("Copy password", id="copy", compact=True)
                yield Button("Save to file", id="save", compact=True)
            yield Field(str(self.default_path()), id="path", classes="hidden", compact=True)
            yield TickBox("I have noted the password", id="stored", compact=True)
            with Horizontal(classes="buttons"):
                yield Button("Done", variant="primary", id="done", disabled=True, compact=True)
        yield Footer()

    def secret_text(self) -> str:
        return self._password + "\n"

    def default_path(self) -> Path:
        return Path.home() / f"tfa-password-{visible(self.username)}.txt"

    def finish(self) -> None:
        self.dismiss()

    def leave_question(self) -> ConfirmScreen:
        """Unnoted, the password is lost and the user cannot sign in."""
        name = visible(self.username)
        return ConfirmScreen(
            "Leave without noting the password?",
            f"The new password of {name} will never be shown again. Without it {name} cannot"
            " sign in: you would have to set another one.",
            confirm="Leave anyway",
            cancel="Stay",
            danger=True,
        )
