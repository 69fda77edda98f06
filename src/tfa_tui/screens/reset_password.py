"""An administrator sets a user's password: a suggested one or a typed one, temporary unless
unticked. The server's refusals are said in the dialog, which stays open."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from tfa_protocol.types import RECOVERY_ALPHABET
from tfa_tui.api import AdminUser
from tfa_tui.api.errors import ApiError, Unauthorized
from tfa_tui.plain import plain, visible
from tfa_tui.screens.add_user import MAX_PASSWORD, MIN_PASSWORD
from tfa_tui.widgets.fields import Field
from tfa_tui.widgets.tick_box import TickBox
from tfa_tui.words import describe

if TYPE_CHECKING:
    from tfa_tui.app import TfaApp

# The recovery codes' alphabet (no 0/O, no 1/I/L), in lower case, which is quicker to type:
# 16 characters of 31 are about 79 bits, in four groups that are easy to read out.
SUGGESTION_ALPHABET = RECOVERY_ALPHABET.lower()
GROUPS, GROUP_LENGTH = 4, 4


def suggest_password() -> str:
    """A random password to pass on to the user, such as `k7qm-r4tw-hx9c-pf3n`."""
    return "-".join(
        "".join(secrets.choice(SUGGESTION_ALPHABET) for _ in range(GROUP_LENGTH))
        for _ in range(GROUPS)
    )


@dataclass(frozen=True)
class PasswordSet:
    """What the dialog did: the account as it is now, and the password to pass on (kept out of
    every repr, so it can never reach a log by way of this object)."""

    user: AdminUser
    password: str = field(repr=False)
    temporary: bool


class ResetPasswordScreen(ModalScreen[PasswordSet | None]):
    """Returns what was set, or None when cancelled. The password field is not masked: the
    administrator chooses it for someone else and passes it on, so reading it matters more
    here; it is shown again, once, after the change."""

    CSS_PATH = "reset_password.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    AUTO_FOCUS = "#password"

    def __init__(self, username: str) -> None:
        super().__init__()
        self.username = username

    def compose(self) -> ComposeResult:
        name = visible(self.username)
        with Vertical(id="dialog"):
            yield Static(f"Set a new password for {name}", id="dialog-title", markup=False)
            with Horizontal(classes="field"):
                yield Label("Password")
                yield Field(
                    suggest_password(),
                    placeholder=f"at least {MIN_PASSWORD} characters",
                    id="password",
                    max_length=MAX_PASSWORD,
                    compact=True,
                    tooltip="A suggestion: keep it, or type your own",
                )
                yield Button("Suggest another", id="suggest", compact=True)
            yield TickBox(
                "Temporary: must be changed at the next sign-in",
                value=True,
                id="temporary",
                compact=True,
            )
            yield Static(
                f"All of {name}'s sessions end at once; {name} signs in again with the new"
                " password. Their two-factor authentication stays as it is.",
                id="dialog-text",
                markup=False,
            )
            yield Static("", id="dialog-error")
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Set password", id="set", variant="warning", compact=True)

    @on(Button.Pressed, "#suggest")
    def _suggest(self) -> None:
        field = self.query_one("#password", Input)
        field.value = suggest_password()
        field.focus()
        self._say("")

    def _say(self, problem: str) -> None:
        self.query_one("#dialog-error", Static).update(plain(problem))

    @on(Input.Submitted, "#password")
    @on(Button.Pressed, "#set")
    def _submit(self) -> None:
        password = self.query_one("#password", Input).value
        if len(password) < MIN_PASSWORD:  # the server's rule, said before asking it
            self._say(f"Passwords need at least {MIN_PASSWORD} characters.")
            self.query_one("#password", Input).focus()
            return
        self._say("")
        self.send(password, self.query_one("#temporary", Checkbox).value)

    @work(exclusive=True, exit_on_error=False, group="reset-password", description="send")
    async def send(self, password: str, temporary: bool) -> None:
        dialog = self.query_one("#dialog")
        dialog.loading = True
        app = cast("TfaApp", self.app)
        try:
            user = await app.api.reset_password(self.username, password, temporary=temporary)
        except Unauthorized:
            self.dismiss(None)
            app.session_ended()
            return
        except ApiError as exc:  # a user deleted meanwhile, a password refused: say so here
            self._say(describe(exc))
            self.query_one("#password", Input).focus()
            return
        finally:
            dialog.loading = False
        self.dismiss(PasswordSet(user, password, temporary))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        if self.query_one("#dialog").loading:
            return  # the password is being set: wait for the answer, so the list is right
        self.dismiss(None)
