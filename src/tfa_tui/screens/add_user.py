"""Add a user: username, password twice and the administrator box; server errors inline."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from tfa_tui.api import AdminUser
from tfa_tui.api.errors import ApiError, Unauthorized
from tfa_tui.plain import plain
from tfa_tui.widgets.fields import Field, caught_up
from tfa_tui.widgets.tick_box import TickBox
from tfa_tui.words import describe

if TYPE_CHECKING:
    from tfa_tui.app import TfaApp

MIN_PASSWORD = 8  # the server's rule (NIST SP 800-63B: length only), checked here to answer sooner
MAX_PASSWORD = 1024
SAME = "The two passwords are not the same."


def form_problem(username: str, password: str, repeat: str) -> tuple[str, str] | None:
    """What to fix before asking the server, in the words shown under the form, and the id of
    the field where the fix is."""
    if not username:
        return "Enter a username.", "username"
    if len(password) < MIN_PASSWORD:
        return f"Passwords need at least {MIN_PASSWORD} characters.", "password"
    if password != repeat:
        return SAME, "repeat"
    return None


class AddUserScreen(ModalScreen[AdminUser | None]):
    """Returns the created user, or None when cancelled.

    One-row (compact) controls, so the form and a three-line error fit an 80x24 terminal.
    """

    CSS_PATH = "add_user.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        # Enter is the dialog's, and comes first: Textual hands keys to the focused field before
        # a Submitted handler could move the focus, so keys typed in one burst after Enter
        # landed in the old field; and the Administrator box, whose own Enter ticks it, never
        # sees Enter (Space still ticks it). On a button, Enter is the button's.
        Binding("enter", "enter", show=False, priority=True),
    ]
    AUTO_FOCUS = "#username"

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("Add a user", id="dialog-title")
            with Horizontal(classes="field"):
                yield Label("Username")
                yield Field(placeholder="e.g. carol", id="username", max_length=64, compact=True)
            with Horizontal(classes="field"):
                yield Label("Password")
                yield Field(
                    placeholder=f"at least {MIN_PASSWORD} characters",
                    password=True,
                    id="password",
                    max_length=MAX_PASSWORD,
                    compact=True,
                )
            with Horizontal(classes="field"):
                yield Label("Repeat password")
                yield Field(password=True, id="repeat", max_length=MAX_PASSWORD, compact=True)
            yield TickBox("Administrator (manages users and policy)", id="admin", compact=True)
            yield Static("", id="dialog-error")
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Add user", id="add", variant="primary", compact=True)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "enter":
            return isinstance(self.focused, (Input, Checkbox))
        return True

    async def action_enter(self) -> None:
        """From a filled field to the next, or to the server from the last field and the box.

        The app hands out no further key while this runs: first the field handles the keys it
        was already given (they wait in its queue), so its value is the one typed; then the
        focus moves at once, so the keys after Enter go to the next field.
        """
        if self.query_one("#dialog").loading:
            return  # the user is being created
        focused = self.focused
        if focused is not None:
            await caught_up(focused)
        following = {"username": "#password", "password": "#repeat"}
        if isinstance(focused, Input) and focused.id in following:
            problem = self._problem()
            if problem is not None and problem[1] == focused.id:
                self._say(problem[0])
                return
            self._say("")
            self.set_focus(self.query_one(following[focused.id], Input))
            return
        self._submit()

    def _problem(self) -> tuple[str, str] | None:
        return form_problem(
            self.query_one("#username", Input).value.strip(),
            self.query_one("#password", Input).value,
            self.query_one("#repeat", Input).value,
        )

    def _say(self, problem: str) -> None:
        self.query_one("#dialog-error", Static).update(problem)

    @on(Button.Pressed, "#add")
    def _submit(self) -> None:
        problem = self._problem()
        if problem is not None:  # said in the dialog; the focus goes where the fix is
            self._say(problem[0])
            self.set_focus(self.query_one(f"#{problem[1]}", Input))
            return
        self._say("")
        self.create(
            self.query_one("#username", Input).value.strip(),
            self.query_one("#password", Input).value,
            self.query_one("#admin", Checkbox).value,
        )

    @work(exclusive=True, exit_on_error=False, group="create-user", description="create")
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
