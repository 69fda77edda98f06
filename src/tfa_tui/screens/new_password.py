"""Choose a new password: a sign-in with a temporary password an administrator set stops here
until the person picks their own; then the sign-in goes on (second factor, set-up or Home)."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Footer, Input, Label, Static

from tfa_protocol.types import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from tfa_tui.api.errors import (
    ApiError,
    ChallengeExpired,
    InvalidCredentials,
    TooManyAttempts,
    Unauthorized,
)
from tfa_tui.plain import template
from tfa_tui.screens.base import TfaScreen
from tfa_tui.screens.change_password import (
    PasswordForm,
    Refusal,
    new_password_problem,
    server_refusal,
)
from tfa_tui.widgets.fields import Field
from tfa_tui.widgets.message_line import MessageLine
from tfa_tui.words import describe

EXPLAIN = (
    "Your administrator set a temporary password for this account. Choose a new one that only"
    f" you know before you go on: {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters;"
    " a few unrelated words make a strong one."
)
EXPIRED = "The time to choose a new password ran out. Sign in again with the temporary password."


class NewPasswordScreen(TfaScreen):
    """Holds the temporary password the person just typed on the sign-in screen, which the
    server wants as the current one; nothing else keeps it, and it goes with this screen."""

    CSS_PATH = "new_password.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel and sign out")]
    AUTO_FOCUS = "#new"

    def __init__(self, username: str, temporary: str, *, remember: bool) -> None:
        super().__init__()
        self.username = username
        self._temporary = temporary
        self.remember = remember

    def __repr__(self) -> str:
        return f"NewPasswordScreen({self.username!r}, <hidden>)"

    def compose(self) -> ComposeResult:
        card = Vertical(id="card")
        card.border_title = "Choose a new password"
        with card:
            yield Static(
                template(
                    "Signing in as [b]$name[/b] with a temporary password.", name=self.username
                ),
                id="who",
            )
            yield Static(EXPLAIN, id="explain")
            with Horizontal(classes="row"):
                yield Label("New password", classes="field-label")
                yield Field(
                    placeholder=f"at least {MIN_PASSWORD_LENGTH} characters",
                    password=True,
                    id="new",
                    max_length=MAX_PASSWORD_LENGTH,
                    compact=True,
                    enter_moves_to="#again",
                    required=True,
                )
            with Horizontal(classes="row"):
                yield Label("Again", classes="field-label")
                yield Field(password=True, id="again", max_length=MAX_PASSWORD_LENGTH, compact=True)
            yield MessageLine(id="error")
            with Horizontal(id="actions"):
                yield Button("Save and continue", variant="primary", id="save", compact=True)
                yield Button("Cancel and sign out", id="cancel", compact=True)
        yield Footer()

    @on(Input.Submitted, "#again")
    @on(Button.Pressed, "#save")
    def _submit(self) -> None:
        if self.query_one("#card").loading or self._form.line.counting:
            return  # already sent, or locked: the answer, or the countdown, says when
        new, again = self._value("new"), self._value("again")
        problem = new_password_problem(self._temporary, new, again)
        if problem is not None:
            self._form.refuse(problem)
            return
        self._form.say("")
        self.change(new)

    def _value(self, field: str) -> str:
        return self.query_one(f"#{field}", Input).value

    # A fixed description: Textual's default would quote the argument, the password.
    @work(exclusive=True, exit_on_error=False, group="new-password", description="change")
    async def change(self, new: str) -> None:
        card = self.query_one("#card")
        card.loading = True
        try:
            result = await self.tfa.api.change_password(self._temporary, new)
        except (Unauthorized, ChallengeExpired):
            self.tfa.show_sign_in(EXPIRED)
            return
        except InvalidCredentials as exc:
            # The temporary password changed meanwhile (another reset): only signing in again
            # with the new one can go on.
            self.tfa.show_sign_in(describe(exc))
            return
        except TooManyAttempts as exc:
            self._form.count_down(exc.retry_after)
            return
        except ApiError as exc:
            self._form.refuse(server_refusal(exc))
            return
        except Exception as exc:  # never a traceback on the screen
            self._form.refuse(Refusal(describe(exc), ""))
            return
        finally:
            card.loading = False
        self._temporary = ""
        if result is None:  # not what the server answers a temporary password's session
            self.tfa.show_sign_in("Your password is changed. Sign in with the new one.")
            return
        self.notify("Your password is changed.")
        self.tfa.signed_in(result, remember=self.remember)

    @property
    def _form(self) -> PasswordForm:
        return PasswordForm(self, "error", "again")

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Signs out: the restricted session ends on the server too, and the sign-in screen
        comes back, where the temporary password still works."""
        self._temporary = ""
        self.query_one("#card").loading = True  # nothing more to send; the sign-out shows
        self.tfa.sign_out()
