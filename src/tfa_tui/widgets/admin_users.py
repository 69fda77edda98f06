"""Admin > Users: the accounts a page at a time, narrowed by name and state on the server, and
what an administrator does to the selected one; Enter opens its detail."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, cast

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Checkbox, DataTable, Input, Static

from tfa_protocol.types import UserList
from tfa_tui.api import AdminUser
from tfa_tui.api.errors import ApiError, NotFound
from tfa_tui.plain import cell
from tfa_tui.user_actions import Outcome, UserActions, button_name, rights_label, toggle_label
from tfa_tui.widgets.fields import Field
from tfa_tui.widgets.fit_table import Cell, FitColumn, FitTable, when
from tfa_tui.widgets.tick_box import TickBox
from tfa_tui.words import seconds_left

if TYPE_CHECKING:
    from tfa_tui.app import TfaApp

__all__ = ["UsersSection", "button_name", "lock_words", "state_cell", "user_row"]

PAGE = 50  # accounts asked for at a time
TYPING_PAUSE = 0.3  # seconds without a key in the name filter before the server is asked


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


def two_factor_cell(user: AdminUser) -> str:
    return "[green]✔ on[/]" if user.totp_enabled else "[red]✘ off[/]"


def last_sign_in_cell(user: AdminUser) -> Cell:
    return when(user.last_login.at) if user.last_login else "never"


@dataclass(frozen=True)
class Column:
    """A column of the Users table, and how it sorts: `order` gives each account its place in
    the column's first direction (`first` says that direction in words)."""

    key: str
    label: str
    show: Callable[[AdminUser], Cell]
    order: Callable[[AdminUser], tuple[object, ...]]
    first: str
    priority: int = 0  # as in FitColumn: 0 always shown, higher when the width allows
    min_width: int | None = None

    def fit(self, label: str) -> FitColumn:
        return FitColumn(self.key, label, priority=self.priority, min_width=self.min_width)


def _by_name(user: AdminUser) -> tuple[object, ...]:
    return (user.username.casefold(), user.username)


def _by_last_sign_in(user: AdminUser) -> tuple[object, ...]:
    """Newest first; never signed in last."""
    at = user.last_login.at.timestamp() if user.last_login else 0.0
    return (user.last_login is None, -at, *_by_name(user))


# Name, 2FA, last sign-in and state are what an administrator judges an account by, and stay
# at 80 columns; the rest shows when the terminal is wider.
COLUMNS = (
    Column("name", "Username", lambda u: cell(u.username), _by_name, "A-Z", min_width=10),
    Column(
        "admin",
        "Admin",
        lambda u: "✔ admin" if u.is_admin else "",
        lambda u: (not u.is_admin, *_by_name(u)),
        "administrators first",
        priority=1,
    ),
    Column("2fa", "2FA", two_factor_cell, lambda u: (u.totp_enabled, *_by_name(u)), "off first"),
    Column("last", "Last sign-in", last_sign_in_cell, _by_last_sign_in, "newest first"),
    Column(
        "state",
        "State",
        state_cell,
        lambda u: (state_cell(u) == "-", *_by_name(u)),
        "those with one first",
        min_width=12,
    ),
    Column(
        "codes",
        "Codes left",
        lambda u: str(u.recovery_codes_left) if u.totp_enabled else "-",
        lambda u: (not u.totp_enabled, u.recovery_codes_left, *_by_name(u)),
        "fewest first",
        priority=2,
    ),
    Column(
        "created",
        "Created",
        lambda u: when(u.created_at),
        lambda u: (-u.created_at.timestamp(), *_by_name(u)),
        "newest first",
        priority=3,
    ),
)
BY_KEY = {column.key: column for column in COLUMNS}


def user_row(user: AdminUser) -> dict[str, Cell]:
    """Every account, the disabled ones too: the State column says which."""
    return {column.key: column.show(user) for column in COLUMNS}


@dataclass(frozen=True)
class Sort:
    column: str = "name"
    reverse: bool = False

    def words(self) -> str:
        column = BY_KEY[self.column]
        return f"{column.label}, {column.first}" + (" reversed" if self.reverse else "")


@dataclass(frozen=True)
class Narrowing:
    """What the server is asked for: a part of the name and the ticked states."""

    q: str | None = None
    admin: bool | None = None
    two_factor: bool | None = None
    locked: bool | None = None
    disabled: bool | None = None


class UsersSection(Vertical):
    """The Users tab of the Admin pane. The actions' keys are the pane's (they work from the
    section's tabs too); the pane passes them on here. Each button names its key: the footer
    has no room for them at 80 columns.

    The server answers a page at a time, narrowed by name and state (10^5 accounts stay
    quick); the next page comes with `o`, the button, or when the cursor reaches the last
    row. A sort orders the rows loaded so far, which the count line says."""

    DEFAULT_CSS = """
    /* The second row of actions sits right under the first, in the same columns; a label that
    changes with the selected user moves nothing. */
    UsersSection .admin-toolbar { margin-top: 0; }
    UsersSection #admin-users-narrow { margin-top: 1; }
    UsersSection .admin-toolbar Button { width: 18; }
    UsersSection #admin-users-filter { width: 22; }
    UsersSection .admin-toolbar > Checkbox { margin-right: 1; }
    UsersSection #admin-users-count { height: 1; color: $text-muted; }
    UsersSection #admin-users-table { margin-top: 0; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "find", "Find a name", id="admin-users-find"),
        Binding("o", "more", "Load more", show=False, id="admin-users-more"),
        Binding("z", "sort", "Sort", show=False, id="admin-users-sort"),
        Binding("Z", "sort_reverse", "Reverse sort", show=False, id="admin-users-reverse"),
    ]

    class Changed(Message):
        """An account was changed here: the audit log and the sign-in history have new
        entries."""

    def __init__(self) -> None:
        super().__init__(id="admin-users-section")
        self._users: dict[str, AdminUser] = {}  # loaded so far, in the server's (name) order
        self._next_after: str | None = None
        self._asked = Narrowing()
        self.sort = Sort()
        self.page_size = PAGE

    @property
    def tfa(self) -> TfaApp:
        return cast("TfaApp", self.app)

    @property
    def actions(self) -> UserActions:
        return UserActions(self.tfa)

    def compose(self) -> ComposeResult:
        with Horizontal(classes="admin-toolbar", id="admin-users-narrow"):
            yield Field(
                placeholder="Name contains…",
                id="admin-users-filter",
                max_length=64,
                compact=True,
                tooltip="Narrows the list as you type; Enter goes to the table",
            )
            yield TickBox("Admins", id="admin-users-admins", classes="users-toggle", compact=True)
            yield TickBox("No 2FA", id="admin-users-no-2fa", classes="users-toggle", compact=True)
            yield TickBox("Locked", id="admin-users-locked", classes="users-toggle", compact=True)
            yield TickBox(
                "Disabled", id="admin-users-disabled", classes="users-toggle", compact=True
            )
        with Horizontal(classes="admin-toolbar"):
            yield Button("Add user (+)", variant="primary", id="admin-add", compact=True)
            yield Button("Reset 2FA", variant="error", id="admin-reset", compact=True)
            yield Button("Unlock", variant="warning", id="admin-unlock", compact=True)
            yield Button("Load more (o)", id="admin-users-more", compact=True, disabled=True)
        with Horizontal(classes="admin-toolbar", id="admin-user-actions"):
            yield Button("Set password (w)", variant="warning", id="admin-password", compact=True)
            yield Button("Disable (d)", variant="warning", id="admin-disable", compact=True)
            yield Button("Make admin (m)", id="admin-admin", compact=True)
            yield Button("Delete (x)", variant="error", id="admin-delete", compact=True)
        yield Static("", id="admin-users-count", markup=False)
        yield FitTable(
            [column.fit(column.label) for column in COLUMNS],
            id="admin-users-table",
            title="User",
            details_on_enter=False,  # Enter opens the account's detail screen
        )

    def on_mount(self) -> None:
        self._lock_timer = self.set_interval(1.0, self._show, pause=True)

    def _table(self) -> FitTable:
        return self.query_one("#admin-users-table", FitTable)

    def failed(self, error: BaseException) -> None:
        self.tfa.api_failed(error)

    # Asking the server

    def _narrowing(self) -> Narrowing:
        def ticked(name: str) -> bool:
            return self.query_one(f"#admin-users-{name}", Checkbox).value

        name = self.query_one("#admin-users-filter", Input).value.strip()
        return Narrowing(
            q=name or None,
            admin=True if ticked("admins") else None,
            two_factor=False if ticked("no-2fa") else None,
            locked=True if ticked("locked") else None,
            disabled=True if ticked("disabled") else None,
        )

    def action_find(self) -> None:
        """`/`, as in less and htop: to the name filter from anywhere in the section."""
        self.query_one("#admin-users-filter", Input).focus()

    @on(Input.Changed, "#admin-users-filter")
    def _name_typed(self) -> None:
        self.load_users(wait=TYPING_PAUSE)

    @on(Input.Submitted, "#admin-users-filter")
    def _to_the_table(self) -> None:
        self._table().focus()

    @on(Checkbox.Changed, ".users-toggle")
    def _toggled(self) -> None:
        self.load_users()

    @work(exclusive=True, exit_on_error=False, group="users", description="load users")
    async def load_users(self, *, wait: float = 0.0) -> None:
        """The first page for what is asked now; a newer ask (another key typed) cancels this
        one, so only the last answer is shown."""
        if wait:
            await asyncio.sleep(wait)
        self.workers.cancel_group(self, "users-more")
        asked = self._narrowing()
        table = self._table()
        table.loading = True
        try:
            page = await self._page(asked, after=None)
        except ApiError as exc:
            self.failed(exc)
            return
        finally:
            table.loading = False
        self._asked = asked
        self._users = {user.username: user for user in page.items}
        self._next_after = page.next_after
        self._show()

    async def _page(self, asked: Narrowing, after: str | None) -> UserList:
        return await self.tfa.api.user_page(
            q=asked.q,
            limit=self.page_size,
            after=after,
            admin=asked.admin,
            two_factor=asked.two_factor,
            locked=asked.locked,
            disabled=asked.disabled,
        )

    @on(Button.Pressed, "#admin-users-more")
    def action_more(self) -> None:
        if self._next_after is not None:
            self.load_more()

    @work(exclusive=True, exit_on_error=False, group="users-more", description="more users")
    async def load_more(self) -> None:
        asked, after = self._asked, self._next_after
        if after is None:
            return
        try:
            page = await self._page(asked, after)
        except ApiError as exc:
            self.failed(exc)
            return
        if (asked, after) != (self._asked, self._next_after):  # asked anew meanwhile
            return
        self._users.update((user.username, user) for user in page.items)
        self._next_after = page.next_after
        self._show()

    # Showing

    def _show(self) -> None:
        """The loaded accounts in the chosen order; the cursor stays on the account it was on."""
        table = self._table()
        by = BY_KEY[self.sort.column]
        users = sorted(self._users.values(), key=by.order, reverse=self.sort.reverse)
        arrow = " ▼" if self.sort.reverse else " ▲"
        table.fit_columns = tuple(
            column.fit(column.label + (arrow if column is by else "")) for column in COLUMNS
        )
        table.set_records({user.username: user_row(user) for user in users})
        self._show_count()
        self._show_choices()
        # Locks last seconds to minutes: counted down while anyone is locked.
        if any(seconds_left(u.locked_until) for u in self._users.values() if u.locked_until):
            self._lock_timer.resume()
        else:
            self._lock_timer.pause()

    def _show_count(self) -> None:
        """How many are shown, whether the server has more, and the order of those shown."""
        more = self._next_after is not None
        shown = len(self._users)
        words = (
            f"{shown} shown, more on the server (o)"
            if more
            else f"{shown} account{'' if shown == 1 else 's'}"
        )
        words += f" · {'these ' if more else ''}sorted by {self.sort.words()} (z)"
        self.query_one("#admin-users-count", Static).update(words)
        button = self.query_one("#admin-users-more", Button)
        button.disabled = not more
        button.label = "Load more (o)" if more else "All loaded"

    def _selected_key(self) -> str | None:
        return self._table().selected_key

    def _selected_user(self, *, quiet: bool = False) -> AdminUser | None:
        key = self._selected_key()
        if key is None:
            if not quiet:
                self.notify("There is no user to choose.", severity="warning")
            return None
        return self._users.get(key)

    @on(DataTable.RowHighlighted, "#admin-users-table")
    def _show_choices(self) -> None:
        """The two buttons that switch a state say what they would do to the selected user;
        at the last row, the next page comes."""
        user = self._selected_user(quiet=True)
        self.query_one("#admin-disable", Button).label = toggle_label(user)
        self.query_one("#admin-admin", Button).label = rights_label(user)
        table = self._table()
        if table.row_count and table.cursor_row == table.row_count - 1:
            self.action_more()

    # Sorting

    def action_sort(self) -> None:
        """The next column, in its first direction."""
        keys = [column.key for column in COLUMNS]
        following = keys[(keys.index(self.sort.column) + 1) % len(keys)]
        self.sort = Sort(following)
        self._show()

    def action_sort_reverse(self) -> None:
        self.sort = Sort(self.sort.column, not self.sort.reverse)
        self._show()

    @on(DataTable.HeaderSelected, "#admin-users-table")
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        """A click on a column's label sorts by it; on the sorted column, reverses."""
        key = str(event.column_key.value)
        same = key == self.sort.column
        self.sort = Sort(key, not self.sort.reverse if same else False)
        self._show()

    # The selected account

    @on(DataTable.RowSelected, "#admin-users-table")
    def open_detail(self) -> None:
        """Enter (or a click on the selected row): the account's own screen."""
        from tfa_tui.screens.user_detail import UserDetailScreen

        user = self._selected_user()
        if user is None:
            return

        def back(_: None) -> None:  # the list shows the account as it is now
            self.refresh_user(user.username)

        self.app.push_screen(UserDetailScreen(user), back)

    @work(exclusive=False, exit_on_error=False, group="user-refresh", description="user again")
    async def refresh_user(self, username: str) -> None:
        """One account as the server has it now (after an act on it, here or in its detail):
        gone from the list if it is gone from the server."""
        try:
            user = await self.tfa.api.user(username)
        except NotFound:
            self._users.pop(username, None)
            self._show()
            return
        except ApiError as exc:
            self.failed(exc)
            return
        if username in self._users:
            self._users[username] = user
            self._show()

    async def _act(self, action: Callable[[AdminUser], Awaitable[Outcome]]) -> None:
        user = self._selected_user()
        if user is None:
            return
        outcome = await action(user)
        if outcome in (Outcome.CHANGED, Outcome.GONE):
            self.refresh_user(user.username)
            self.post_message(self.Changed())

    @on(Button.Pressed, "#admin-add")
    @work(exclusive=True, exit_on_error=False, group="user-action")
    async def add_user(self) -> None:
        from tfa_tui.screens.add_user import AddUserScreen

        user = await self.app.push_screen_wait(AddUserScreen())
        if user is not None:
            self.notify(
                f"{user.username} is added" + (" as an administrator." if user.is_admin else ".")
            )
            self.load_users()
            self.post_message(self.Changed())

    @on(Button.Pressed, "#admin-reset")
    @work(exclusive=True, exit_on_error=False, group="user-action")
    async def reset_2fa(self) -> None:
        await self._act(self.actions.reset_2fa)

    @on(Button.Pressed, "#admin-unlock")
    @work(exclusive=True, exit_on_error=False, group="user-action")
    async def unlock(self) -> None:
        await self._act(self.actions.unlock)

    @on(Button.Pressed, "#admin-password")
    @work(exclusive=True, exit_on_error=False, group="user-action")
    async def reset_password(self) -> None:
        await self._act(self.actions.reset_password)

    @on(Button.Pressed, "#admin-disable")
    @work(exclusive=True, exit_on_error=False, group="user-action")
    async def disable_or_enable(self) -> None:
        await self._act(self.actions.disable_or_enable)

    @work(exclusive=True, exit_on_error=False, group="user-action")
    async def disable(self) -> None:
        await self._act(self.actions.disable)

    @work(exclusive=True, exit_on_error=False, group="user-action")
    async def enable(self) -> None:
        await self._act(self.actions.enable)

    @on(Button.Pressed, "#admin-admin")
    @work(exclusive=True, exit_on_error=False, group="user-action")
    async def admin_rights(self) -> None:
        await self._act(self.actions.admin_rights)

    @on(Button.Pressed, "#admin-delete")
    @work(exclusive=True, exit_on_error=False, group="user-action")
    async def delete(self) -> None:
        await self._act(self.actions.delete)
