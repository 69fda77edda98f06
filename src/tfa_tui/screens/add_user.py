"""Add a user: username, password twice and the administrator box; server errors inline."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from tfa_tui.api.errors import ApiError, Unauthorized
from tfa_tui.api.models import AdminUser
from tfa_tui.plain import plain
from tfa_tui.words import describe

if TYPE_CHECKING:
    from tfa_tui.app import TfaApp

MIN_PASSWORD = 8  # the server's rule (NIST SP 800-63B: length only), checked here to answer sooner
MAX_PASSWORD = 1024
SAME = "The two passwords are not the same."


def form_problem(username: str, password: str, repeat: str) -> str | None:
    """What to fix before asking the server, in the words shown under the form."""
    if not username:
        return "Enter a username."
    if len(password) < MIN_PASSWORD:
        return f"Passwords need at least {MIN_PASSWORD} characters."
    if password != repeat:
        return SAME
    return None


class AddUserScreen(ModalScreen[AdminUser | None]):
    """Returns the created user, or None when cancelled.

    One-row (compact) controls, so the form and a three-line error fit an 80x24 terminal.
    """

    CSS_PATH = "add_user.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    AUTO_FOCUS = "#username"

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("Add a user", id="dialog-title")
            with Horizontal(classes="field"):
                yield Label("Username")
                yield Input(placeholder="e.g. carol", id="username", max_length=64, compact=True)
            with Horizontal(classes="field"):
                yield Label("Password")
                yield Input(
                    placeholder=f"at least {MIN_PASSWORD} characters",
                    password=True,
                    id="password",
                    max_length=MAX_PASSWORD,
                    compact=True,
                )
            with Horizontal(classes="field"):
                yield Label("Repeat password")
                yield Input(password=True, id="repeat", max_length=MAX_PASSWORD, compact=True)
            yield Checkbox("Administrator (manages users and policy)", id="admin", compact=True)
            yield Static("", id="dialog-error")
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Add user", id="add", variant="primary", compact=True)

    @on(Input.Submitted, "#username")
    def _to_password(self) -> None:
        self.query_one("#password", Input).focus()

    @on(Input.Submitted, "#password")
    def _to_repeat(self) -> None:
        self.query_one("#repeat", Input).focus()

    @on(Input.Submitted, "#repeat")
    @on(Button.Pressed, "#add")
    def _submit(self) -> None:
        username = self.query_one("#username", Input).value.strip()
        password = self.query_one("#password", Input).value
        repeat = self.query_one("#repeat", Input).value
        problem = form_problem(username, password, repeat)
        self.query_one("#dialog-error", Static).update(problem or "")
        if problem is not None:  # the focus goes where the fix is
            field = "#username" if not username else "#password"
            self.query_one(field if problem != SAME else "#repeat", Input).focus()
            return
        self.create(username, password, self.query_one("#admin", Checkbox).value)

    @work(exclusive=True, exit_on_error=False, group="create-user")
    async def create(self, username: str, password: str, is_admin: bool) -> None:
        dialog = self.query_one("#dialog")
        dialog.loading = True
        try:
            user = await cast("TfaApp", self.app).api.create_user(
                username, password, is_admin=is_admin
            )
        except Unauthorized:
            self.dismiss(None)
            cast("TfaApp", self.app).session_ended()
            return
        except ApiError as exc:  # 409 taken, 400 invalid name: say so and let them fix it
            self.query_one("#dialog-error", Static).update(plain(describe(exc)))
            self.query_one("#username", Input).focus()
            return
        finally:
            dialog.loading = False
        self.dismiss(user)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        if self.query_one("#dialog").loading:
            return  # the user is being created: wait for the answer, so the list is right
        self.dismiss(None)
