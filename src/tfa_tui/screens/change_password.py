"""Change password, from the Security tab: the current password, the new one twice, and a code
when the account has 2FA. The dialog sends it itself, so every refusal is said and retried here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Label, Static

from tfa_protocol.types import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, SHORT_PASSWORD
from tfa_tui.api.errors import (
    ApiError,
    CodeReused,
    InvalidCode,
    InvalidCredentials,
    InvalidRequest,
    TooManyAttempts,
    Unauthorized,
)
from tfa_tui.widgets.code_input import AnyCodeInput
from tfa_tui.widgets.fields import Field
from tfa_tui.widgets.message_line import MessageLine
from tfa_tui.words import describe

if TYPE_CHECKING:
    from tfa_tui.app import TfaApp

NOT_THE_SAME = "The two new passwords are not the same: type the new one twice again."
LONG_PASSWORD = f"Passwords can have at most {MAX_PASSWORD_LENGTH} characters."
UNCHANGED = "The new password must differ from the current one."  # the server's words
ENTER_CODE = "Enter a code from your authenticator app, or a recovery code."
LOCKED = "Too many failed attempts."


@dataclass(frozen=True, slots=True)
class Refusal:
    """What to fix, in words; the field to fix it in, and the fields to type again (emptied)."""

    words: str
    focus: str
    clear: tuple[str, ...] = ()


def new_password_problem(current: str, new: str, again: str) -> Refusal | None:
    """The server's rules for a new password (8 to 1024 characters, not the current one),
    checked before sending, and the two typings compared. Both new fields are typed again
    after any of these: nobody can see which of two hidden typings went wrong."""
    retype = ("new", "again")
    if not new:
        return Refusal("Enter the new password, then the same again.", "new")
    if len(new) < MIN_PASSWORD_LENGTH:
        return Refusal(SHORT_PASSWORD, "new", retype)
    if len(new) > MAX_PASSWORD_LENGTH:
        return Refusal(LONG_PASSWORD, "new", retype)
    if new != again:
        return Refusal(NOT_THE_SAME, "new", retype)
    if new == current:
        return Refusal(UNCHANGED, "new", retype)
    return None


def server_refusal(error: ApiError) -> Refusal:
    """A refusal from the server, in its words: which field to type again after it. A lock
    (429) or an unreachable server keeps everything, to send again as it is."""
    if isinstance(error, InvalidCredentials):
        return Refusal(describe(error), "current", ("current", "code"))
    if isinstance(error, (InvalidCode, CodeReused)):
        return Refusal(describe(error), "code", ("code",))
    if isinstance(error, InvalidRequest):  # too short, unchanged, a code missing: the new one
        return Refusal(describe(error), "new", ("new", "again"))
    return Refusal(describe(error), "")  # "": the last field, where Enter sends it again


@dataclass(frozen=True, slots=True)
class PasswordForm:
    """What both password forms (this dialog, the temporary password's screen) do with a
    refusal: the words in their message line, fields emptied, the cursor where to fix it."""

    screen: Screen[Any]
    message: str  # the MessageLine's id
    last: str  # the field where Enter sends the form

    def field(self, name: str) -> Input:
        """The field by id; "" (or one the form lacks) is the last one."""
        found = list(self.screen.query(f"#{name}").results(Input)) if name else []
        return found[0] if found else self.screen.query_one(f"#{self.last}", Input)

    def refuse(self, problem: Refusal) -> None:
        self.say(problem.words)
        for name in problem.clear:
            for widget in self.screen.query(f"#{name}").results(Input):
                widget.value = ""
        self.screen.set_focus(self.field(problem.focus))

    def count_down(self, seconds: int) -> None:
        """Locked: the seconds go down in the form, and sending waits until they are over."""
        field = self.field("")
        self.screen.set_focus(field)  # the loading cover took it
        self.line.count_down(seconds, LOCKED, lambda: self.screen.set_focus(field))

    @property
    def line(self) -> MessageLine:
        return self.screen.query_one(f"#{self.message}", MessageLine)

    def say(self, text: str) -> None:
        self.line.say(text)


class ChangePasswordScreen(ModalScreen[bool]):
    """Dismisses with True once the password is changed, False when cancelled or the session
    ended (then the app has gone back to sign in).

    One-row fields, so the form, the code and a two-line error fit an 80x24 terminal.
    """

    CSS_PATH = "change_password.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    AUTO_FOCUS = "#current"

    def __init__(self, *, with_code: bool) -> None:
        """`with_code`: the account has 2FA, so the server wants a code with the change."""
        super().__init__()
        self._with_code = with_code

    @property
    def tfa(self) -> TfaApp:
        return cast("TfaApp", self.app)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("Change password", id="dialog-title")
            yield Static(
                f"{MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters; a few unrelated"
                " words make a strong one. Your other sessions will be signed out.",
                id="dialog-text",
            )
            with Horizontal(classes="field"):
                yield Label("Current password")
                yield Field(
                    password=True,
                    id="current",
                    max_length=MAX_PASSWORD_LENGTH,
                    compact=True,
                    enter_moves_to="#new",
                    required=True,
                )
            with Horizontal(classes="field"):
                yield Label("New password")
                yield Field(
                    placeholder=f"at least {MIN_PASSWORD_LENGTH} characters",
                    password=True,
                    id="new",
                    max_length=MAX_PASSWORD_LENGTH,
                    compact=True,
                    enter_moves_to="#again",
                    required=True,
                )
            with Horizontal(classes="field"):
                yield Label("New password again")
                yield Field(
                    password=True,
                    id="again",
                    max_length=MAX_PASSWORD_LENGTH,
                    compact=True,
                    enter_moves_to="#code" if self._with_code else None,
                    required=True,
                )
            if self._with_code:
                with Horizontal(classes="field"):
                    yield Label("Code")
                    yield AnyCodeInput(id="code")
            yield MessageLine(id="dialog-error")
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Change password", id="confirm", variant="primary", compact=True)

    def on_mount(self) -> None:
        if self._with_code:
            self.tfa.sync_demo_panel(self)  # the demo's phone, beside the code field

    def _value(self, field: str) -> str:
        return self.query_one(f"#{field}", Input).value

    @on(Input.Submitted, "#again")
    def _again_entered(self) -> None:
        if not self._with_code:  # with a code, Enter has moved on to the code field
            self._submit()

    @on(Input.Submitted, "#code")
    @on(Button.Pressed, "#confirm")
    def _submit(self) -> None:
        if self.query_one("#dialog").loading or self._form.line.counting:
            return  # already sent, or locked: the answer, or the countdown, says when
        current, new, again = self._value("current"), self._value("new"), self._value("again")
        code = self._value("code").strip() if self._with_code else None
        if not current:
            problem: Refusal | None = Refusal("Enter your current password.", "current")
        else:
            problem = new_password_problem(current, new, again)
        if problem is None and code == "":
            problem = Refusal(ENTER_CODE, "code")
        if problem is not None:
            self._form.refuse(problem)
            return
        self._form.say("")
        self.change(current, new, code)

    # A fixed description: Textual's default would quote the arguments, the passwords.
    @work(exclusive=True, exit_on_error=False, group="change-password", description="change")
    async def change(self, current: str, new: str, code: str | None) -> None:
        dialog = self.query_one("#dialog")
        dialog.loading = True
        try:
            await self.tfa.api.change_password(current, new, code)
        except Unauthorized as exc:
            self.dismiss(False)
            self.tfa.session_ended(describe(exc))
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
            dialog.loading = False
        self.dismiss(True)

    @property
    def _form(self) -> PasswordForm:
        return PasswordForm(self, "dialog-error", "code" if self._with_code else "again")

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)
