"""Admin > Users: every account, and what an administrator does to the selected one."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable

from tfa_tui.api import AdminUser
from tfa_tui.api.errors import ApiError, NotFound
from tfa_tui.plain import cell, visible
from tfa_tui.screens.confirm import ConfirmScreen
from tfa_tui.words import local_time, seconds_left

if TYPE_CHECKING:
    from tfa_tui.app import TfaApp


BUTTON_NAME = 20  # a name longer than this is cut short on a button (the question has it all)


def lock_words(user: AdminUser) -> str:
    """The lock as it is now: seconds left while it holds (counted down on screen), and no
    lock once it is over; failed attempts the server counted still show."""
    left = seconds_left(user.locked_until) if user.locked_until else 0
    if left:
        return f"locked, {left} s left"
    if user.failed_attempts:
        return f"{user.failed_attempts} failed"
    return ""


def state_cell(user: AdminUser) -> str:
    """What stands between the account and a plain sign-in, in words (no colour needed):
    disabled, a temporary password to replace, the lock or the failed attempts; "-" for none."""
    parts = [
        "disabled" if user.disabled_at is not None else "",
        "temporary password" if user.password_change_required else "",
        lock_words(user),
    ]
    return ", ".join(part for part in parts if part) or "-"


def user_row(user: AdminUser) -> tuple[str | Text, ...]:
    """Every account, the disabled ones too: the State column says which."""
    return (
        cell(user.username),
        "✔ admin" if user.is_admin else "",
        "[green]✔ on[/]" if user.totp_enabled else "[red]✘ off[/]",
        local_time(user.last_login.at) if user.last_login else "never",
        state_cell(user),
    )


def button_name(username: str) -> str:
    """A username for a button's label, which Textual reads as markup: short, and every `[`
    escaped (`textual.markup.escape` leaves `[$x]` and `[B]` to be read as markup)."""
    name = visible(username)
    if len(name) > BUTTON_NAME:
        name = name[: BUTTON_NAME - 1] + "…"
    return name.replace("[", "\\[")


class UsersSection(Vertical):
    """The Users tab of the Admin pane. Its keys are the pane's (they work from the section's
    tabs too); the pane passes them on here. Each button names its key: the footer has no room
    for them at 80 columns. What the server refuses (the last administrator, your own account)
    is said in its words, and the table stays as it was."""

    DEFAULT_CSS = """
    /* The second row of actions sits right under the first (the table keeps the height),
    in the same columns; a label that changes with the selected user moves nothing. */
    UsersSection #admin-user-actions { margin-top: 0; }
    UsersSection .admin-toolbar Button { width: 18; }
    """

    class Changed(Message):
        """An account was changed here: the audit log and the sign-in history have new
        entries."""

    def __init__(self) -> None:
        super().__init__(id="admin-users-section")
        self._users: dict[str, AdminUser] = {}

    @property
    def tfa(self) -> TfaApp:
        return cast("TfaApp", self.app)

    def compose(self) -> ComposeResult:
        with Horizontal(classes="admin-toolbar"):
            yield Button("Add user (+)", variant="primary", id="admin-add", compact=True)
            yield Button("Reset 2FA", variant="error", id="admin-reset", compact=True)
            yield Button("Unlock", variant="warning", id="admin-unlock", compact=True)
        with Horizontal(classes="admin-toolbar", id="admin-user-actions"):
            yield Button("Set password (w)", variant="warning", id="admin-password", compact=True)
            yield Button("Disable (d)", variant="warning", id="admin-disable", compact=True)
            yield Button("Make admin (m)", id="admin-admin", compact=True)
            yield Button("Delete (x)", variant="error", id="admin-delete", compact=True)
        yield DataTable(id="admin-users-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self._table().add_columns("Username", "Admin", "2FA", "Last sign-in", ("State", "state"))
        # Locks last seconds to minutes: counted down while anyone is locked.
        self._lock_timer = self.set_interval(1.0, self._count_down_locks, pause=True)

    def _table(self) -> DataTable[str | Text]:
        return cast("DataTable[str | Text]", self.query_one("#admin-users-table", DataTable))

    def failed(self, error: BaseException) -> None:
        self.tfa.api_failed(error)

    @work(exclusive=True, exit_on_error=False, group="users")
    async def load_users(self) -> None:
        table = self._table()
        table.loading = True
        try:
            users = await self.tfa.api.users()
        except ApiError as exc:
            self.failed(exc)
            return
        finally:
            table.loading = False
        chosen = self._selected_user(quiet=True)
        self._users = {user.username: user for user in users}
        table.clear()
        for user in users:
            table.add_row(*user_row(user), key=user.username)
        if chosen is not None and chosen.username in self._users:  # keep the cursor on them
            table.move_cursor(row=table.get_row_index(chosen.username))
        self._count_down_locks()
        self._show_choices()

    def _count_down_locks(self) -> None:
        locked = [user for user in self._users.values() if user.locked_until is not None]
        table = self._table()
        for user in locked:
            table.update_cell(user.username, "state", state_cell(user))
        still = any(seconds_left(user.locked_until) for user in locked if user.locked_until)
        if still:
            self._lock_timer.resume()
        else:
            self._lock_timer.pause()

    def _selected_user(self, *, quiet: bool = False) -> AdminUser | None:
        table = self._table()
        if table.row_count == 0:
            if not quiet:
                self.notify("There is no user to choose.", severity="warning")
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self._users.get(key or "")

    @on(DataTable.RowHighlighted, "#admin-users-table")
    def _show_choices(self) -> None:
        """The two buttons that switch a state say what they would do to the selected user."""
        user = self._selected_user(quiet=True)
        disabled = user is not None and user.disabled_at is not None
        is_admin = user is not None and user.is_admin
        self.query_one("#admin-disable", Button).label = "Enable (e)" if disabled else "Disable (d)"
        self.query_one("#admin-admin", Button).label = (
            "Remove admin (m)" if is_admin else "Make admin (m)"
        )

    def _refused(self, error: ApiError) -> None:
        """The server's words; the table stays as it was, unless the user is gone meanwhile."""
        self.failed(error)
        if isinstance(error, NotFound):
            self.load_users()

    def _changed(self, notice: str) -> None:
        self.notify(notice)
        self.load_users()
        self.post_message(self.Changed())

    @on(Button.Pressed, "#admin-add")
    @work(exclusive=True, exit_on_error=False, group="user-action")
    async def add_user(self) -> None:
        from tfa_tui.screens.add_user import AddUserScreen

        user = await self.app.push_screen_wait(AddUserScreen())
        if user is not None:
            self._changed(
                f"{user.username} is added" + (" as an administrator." if user.is_admin else ".")
            )

    @on(Button.Pressed, "#admin-reset")
    @work(exclusive=True, exit_on_error=False, group="user-action")
    async def reset_2fa(self) -> None:
        user = self._selected_user()
        if user is None:
            return
        if not user.totp_enabled:
            self.notify(f"{user.username} has no two-factor authentication to reset.")
            return
        myself = user.username == self.tfa.username
        text = (
            "This removes your own two-factor authentication and signs you out everywhere,"
            " here too."
            if myself
            else f"This removes {visible(user.username)}'s two-factor authentication and signs"
            " them out everywhere. Their recovery codes stop working too."
        )
        title = f"Reset 2FA of {visible(user.username)}?"
        if not await self.app.push_screen_wait(
            ConfirmScreen(title, text, confirm="Reset 2FA", danger=True)
        ):
            return
        try:
            await self.tfa.api.reset_2fa(user.username)
        except ApiError as exc:
            self.failed(exc)
            return
        if self.tfa.demo is not None:
            self.tfa.demo.remember_secret(user.username, None)
        if myself:
            self.tfa.session_ended("You reset your own two-factor authentication. Sign in again.")
            return
        self._changed(
            f"{user.username}'s two-factor authentication is removed; they are signed out."
        )

    @on(Button.Pressed, "#admin-unlock")
    @work(exclusive=True, exit_on_error=False, group="user-action")
    async def unlock(self) -> None:
        user = self._selected_user()
        if user is None:
            return
        if user.locked_until is None:
            self.notify(f"{user.username} is not locked.")
            return
        try:
            fresh = await self.tfa.api.unlock(user.username)
        except ApiError as exc:
            self.failed(exc)
            return
        self._changed(f"{fresh.username} is unlocked and can sign in again.")

    @on(Button.Pressed, "#admin-password")
    @work(exclusive=True, exit_on_error=False, group="user-action")
    async def reset_password(self) -> None:
        """The dialog sets the password; then it is shown once, to pass on."""
        from tfa_tui.screens.password_shown import PasswordShownScreen
        from tfa_tui.screens.reset_password import ResetPasswordScreen

        user = self._selected_user()
        if user is None:
            return
        if user.username == self.tfa.username:  # this would end this session too
            self.notify(
                "To change your own password, use Change password on the Security tab: it"
                " keeps you signed in here."
            )
            return
        done = await self.app.push_screen_wait(ResetPasswordScreen(user.username))
        if done is None:
            return
        self.app.push_screen(
            PasswordShownScreen(done.user.username, done.password, temporary=done.temporary)
        )
        self._changed(
            f"{user.username}'s password is set and their sessions ended"
            + ("; they must choose a new one at the next sign-in." if done.temporary else ".")
        )

    @on(Button.Pressed, "#admin-disable")
    def _disable_or_enable(self) -> None:
        user = self._selected_user()
        if user is None:
            return
        if user.disabled_at is None:
            self.disable()
        else:
            self.enable()

    @work(exclusive=True, exit_on_error=False, group="user-action")
    async def disable(self) -> None:
        user = self._selected_user()
        if user is None:
            return
        if user.disabled_at is not None:
            self.notify(f"{user.username} is already disabled.")
            return
        name = visible(user.username)
        if not await self.app.push_screen_wait(
            ConfirmScreen(
                f"Disable {name}?",
                f"{name}'s sessions end at once and {name} cannot sign in until an"
                " administrator enables the account again. The password, two-factor"
                " authentication and history stay as they are.",
                confirm="Disable",
                danger=True,
            )
        ):
            return
        try:
            await self.tfa.api.disable_user(user.username)
        except ApiError as exc:
            self._refused(exc)
            return
        self._changed(
            f"{user.username} is disabled: signed out everywhere, and cannot sign in until enabled."
        )

    @work(exclusive=True, exit_on_error=False, group="user-action")
    async def enable(self) -> None:
        user = self._selected_user()
        if user is None:
            return
        if user.disabled_at is None:
            self.notify(f"{user.username} is not disabled.")
            return
        name = visible(user.username)
        if not await self.app.push_screen_wait(
            ConfirmScreen(
                f"Enable {name}?",
                f"{name} can sign in again, with the same password and two-factor"
                " authentication as before.",
                confirm="Enable",
            )
        ):
            return
        try:
            await self.tfa.api.enable_user(user.username)
        except ApiError as exc:
            self._refused(exc)
            return
        self._changed(f"{user.username} is enabled and can sign in again.")

    @on(Button.Pressed, "#admin-admin")
    @work(exclusive=True, exit_on_error=False, group="user-action")
    async def admin_rights(self) -> None:
        """Grants the rights to a user, removes them from an administrator."""
        user = self._selected_user()
        if user is None:
            return
        name = visible(user.username)
        myself = user.username == self.tfa.username
        if not user.is_admin:
            question = ConfirmScreen(
                f"Make {name} an administrator?",
                f"{name} will manage users (add them, set their passwords, disable and delete"
                " them), services and the 2FA policy, and read everyone's sign-in history and"
                " the audit log.",
                confirm="Make administrator",
                danger=True,
            )
        elif myself:
            question = ConfirmScreen(
                "Remove your own administrator rights?",
                "You keep your account, but the Admin tab goes away at once. Only another"
                " administrator can give the rights back.",
                confirm="Remove my rights",
                danger=True,
            )
        else:
            question = ConfirmScreen(
                f"Remove {name}'s administrator rights?",
                f"{name} keeps the account and signs in as before, but can no longer manage"
                " users, services or the policy, nor read the others' history.",
                confirm="Remove rights",
                danger=True,
            )
        if not await self.app.push_screen_wait(question):
            return
        try:
            await self.tfa.api.set_admin(user.username, not user.is_admin)
        except ApiError as exc:
            self._refused(exc)
            return
        if myself and user.is_admin:
            self.notify("You are no longer an administrator.")
            self.tfa.go_home()  # Home again, without the Admin tab
            return
        self._changed(
            f"{user.username} is no longer an administrator."
            if user.is_admin
            else f"{user.username} is now an administrator."
        )

    @on(Button.Pressed, "#admin-delete")
    @work(exclusive=True, exit_on_error=False, group="user-action")
    async def delete(self) -> None:
        user = self._selected_user()
        if user is None:
            return
        name = visible(user.username)
        if not await self.app.push_screen_wait(
            ConfirmScreen(
                f"Delete {name}?",
                f"The account {name} goes for good, with its password, two-factor"
                f" authentication, recovery codes and sessions ({name} is signed out at once)."
                f"\n\n{name}'s sign-in history stays, for administrators: Sign-in history shows"
                f" it as {name} (deleted). The name can be used again; a new {name} does not"
                " see that history.",
                confirm=f"Delete {button_name(user.username)}",
                danger=True,
            )
        ):
            return
        try:
            await self.tfa.api.delete_user(user.username)
        except ApiError as exc:
            self._refused(exc)
            return
        if self.tfa.demo is not None:
            self.tfa.demo.remember_secret(user.username, None)
        self._changed(f"{user.username} is deleted; their sign-in history stays, marked (deleted).")
