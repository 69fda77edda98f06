"""A new service's key, shown exactly once: copy it, save it to a private file, confirm."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Static

from tfa_tui.api import NewService
from tfa_tui.plain import plain, template, visible
from tfa_tui.screens.confirm import ConfirmScreen
from tfa_tui.screens.shown_once import ShownOnceScreen
from tfa_tui.widgets.fields import Field
from tfa_tui.widgets.tick_box import TickBox


class ServiceKeyScreen(ShownOnceScreen):
    """Pushed over Home after "Add service"; Done (or leaving, after a question) goes back.

    The server keeps only a hash of the key, so this screen is the one chance to take it.
    """

    CSS_PATH = "service_key.tcss"
    BINDINGS = [Binding("ctrl+y", "copy", "Copy key")]
    WHAT = "this key"

    def __init__(self, service: NewService) -> None:
        super().__init__()
        self.service = service

    def compose(self) -> ComposeResult:
        panel = Vertical(id="panel")
        panel.border_title = plain(f"Service {self.service.name} added")
        with panel:
            yield Static(
                template(
                    "$name sends this key to tfa to check its users' codes. Store it where the"
                    " service reads it (for the PAM module: a file only root can read)."
                    " [b]It will never be shown again:[/b] tfa keeps only a hash of it.",
                    name=self.service.name,
                ),
                id="warning",
            )
            yield Static(plain(self.service.key), id="key")
            with Horizontal(classes="buttons"):
                yield Button("Copy key", id="copy", compact=True)
                yield Button("Save to file", id="save", compact=True)
            yield Field(str(self.default_path()), id="path", classes="hidden", compact=True)
            yield TickBox("I have stored the key", id="stored", compact=True)
            with Horizontal(classes="buttons"):
                yield Button("Done", variant="primary", id="done", disabled=True, compact=True)
        yield Footer()

    def secret_text(self) -> str:
        """The key alone on its line: what the PAM module's key_file holds."""
        return self.service.key + "\n"

    def default_path(self) -> Path:
        return Path.home() / f"tfa-service-{visible(self.service.name)}.key"

    def finish(self) -> None:
        self.dismiss()

    def leave_question(self) -> ConfirmScreen:
        """Unstored, the key is lost and the service must be added again."""
        return ConfirmScreen(
            "Leave without storing the key?",
            f"The key of {visible(self.service.name)} will never be shown again."
            " Without it the service cannot use tfa: you would have to revoke it and"
            " add it again.",
            confirm="Leave anyway",
            cancel="Stay",
            danger=True,
        )
