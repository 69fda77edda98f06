"""The recovery codes, shown exactly once: copy, save to a private file, confirm storing them."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
from datetime import datetime
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Checkbox, Footer, Input, Static

from tfa_tui.plain import visible
from tfa_tui.screens.base import TfaScreen
from tfa_tui.screens.confirm import ConfirmScreen
from tfa_tui.widgets.fields import Field
from tfa_tui.widgets.tick_box import TickBox


def codes_text(codes: list[str], username: str, server: str) -> str:
    created = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    lines = [
        f"tfa recovery codes for {username} at {server}",
        f"Created {created}. Each code signs you in once; new codes void these.",
        "",
    ]
    return "\n".join([*lines, *codes]) + "\n"


def codes_columns(codes: list[str]) -> str:
    """Two numbered columns, so all ten fit on an 80x24 screen with room to spare."""
    half = (len(codes) + 1) // 2
    rows = []
    for index in range(half):
        left = f"{index + 1:2d}. {codes[index]}"
        right = index + half
        rows.append(f"{left}      {right + 1:2d}. {codes[right]}" if right < len(codes) else left)
    return "\n".join(rows)


def write_private(path: Path, text: str, *, overwrite: bool) -> None:
    """Write a new 0600 file beside `path`, then rename it into place.

    The codes never go into a file that existed before: not a symlink's target (a rename
    replaces the link itself), not a file others can read, not a second name of one. Without
    `overwrite`, anything at `path`, a dangling symlink included, is left alone
    (FileExistsError).
    """
    folder = path.parent
    temporary = folder / f".{path.name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temporary, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask may have taken the owner's bits too
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(temporary, path)
        else:
            _link_if_absent(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    with contextlib.suppress(OSError):  # the rename itself survives a crash
        directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _link_if_absent(source: Path, path: Path) -> None:
    """A second name for `source` at `path` unless something is there, in one step; where the
    file system has no hard links (FAT on a USB stick), a check and a rename."""
    try:
        os.link(source, path, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError:
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
        os.replace(source, path)


class RecoveryCodesScreen(TfaScreen):
    CSS_PATH = "recovery_codes.tcss"
    BINDINGS = [
        Binding("ctrl+y", "copy", "Copy all"),
        Binding("ctrl+s", "save", "Save to file"),
        Binding("escape", "leave", "Leave"),
    ]

    def __init__(self, codes: list[str], username: str, *, after_setup: bool = False) -> None:
        super().__init__()
        self.codes = codes
        self.username = username
        self.after_setup = after_setup
        self._leave_question: asyncio.Future[bool] | None = None

    def compose(self) -> ComposeResult:
        panel = Vertical(id="panel")
        panel.border_title = (
            "Step 4 of 4 - Save your recovery codes" if self.after_setup else "New recovery codes"
        )
        with panel:
            yield Static(
                "If you lose your phone, each code signs you in once. Store them somewhere"
                " safe now: [b]they will never be shown again.[/b]",
                id="warning",
            )
            shown = [visible(code) for code in self.codes]
            yield Static(codes_columns(shown), id="codes", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Copy all", id="copy", compact=True)
                yield Button("Save to file", id="save", compact=True)
            yield Field(str(self._default_path()), id="path", classes="hidden", compact=True)
            yield TickBox("I have stored these codes", id="stored", compact=True)
            with Horizontal(classes="buttons"):
                yield Button("Done", variant="primary", id="done", disabled=True, compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#stored", Checkbox).focus()

    def _text(self) -> str:
        return codes_text(self.codes, self.username, self.tfa.api.base_url)

    def _default_path(self) -> Path:
        return Path.home() / f"tfa-recovery-codes-{self.username}.txt"

    @on(Button.Pressed, "#copy")
    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self._text())
        self.query_one("#stored").focus()
        self.notify("Codes copied to the clipboard (if your terminal allows it).")

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

    @work(exclusive=True, exit_on_error=False, group="save")
    async def save(self, raw_path: str) -> None:
        path = await asyncio.to_thread(lambda: Path(raw_path.strip()).expanduser())
        overwrite = False
        if await asyncio.to_thread(os.path.lexists, path):  # a symlink, even dangling, counts
            overwrite = await self.app.push_screen_wait(
                ConfirmScreen(
                    "Replace the file?",
                    f"{visible(str(path))} already exists. Replace it with these codes?",
                    confirm="Replace",
                    danger=True,
                )
            )
            if not overwrite:
                return
        try:
            await asyncio.to_thread(write_private, path, self._text(), overwrite=overwrite)
        except OSError as exc:
            self.notify(f"Could not save to {path}: {exc.strerror}.", severity="error")
            return
        self.query_one("#path").add_class("hidden")
        self.query_one("#stored").focus()
        self.notify(f"Saved to {path} (readable only by you).")

    @on(Checkbox.Changed, "#stored")
    def _stored(self, event: Checkbox.Changed) -> None:
        done = self.query_one("#done", Button)
        done.disabled = not event.value
        if event.value:
            done.focus()

    @on(Button.Pressed, "#done")
    def _done(self) -> None:
        self.tfa.go_home()

    @work(exclusive=True, exit_on_error=False, group="leave")
    async def action_leave(self) -> None:
        if await self.may_leave():
            self.tfa.go_home()

    async def may_leave(self) -> bool:
        """Asked before every way out (Escape here, the app's Quit): the new codes are live and
        the old ones void, so leaving unstored loses them. Asked twice at once (Escape, then
        Ctrl+Q), the question is put once and its answer serves both."""
        if self.query_one("#stored", Checkbox).value:
            return True
        if self._leave_question is None or self._leave_question.done():
            self._leave_question = self.app.push_screen(
                ConfirmScreen(
                    "Leave without storing the codes?",
                    "These codes will never be shown again. Without them, losing your phone"
                    " locks you out.",
                    confirm="Leave anyway",
                    cancel="Stay",
                    danger=True,
                ),
                wait_for_dismiss=True,
            )
        return await asyncio.shield(self._leave_question)  # one asker cancelled spares the rest
