"""Admin: the 2FA policy, the users, the relying services, everyone's sign-in history and the
audit log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import (
    Button,
    DataTable,
    Input,
    Label,
    Select,
    Static,
    Switch,
    TabbedContent,
    TabPane,
)

from tfa_tui.api import AdminUser, AuditItem, Policy, Service
from tfa_tui.api.errors import ApiError
from tfa_tui.plain import cell, visible
from tfa_tui.screens.confirm import ConfirmScreen
from tfa_tui.screens.home import PAGE, history_row
from tfa_tui.widgets.fields import Field
from tfa_tui.words import local_date, local_time, seconds_left

if TYPE_CHECKING:
    from tfa_tui.app import TfaApp

MAX_GRACE_DAYS = 365
DESCRIPTION_CELL = 24  # at 80 columns, what leaves room for the last use and its address
ACTIONS = {
    "policy_changed": "Policy changed",
    "user_created": "User added",
    "totp_reset": "2FA reset",
    "user_unlocked": "Unlocked",
    "service_added": "Service added",
    "service_revoked": "Service revoked",
}


def _days(count: int) -> str:
    return f"{count} day{'' if count == 1 else 's'}"


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(visible(name) for name in names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def policy_change_text(
    old: Policy,
    force: bool,
    grace: int,
    without_2fa: Sequence[str],
    total: int,
    myself: str | None = None,
) -> str | None:
    """What saving does to people, in words for the confirmation; None when nothing changes."""
    if force == old.force_2fa and grace == old.grace_period_days:
        return None
    if old.force_2fa and not force:
        return "Users will be able to disconnect 2FA again, and nobody will be asked to set it up."
    if not force:
        return f"The grace period becomes {_days(grace)}. It only matters while 2FA is forced."
    if not old.force_2fa:
        text = "Users without two-factor authentication will have to set it up " + (
            f"within {_days(grace)}; after that, before they can do anything else."
            if grace
            else "before they can do anything else, in the sessions they have now too."
        )
    else:
        deadline = old.forced_since + timedelta(days=grace) if old.forced_since else None
        text = (
            f"The grace period changes from {_days(old.grace_period_days)} to {_days(grace)}:"
            " users without two-factor authentication must set it up by"
            f" {local_time(deadline)}, counted from when 2FA was forced."
        )
    if not without_2fa:
        return text + f"\n\nAll {total} users already have two-factor authentication."
    text += (
        f"\n\n{len(without_2fa)} of {total} users {'has' if len(without_2fa) == 1 else 'have'}"
        " no two-factor authentication yet:"
        f" {_names(without_2fa)}."
    )
    if myself in without_2fa and grace == 0:
        text += " That includes you: you will set it up right after saving."
    return text


def audit_detail(action: str, detail: Mapping[str, Any]) -> str:
    """The audit entry's detail in words; unknown actions show their raw fields."""
    old, new = detail.get("before") or {}, detail.get("after") or {}
    if action == "policy_changed":
        force = ["on" if side.get("force_2fa") else "off" for side in (old, new)]
        grace = [side.get("grace_period_days") for side in (old, new)]
        return f"force 2FA {force[0]}→{force[1]}, grace {grace[0]}→{grace[1]} days"
    if action == "user_created":
        return "administrator" if detail.get("is_admin") else "user"
    if action == "totp_reset":
        had = "had 2FA" if detail.get("had_2fa") else "had no 2FA"
        return f"{had}, {detail.get('sessions_ended', 0)} session(s) ended"
    if action == "user_unlocked":
        return f"{detail.get('failed_attempts', 0)} failed attempts cleared"
    if action == "service_added":
        return str(detail.get("description") or "-")
    if action == "service_revoked":
        return "its key stopped working"
    return ", ".join(f"{key}={value}" for key, value in detail.items()) or "-"


def audit_row(entry: AuditItem) -> tuple[str | Text, ...]:
    return (
        local_time(entry.at, with_seconds=True),
        cell(entry.actor),
        cell(ACTIONS.get(entry.action, entry.action)),
        cell(entry.target or "-"),
        cell(audit_detail(entry.action, entry.detail)),
        cell(entry.ip or "console"),
    )


def lock_cell(user: AdminUser) -> str:
    """The lock as it is now: seconds left while it holds (counted down on screen), and no
    lock once it is over; failed attempts the server counted still show."""
    left = seconds_left(user.locked_until) if user.locked_until else 0
    if left:
        return f"locked, {left} s left"
    if user.failed_attempts:
        return f"{user.failed_attempts} failed"
    return "-"


def user_row(user: AdminUser) -> tuple[str | Text, ...]:
    return (
        cell(user.username),
        "✔ admin" if user.is_admin else "",
        "[green]✔ on[/]" if user.totp_enabled else "[red]✘ off[/]",
        local_time(user.last_login.at) if user.last_login else "never",
        lock_cell(user),
    )


def service_row(service: Service) -> tuple[str | Text, ...]:
    """Last used: when, and from which address the service called (a key used from somewhere
    unexpected shows here). A long description is cut short: the revoke question shows all."""
    description = cell(service.description or "-")
    description.truncate(DESCRIPTION_CELL, overflow="ellipsis")
    return (
        cell(service.name),
        description,
        local_date(service.created_at),
        local_time(service.last_used_at) if service.last_used_at else "never",
        cell(service.last_used_ip or "-"),
    )


class AdminPane(Vertical):
    """Five sections in inner tabs. Compact (one-row) controls, so that at 80x24 every control
    is on screen and the tables keep most of the height.

    Refreshing is the home screen's `r`, which calls `reload()`.
    """

    DEFAULT_CSS = """
    AdminPane { height: 1fr; }
    AdminPane > TabbedContent { height: 1fr; }
    AdminPane TabPane { height: 1fr; padding: 0; }
    AdminPane .admin-toolbar { height: 1; margin-top: 1; }
    AdminPane .admin-toolbar > * { margin-right: 2; }
    AdminPane DataTable { height: 1fr; margin-top: 1; }
    AdminPane #admin-policy-form { padding: 1 1 0 1; }
    AdminPane .admin-row { height: 1; margin-bottom: 1; }
    AdminPane .admin-row Label { width: 22; }
    /* A rule on the row itself makes Textual restyle its label as the focus moves. */
    AdminPane .admin-row:focus-within { background-tint: $foreground 4%; }
    AdminPane .admin-row:focus-within Label { color: $accent; text-style: bold; }
    /* Switch has no compact style in this Textual: the same look, without the border. */
    AdminPane #admin-force { border: none; height: 1; padding: 0 1; }
    AdminPane #admin-force:focus { border: none; background-tint: $foreground 15%; }
    AdminPane #admin-force-state { width: auto; margin-left: 1; }
    AdminPane #admin-grace { width: 8; }
    AdminPane .admin-note { color: $text-muted; margin-bottom: 1; }
    AdminPane #admin-user-filter { width: 18; }
    AdminPane #admin-service-filter { width: 21; }
    AdminPane #admin-result { width: 16; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        # The buttons name these keys; the footer has no room left for them at 80 columns.
        Binding("plus", "add_user", "Add user", show=False, id="admin-add-user"),
        Binding("plus", "add_service", "Add service", show=False, id="admin-add-service"),
        Binding("delete", "revoke_service", "Revoke", show=False, id="admin-revoke-service"),
        Binding("o", "older", "Load older", show=False, id="admin-older"),
    ]

    class PolicySaved(Message):
        """The policy was changed here: what Home says about the caller's own 2FA may change."""

    def __init__(self) -> None:
        super().__init__(id="admin-pane")
        self._policy: Policy | None = None
        self._users: dict[str, AdminUser] = {}
        self._services: dict[str, Service] = {}
        self._next: dict[str, int | None] = {"history": None, "audit": None}
        self._section = "admin-policy"

    @property
    def tfa(self) -> TfaApp:
        return cast("TfaApp", self.app)

    def compose(self) -> ComposeResult:
        with TabbedContent(initial="admin-policy", id="admin-tabs"):
            with (
                TabPane("[u]P[/u]olicy", id="admin-policy"),
                VerticalScroll(id="admin-policy-form", can_focus=False),
            ):
                with Horizontal(classes="admin-row"):
                    yield Label("Force 2FA for users")
                    yield Switch(id="admin-force", tooltip="Space or Enter switches it")
                    # The state in words too: the switch's colours alone do not read everywhere.
                    yield Static("off", id="admin-force-state")
                with Horizontal(classes="admin-row"):
                    yield Label("Grace period (days)")
                    yield Field(
                        placeholder="0-365",
                        restrict=r"[0-9]*",
                        max_length=3,
                        id="admin-grace",
                        compact=True,
                    )
                yield Static(
                    "How long users without 2FA may still go without it once it is forced;"
                    " 0: they must set it up before they can do anything else.",
                    classes="admin-note",
                )
                yield Static("", id="admin-policy-status", classes="admin-note")
                yield Button("Save", variant="primary", id="admin-save", compact=True)
            with TabPane("[u]U[/u]sers", id="admin-users"):
                with Horizontal(classes="admin-toolbar"):
                    yield Button("Add user (+)", variant="primary", id="admin-add", compact=True)
                    yield Button("Reset 2FA", variant="error", id="admin-reset", compact=True)
                    yield Button("Unlock", variant="warning", id="admin-unlock", compact=True)
                yield DataTable(id="admin-users-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Ser[u]v[/u]ices", id="admin-services"):
                with Horizontal(classes="admin-toolbar"):
                    yield Button(
                        "Add service (+)", variant="primary", id="admin-add-service", compact=True
                    )
                    yield Button(
                        "Revoke (Del)", variant="error", id="admin-revoke-service", compact=True
                    )
                yield DataTable(id="admin-services-table", cursor_type="row", zebra_stripes=True)
            with TabPane("S[u]i[/u]gn-in history", id="admin-history"):
                with Horizontal(classes="admin-toolbar"):
                    yield Field(
                        placeholder="User, then Enter",
                        id="admin-user-filter",
                        max_length=64,
                        compact=True,
                    )
                    yield Field(
                        placeholder="Service, then Enter",
                        id="admin-service-filter",
                        max_length=64,
                        compact=True,
                        tooltip="Only what this service (sshd, say) asked; empty: everything",
                    )
                    yield Select(
                        [("All results", "all"), ("Successful", "ok"), ("Failed", "failed")],
                        value="all",
                        allow_blank=False,
                        id="admin-result",
                        compact=True,
                    )
                    yield Button(
                        "Load older (o)", id="admin-history-older", classes="older", compact=True
                    )
                yield DataTable(id="admin-history-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Audit [u]l[/u]og", id="admin-audit"):
                with Horizontal(classes="admin-toolbar"):
                    yield Button(
                        "Load older (o)", id="admin-audit-older", classes="older", compact=True
                    )
                yield DataTable(id="admin-audit-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self._table("users").add_columns(
            "Username", "Admin", "2FA", "Last sign-in", ("Lock", "lock")
        )
        # Locks last seconds to minutes: counted down while anyone is locked.
        self._lock_timer = self.set_interval(1.0, self._count_down_locks, pause=True)
        self._table("services").add_columns("Name", "Description", "Created", "Last used", "From")
        self._table("history").add_columns(
            "User", "Time", "Event", "Result", "Method", "IP", "Client", "Reason"
        )
        self._table("audit").add_columns("Time", "Who", "Action", "Target", "Details", "From")
        self.reload()

    def _table(self, name: str) -> DataTable[str | Text]:
        return cast("DataTable[str | Text]", self.query_one(f"#admin-{name}-table", DataTable))

    def reload(self) -> None:
        """Fetch all four sections again, from the newest entries (the home screen's `r`)."""
        self.load_policy()
        self.load_users()
        self.load_services()
        self.load_history(reset=True)
        self.load_audit(reset=True)

    def failed(self, error: BaseException) -> None:
        self.tfa.api_failed(error)

    def show_section(self, section: str) -> None:
        """Open a section (Home's keys P, U, V, I, L); its main control takes the focus, so its
        keys work at once."""
        tabs = self.query_one("#admin-tabs", TabbedContent)
        tabs.active = section
        if section == "admin-policy":
            tabs.query_one("ContentTabs").focus()
        else:
            self._table(section.removeprefix("admin-")).focus()

    def on_show(self, event: events.Show) -> None:
        """Opening the Admin tab hides whatever had the focus: give it to the section's tabs,
        so the keys of this pane (+, o) work at once and Tab moves on from there."""
        if self.screen.focused is None:
            self.query_one("#admin-tabs ContentTabs").focus()

    # Keys

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        active = self._section
        if action == "add_user":
            return active == "admin-users"
        if action in ("add_service", "revoke_service"):
            return active == "admin-services"
        if action == "older":
            return active in ("admin-history", "admin-audit")
        return True

    @on(TabbedContent.TabActivated, "#admin-tabs")
    def _tab_changed(self, event: TabbedContent.TabActivated) -> None:
        self._section = event.pane.id or ""
        self.refresh_bindings()

    @on(Button.Pressed, ".older")
    def action_older(self) -> None:
        if self._section == "admin-audit":
            self.load_audit(reset=False)
        else:
            self.load_history(reset=False)

    # Policy

    @work(exclusive=True, exit_on_error=False, group="policy")
    async def load_policy(self) -> None:
        form = self.query_one("#admin-policy-form")
        form.loading = True
        try:
            self.show_policy(await self.tfa.api.policy())
        except ApiError as exc:
            self.failed(exc)
        finally:
            form.loading = False

    @on(Switch.Changed, "#admin-force")
    def _show_force_state(self) -> None:
        force = self.query_one("#admin-force", Switch).value
        unsaved = self._policy is not None and force != self._policy.force_2fa
        self.query_one("#admin-force-state", Static).update(
            ("on" if force else "off") + (" - not saved yet" if unsaved else "")
        )

    def show_policy(self, policy: Policy) -> None:
        self._policy = policy
        self.query_one("#admin-force", Switch).value = policy.force_2fa
        self._show_force_state()
        self.query_one("#admin-grace", Input).value = str(policy.grace_period_days)
        if policy.force_2fa and policy.forced_since is not None:
            deadline = policy.forced_since + timedelta(days=policy.grace_period_days)
            state = f"2FA is forced since {local_time(policy.forced_since)}; users without it " + (
                f"must set it up by {local_time(deadline)}."
                if policy.grace_period_days
                else "must set it up before they can do anything else."
            )
        else:
            state = "2FA is not forced: users choose."
        changed = local_time(policy.updated_at) if policy.updated_at else "never"
        self.query_one("#admin-policy-status", Static).update(f"{state}\nLast changed: {changed}")

    @on(Input.Submitted, "#admin-grace")
    @on(Button.Pressed, "#admin-save")
    @work(exclusive=True, exit_on_error=False, group="save-policy")
    async def save_policy(self) -> None:
        old = self._policy
        if old is None:
            self.notify("The policy is not loaded yet: press r to try again.", severity="warning")
            return
        force = self.query_one("#admin-force", Switch).value
        text = self.query_one("#admin-grace", Input).value
        grace = int(text) if text.isdigit() else -1
        if not 0 <= grace <= MAX_GRACE_DAYS:
            self.notify(f"The grace period is 0 to {MAX_GRACE_DAYS} days.", severity="warning")
            return
        try:
            users = await self.tfa.api.users() if force else []
        except ApiError as exc:
            self.failed(exc)
            return
        missing = [user.username for user in users if not user.totp_enabled]
        change = policy_change_text(old, force, grace, missing, len(users), self.tfa.username)
        if change is None:
            self.notify("Nothing changed.")
            return
        title = (
            "Force two-factor authentication?"
            if force and not old.force_2fa
            else "Stop forcing two-factor authentication?"
            if old.force_2fa and not force
            else "Change the grace period?"
        )
        if not await self.app.push_screen_wait(
            ConfirmScreen(title, change, confirm="Save policy", danger=True)
        ):
            return
        try:
            self.show_policy(await self.tfa.api.set_policy(force, grace))
        except ApiError as exc:
            self.failed(exc)
            return
        self.notify("The policy is saved.")
        self.post_message(self.PolicySaved())
        self.load_audit(reset=True)

    def force_2fa(self, force: bool) -> None:
        """The palette's "Force 2FA on/off": the switch, then Save, as by hand (confirmed
        first; the grace period as it stands)."""
        self.show_section("admin-policy")
        self.query_one("#admin-force", Switch).value = force
        self.save_policy()

    @property
    def forced(self) -> bool | None:
        """Whether 2FA is forced, as last loaded; None before the policy is loaded."""
        return None if self._policy is None else self._policy.force_2fa

    # Users

    @work(exclusive=True, exit_on_error=False, group="users")
    async def load_users(self) -> None:
        table = self._table("users")
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

    def _count_down_locks(self) -> None:
        locked = [user for user in self._users.values() if user.locked_until is not None]
        table = self._table("users")
        for user in locked:
            table.update_cell(user.username, "lock", lock_cell(user))
        still = any(seconds_left(user.locked_until) for user in locked if user.locked_until)
        if still:
            self._lock_timer.resume()
        else:
            self._lock_timer.pause()

    def _selected_user(self, *, quiet: bool = False) -> AdminUser | None:
        table = self._table("users")
        if table.row_count == 0:
            if not quiet:
                self.notify("There is no user to choose.", severity="warning")
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self._users.get(key or "")

    @on(Button.Pressed, "#admin-add")
    @work(exclusive=True, exit_on_error=False, group="user-action")
    async def action_add_user(self) -> None:
        from tfa_tui.screens.add_user import AddUserScreen

        user = await self.app.push_screen_wait(AddUserScreen())
        if user is not None:
            self.notify(
                f"{user.username} is added" + (" as an administrator." if user.is_admin else ".")
            )
            self.load_users()
            self.load_audit(reset=True)

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
        self.notify(f"{user.username}'s two-factor authentication is removed; they are signed out.")
        self.load_users()
        self.load_audit(reset=True)

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
        self.notify(f"{fresh.username} is unlocked and can sign in again.")
        self.load_users()
        self.load_audit(reset=True)

    # Services

    @work(exclusive=True, exit_on_error=False, group="services")
    async def load_services(self) -> None:
        table = self._table("services")
        table.loading = True
        try:
            services = await self.tfa.api.services()
        except ApiError as exc:
            self.failed(exc)
            return
        finally:
            table.loading = False
        chosen = self._selected_service(quiet=True)
        self._services = {service.name: service for service in services}
        table.clear()
        for service in services:
            table.add_row(*service_row(service), key=service.name)
        if chosen is not None and chosen.name in self._services:  # keep the cursor on it
            table.move_cursor(row=table.get_row_index(chosen.name))

    def _selected_service(self, *, quiet: bool = False) -> Service | None:
        table = self._table("services")
        if table.row_count == 0:
            if not quiet:
                self.notify("There is no service to choose.", severity="warning")
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self._services.get(key or "")

    @on(Button.Pressed, "#admin-add-service")
    @work(exclusive=True, exit_on_error=False, group="service-action")
    async def action_add_service(self) -> None:
        """The dialog, then the new key on a screen of its own, shown this once."""
        from tfa_tui.screens.add_service import AddServiceScreen
        from tfa_tui.screens.service_key import ServiceKeyScreen

        service = await self.app.push_screen_wait(AddServiceScreen())
        if service is None:
            return
        self.app.push_screen(ServiceKeyScreen(service))
        self.load_services()
        self.load_audit(reset=True)

    @on(Button.Pressed, "#admin-revoke-service")
    @work(exclusive=True, exit_on_error=False, group="service-action")
    async def action_revoke_service(self) -> None:
        service = self._selected_service()
        if service is None:
            return
        name = visible(service.name)
        used = (
            f"last used {local_time(service.last_used_at)}"
            + (f" from {visible(service.last_used_ip)}" if service.last_used_ip else "")
            if service.last_used_at
            else "never used"
        )
        if not await self.app.push_screen_wait(
            ConfirmScreen(
                f"Revoke the service {name}?",
                f"{name} ({visible(service.description) or 'no description'}; {used}).\n\n"
                f"Its key stops working at once: {name} can no longer check anyone's code"
                " with tfa. This cannot be undone; to use it again, add it again and give it"
                " the new key.",
                confirm="Revoke",
                danger=True,
            )
        ):
            return
        try:
            await self.tfa.api.revoke_service(service.name)
        except ApiError as exc:
            self.failed(exc)
            return
        self.notify(f"{service.name} is revoked: its key no longer works.")
        self.load_services()
        self.load_audit(reset=True)

    # Sign-in history and audit log

    @on(Input.Submitted, "#admin-user-filter")
    @on(Input.Submitted, "#admin-service-filter")
    @on(Select.Changed, "#admin-result")
    def _filter_changed(self) -> None:
        self.load_history(reset=True)

    def _fill(
        self, name: str, rows: dict[str, tuple[str | Text, ...]], next_before: int | None
    ) -> None:
        table = self._table(name)
        for key, row in rows.items():
            table.add_row(*row, key=key)
        self._next[name] = next_before
        older = self.query_one(f"#admin-{name}-older", Button)
        older.disabled = next_before is None
        older.label = "Load older (o)" if next_before is not None else "No older entries"

    @work(exclusive=True, exit_on_error=False, group="history")
    async def load_history(self, *, reset: bool) -> None:
        if not reset and self._next["history"] is None:
            return
        table = self._table("history")
        username = self.query_one("#admin-user-filter", Input).value.strip() or None
        service = self.query_one("#admin-service-filter", Input).value.strip() or None
        choice = self.query_one("#admin-result", Select).value
        result = {"ok": True, "failed": False}.get(str(choice))
        table.loading = True
        try:
            page = await self.tfa.api.admin_history(
                username=username,
                success=result,
                service=service,
                limit=PAGE,
                before=None if reset else self._next["history"],
            )
        except ApiError as exc:
            self.failed(exc)
            return
        finally:
            table.loading = False
        if reset:
            table.clear()
        rows = {
            str(entry.id): (cell(entry.username or "-"), *history_row(entry))
            for entry in page.items
        }
        self._fill("history", rows, page.next_before)

    @work(exclusive=True, exit_on_error=False, group="audit")
    async def load_audit(self, *, reset: bool) -> None:
        if not reset and self._next["audit"] is None:
            return
        table = self._table("audit")
        table.loading = True
        try:
            page = await self.tfa.api.audit(
                limit=PAGE, before=None if reset else self._next["audit"]
            )
        except ApiError as exc:
            self.failed(exc)
            return
        finally:
            table.loading = False
        if reset:
            table.clear()
        self._fill(
            "audit", {str(entry.id): audit_row(entry) for entry in page.items}, page.next_before
        )
