"""Register a relying service: its name and a description; the server's refusals inline."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from tfa_tui.api import NewService
from tfa_tui.api.errors import ApiError, Unauthorized
from tfa_tui.plain import plain
from tfa_tui.widgets.fields import Field
from tfa_tui.words import describe

if TYPE_CHECKING:
    from tfa_tui.app import TfaApp

MAX_DESCRIPTION = 256  # the server's limit


class AddServiceScreen(ModalScreen[NewService | None]):
    """Returns the new service with its key, or None when cancelled. The name's rule is the
    server's to judge (the same as for usernames): its refusal is shown here, and the dialog
    stays open to fix the name."""

    CSS_PATH = "add_service.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    AUTO_FOCUS = "#name"

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("Add a service", id="dialog-title")
            yield Static(
                "A program that asks tfa for its users' codes, such as sshd or sudo through"
                " the PAM module. It gets a key, shown once.",
                id="dialog-text",
            )
            with Horizontal(classes="field"):
                yield Label("Name")
                yield Field(
                    placeholder="e.g. sshd-bastion",
                    id="name",
                    max_length=64,
                    enter_moves_to="#description",
                    required=True,
                    compact=True,
                )
            with Horizontal(classes="field"):
                yield Label("Description")
                yield Field(
                    placeholder="optional, e.g. SSH on the bastion host",
                    id="description",
                    max_length=MAX_DESCRIPTION,
                    compact=True,
                )
            yield Static("", id="dialog-error")
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel", compact=True)
                yield Button("Add service", id="add", variant="primary", compact=True)

    def _say(self, problem: str) -> None:
        self.query_one("#dialog-error", Static).update(plain(problem))

    @on(Input.Submitted, "#name")
    def _name_submitted(self, event: Input.Submitted) -> None:
        self._say("" if event.value.strip() else "Enter a name for the service.")

    @on(Input.Submitted, "#description")
    @on(Button.Pressed, "#add")
    def _submit(self) -> None:
        if self.query_one("#dialog").loading:
            return  # already asked
        name = self.query_one("#name", Input).value.strip()
        if not name:
            self._say("Enter a name for the service.")
            self.set_focus(self.query_one("#name", Input))
            return
        self._say("")
        self.create(name, self.query_one("#description", Input).value.strip())

    @work(exclusive=True, exit_on_error=False, group="create-service", description="create")
    async def create(self, name: str, description: str) -> None:
        app = cast("TfaApp", self.app)
        dialog = self.query_one("#dialog")
        dialog.loading = True
        try:
            service = await app.api.add_service(name, description)
        except Unauthorized:
            self.dismiss(None)
            app.session_ended()
            return
        except ApiError as exc:  # 409 taken, 400 the name's rule: say so and let them fix it
            self._say(describe(exc))
            self.set_focus(self.query_one("#name", Input))
            return
        finally:
            dialog.loading = False
        self.dismiss(service)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        if self.query_one("#dialog").loading:
            return  # being created: wait for the answer, or its key would be lost unseen
        self.dismiss(None)
