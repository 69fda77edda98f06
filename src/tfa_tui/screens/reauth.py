"""Password plus a current code, asked before disconnecting 2FA or replacing recovery codes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from tfa_tui.api.errors import ApiError, InvalidCredentials, Unauthorized
from tfa_tui.plain import plain
from tfa_tui.widgets.code_input import AnyCodeInput
from tfa_tui.widgets.fields import Field
from tfa_tui.words import describe

if TYPE_CHECKING:
    from tfa_tui.app import TfaApp

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Reauthentication:
    password: str
    code: str

    def __repr__(self) -> str:
        return "Reauthentication(<hidden>)"


class ReauthScreen(ModalScreen[T | None], Generic[T]):
    """Asks, then runs `attempt` itself: a wrong password or code is said here and retried here.

    Dismisses with what `attempt` returned, or None when cancelled or the session ended.
    """

    CSS_PATH = "reauth.tcss"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    AUTO_FOCUS = "#password"

    def __init__(
        self,
        title: str,
        text: str,
        confirm: str,
        attempt: Callable[[Reauthentication], Awaitable[T]],
        *,
        with_code: bool = True,
    ) -> None:
        super().__init__()
        self._title, self._text, self._confirm = title, text, confirm
        self._attempt = attempt
        self._with_code = with_code  # False: the password alone (connecting an app)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self._title, id="dialog-title")
            yield Static(self._text)
            yield Label("Password")
            yield Field(
                password=True,
                id="password",
                max_length=1024,
                compact=True,
                enter_moves_to="#code" if self._with_code else None,
            )
            if self._with_code:
                yield Label("Code from your app, or a recovery code")
                yield AnyCodeInput(id="code")
            yield Static("", id="dialog-error")
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button(self._confirm, id="confirm", variant="error", compact=True)

    def on_mount(self) -> None:
        cast("TfaApp", self.app).sync_demo_panel(self)  # the demo's phone, beside the code field

    @on(Input.Submitted, "#password")
    def _password_entered(self) -> None:
        if not self._with_code:  # with a code, Enter has moved to the code field (a Field)
            self._submit()

    @on(Input.Submitted, "#code")
    @on(Button.Pressed, "#confirm")
    def _submit(self) -> None:
        password = self.query_one("#password", Input).value
        code = self.query_one("#code", Input).value.strip() if self._with_code else ""
        if not password or (self._with_code and not code):
            self._error(
                "Enter your password and a code." if self._with_code else "Enter your password."
            )
            return
        self.run_attempt(Reauthentication(password, code))

    @work(exclusive=True, exit_on_error=False, group="reauth", description="run attempt")
    async def run_attempt(self, answer: Reauthentication) -> None:
        dialog = self.query_one("#dialog")
        dialog.loading = True
        try:
            result = await self._attempt(answer)
        except Unauthorized as exc:
            self.dismiss(None)
            cast("TfaApp", self.app).session_ended(describe(exc))
            return
        except ApiError as exc:
            self._error(describe(exc))
            if isinstance(exc, InvalidCredentials) or not self._with_code:
                field = self.query_one("#password", Input)
                field.value = ""
            else:
                field = self.query_one("#code", Input)
            if self._with_code:
                self.query_one("#code", Input).value = ""
            field.focus()
            return
        finally:
            dialog.loading = False
        self.dismiss(result)

    def _error(self, text: str) -> None:
        self.query_one("#dialog-error", Static).update(plain(text))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
