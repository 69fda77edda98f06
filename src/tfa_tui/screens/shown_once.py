"""What the server shows exactly once (recovery codes, a service's key): copy it, save it to
a private file, tick that it is stored; every way out asks first until then."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual import on, work
from textual.binding import Binding
from textual.widgets import Button, Checkbox, Input

from tfa_tui.private_file import save_private
from tfa_tui.screens.base import TfaScreen
from tfa_tui.screens.confirm import ConfirmScreen


class ShownOnceScreen(TfaScreen):
    """The subclass composes `#copy`, `#save`, `#path` (hidden), `#stored` and `#done`, and
    says what it holds; this class does the rest."""

    BINDINGS = [
        Binding("ctrl+y", "copy", "Copy"),
        Binding("ctrl+s", "save", "Save to file"),
        Binding("escape", "leave", "Leave"),
    ]
    WHAT = "this"  # "these codes": the words of the notices and of the save question

    def __init__(self) -> None:
        super().__init__()
        self._leave_question: asyncio.Future[bool] | None = None

    def secret_text(self) -> str:
        """What is copied and saved."""
        raise NotImplementedError

    def default_path(self) -> Path:
        raise NotImplementedError

    def leave_question(self) -> ConfirmScreen:
        raise NotImplementedError

    def finish(self) -> None:
        """Done, or leaving after the question."""
        raise NotImplementedError

    def on_mount(self) -> None:
        self.query_one("#stored", Checkbox).focus()

    @on(Button.Pressed, "#copy")
    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.secret_text().rstrip("\n"))
        self.query_one("#stored").focus()
        self.notify(
            f"{self.WHAT.split()[-1].capitalize()} copied to the clipboard (if your"
            " terminal allows it)."
        )

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        field = self.query_one("#path", Input)
        if field.has_class("hidden"):
            field.remove_class("hidden")
            field.focus()
            self.notify("Check the file name, then press Enter to save.")
            return
        self.save(field.value)

    @on(Input.Submitted, "#path")
    def _save_submitted(self, event: Input.Submitted) -> None:
        self.save(event.value)

    @work(exclusive=True, exit_on_error=False, group="save", description="save")
    async def save(self, raw_path: str) -> None:
        if await save_private(self.app, raw_path, self.secret_text(), self.WHAT) is None:
            return
        self.query_one("#path").add_class("hidden")
        self.query_one("#stored").focus()

    @on(Checkbox.Changed, "#stored")
    def _stored(self, event: Checkbox.Changed) -> None:
        done = self.query_one("#done", Button)
        done.disabled = not event.value
        if event.value:
            done.focus()

    @on(Button.Pressed, "#done")
    def _done(self) -> None:
        self.finish()

    @work(exclusive=True, exit_on_error=False, group="leave")
    async def action_leave(self) -> None:
        if await self.may_leave():
            self.finish()

    async def may_leave(self) -> bool:
        """Asked before every way out (Escape here, the app's Quit, signing out). Asked twice
        at once (Escape, then Ctrl+Q), the question is put once and its answer serves both."""
        if self.query_one("#stored", Checkbox).value:
            return True
        if self._leave_question is None or self._leave_question.done():
            self._leave_question = self.app.push_screen(
                self.leave_question(), wait_for_dismiss=True
            )
        return await asyncio.shield(self._leave_question)  # one asker cancelled spares the rest
