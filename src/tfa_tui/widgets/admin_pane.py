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

from tfa_tui.api import AdminHistoryItem, AuditItem, Policy
from tfa_tui.api.errors import ApiError
from tfa_tui.plain import cell, visible
from tfa_tui.screens.confirm import ConfirmScreen
from tfa_tui.screens.home import HISTORY_COLUMNS, PAGE, history_row
from tfa_tui.widgets.activity_panel import ActivityPanel
from tfa_tui.widgets.admin_services import ServicesSection
from tfa_tui.widgets.admin_users import UsersSection
from tfa_tui.widgets.fields import Field
from tfa_tui.widgets.fit_table import Cell, FitColumn, FitTable, FitTableView, when
from tfa_tui.words import local_time

if TYPE_CHECKING:
    from tfa_tui.app import TfaApp

MAX_GRACE_DAYS = 365
ACTIONS = {
    "policy_changed": "Policy changed",
    "user_created": "User added",
    "totp_reset": "2FA reset",
    "user_unlocked": "Unlocked",
    "service_added": "Service added",
    "service_revoked": "Service revoked",
    "password_reset": "Password set",
    "user_disabled": "Disabled",
    "user_enabled": "Enabled",
    "user_deleted": "User deleted",
    "admin_granted": "Made administrator",
    "admin_revoked": "Admin rights removed",
    "server_key_rotated": "Server key rotated",
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
    ended = f"{detail.get('sessions_ended', 0)} session(s) ended"
    if action == "password_reset":
        return ("temporary" if detail.get("temporary") else "not temporary") + f", {ended}"
    if action == "user_disabled":
        return ended
    if action == "user_enabled":
        return f"disabled for {_duration(int(detail.get('disabled_seconds') or 0))}"
    if action == "user_deleted":
        role = "administrator" if detail.get("was_admin") else "user"
        had = "had 2FA" if detail.get("had_2fa") else "had no 2FA"
        return f"{role}, {had}, {ended}"
    if action in ("admin_granted", "admin_revoked"):
        return "administrator" if detail.get("is_admin") else "no longer administrator"
    if action == "server_key_rotated":
        return (
            f"generation {detail.get('generation')}: {detail.get('totp_secrets', 0)} 2FA"
            f" secret(s), {detail.get('recovery_codes', 0)} recovery code(s) re-keyed"
        )
    return ", ".join(f"{key}={value}" for key, value in detail.items()) or "-"


def _duration(seconds: int) -> str:
    """Roughly, in the largest unit that fits: "40 s", "12 min", "3 h", "2 days"."""
    if seconds >= 86_400:
        return _days(seconds // 86_400)
    for size, unit in ((3_600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def history_user(entry: AdminHistoryItem) -> Text:
    """Whose attempt: a deleted account's rows stay (they are evidence), marked in words."""
    return cell((entry.username or "-") + (" (deleted)" if entry.account_deleted else ""))


# Everyone's history: whose attempt, then the columns of the person's own History.
ADMIN_HISTORY_COLUMNS = (FitColumn("user", "User", min_width=8), *HISTORY_COLUMNS)
# At 80 columns: when, who, did what, to whom; what it changed as far as the width allows.
AUDIT_COLUMNS = (
    FitColumn("at", "Time"),
    FitColumn("actor", "Who", min_width=8),
    FitColumn("action", "Action", min_width=10),
    FitColumn("target", "Target", min_width=8),
    FitColumn("detail", "Details", priority=1, min_width=10),
    FitColumn("ip", "From", priority=2, min_width=9),
)


def audit_row(entry: AuditItem) -> dict[str, Cell]:
    return {
        "at": when(entry.at),
        "actor": cell(entry.actor),
        "action": cell(ACTIONS.get(entry.action, entry.action)),
        "target": cell(entry.target or "-"),
        "detail": cell(audit_detail(entry.action, entry.detail)),
        "ip": cell(entry.ip or "console"),
    }


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
        # The selected user's actions (Admin > Users).
        Binding("w", "user('reset_password')", "Set password", show=False, id="admin-password"),
        Binding("d", "user('disable')", "Disable", show=False, id="admin-disable"),
        Binding("e", "user('enable')", "Enable", show=False, id="admin-enable"),
        Binding("m", "user('admin_rights')", "Admin rights", show=False, id="admin-rights"),
        Binding("x", "user('delete')", "Delete user", show=False, id="admin-delete"),
    ]

    class PolicySaved(Message):
        """The policy was changed here: what Home says about the caller's own 2FA may change."""

    def __init__(self) -> None:
        super().__init__(id="admin-pane")
        self._policy: Policy | None = None
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
                yield UsersSection()
            with TabPane("Ser[u]v[/u]ices", id="admin-services"):
                yield ServicesSection()
            with TabPane("S[u]i[/u]gn-in history", id="admin-history"):
                yield ActivityPanel()
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
                yield FitTableView(
                    ADMIN_HISTORY_COLUMNS,
                    table_id="admin-history-table",
                    title="Sign-in history entry",
                )
            with TabPane("Audit [u]l[/u]og", id="admin-audit"):
                with Horizontal(classes="admin-toolbar"):
                    yield Button(
                        "Load older (o)", id="admin-audit-older", classes="older", compact=True
                    )
                yield FitTableView(
                    AUDIT_COLUMNS, table_id="admin-audit-table", title="Audit log entry"
                )

    def on_mount(self) -> None:
        self.reload()

    def _table(self, name: str) -> DataTable[Any]:
        return self.query_one(f"#admin-{name}-table", DataTable)

    def _log(self, name: str) -> FitTable:
        """The Sign-in history's table or the Audit log's."""
        return self.query_one(f"#admin-{name}-table", FitTable)

    def reload(self) -> None:
        """Fetch all four sections again, from the newest entries (the home screen's `r`)."""
        self.load_policy()
        self.query_one(UsersSection).load_users()
        self.query_one(ServicesSection).load_services()
        self.query_one(ActivityPanel).reload()
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
        if action in ("add_user", "user"):
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

    # Users and services: their sections do the work; the keys are here, so that they work
    # from the section's tabs too.

    def action_add_user(self) -> None:
        self.query_one(UsersSection).add_user()

    def action_user(self, action: str) -> None:
        """W, D, E, M and X: an action on the selected user."""
        section = self.query_one(UsersSection)
        {
            "reset_password": section.reset_password,
            "disable": section.disable,
            "enable": section.enable,
            "admin_rights": section.admin_rights,
            "delete": section.delete,
        }[action]()

    def action_add_service(self) -> None:
        self.query_one(ServicesSection).add_service()

    def action_revoke_service(self) -> None:
        self.query_one(ServicesSection).revoke_service()

    @on(UsersSection.Changed)
    def _user_changed(self) -> None:
        """An administrator's act on an account is in its history as well as in the log."""
        self.load_history(reset=True)
        self.load_audit(reset=True)

    @on(ServicesSection.Changed)
    def _service_changed(self) -> None:
        self.load_audit(reset=True)

    @on(ActivityPanel.AccountChosen)
    def _account_chosen(self, event: ActivityPanel.AccountChosen) -> None:
        """A name among the most refused, chosen above the table: an account opens its own
        screen, where it can be locked, disabled or reset; a name that is no account shows
        its attempts in the history below."""
        if event.known_user:
            self.open_user(event.username)
            return
        self.query_one("#admin-user-filter", Input).value = event.username
        self.screen.set_focus(self._table("history"))  # now: a loading table takes no focus
        self.load_history(reset=True)

    @work(exclusive=True, exit_on_error=False, group="open-user", description="open account")
    async def open_user(self, username: str) -> None:
        from tfa_tui.screens.user_detail import UserDetailScreen

        try:
            user = await self.tfa.api.user(username)
        except ApiError as exc:
            self.failed(exc)
            return

        def back(_: None) -> None:  # what was done there shows here too
            self._user_changed()

        self.app.push_screen(UserDetailScreen(user), back)

    # Sign-in history and audit log

    @on(Input.Submitted, "#admin-user-filter")
    @on(Input.Submitted, "#admin-service-filter")
    @on(Select.Changed, "#admin-result")
    def _filter_changed(self) -> None:
        self.load_history(reset=True)

    def _fill(
        self, name: str, rows: dict[str, dict[str, Cell]], next_before: int | None, *, reset: bool
    ) -> None:
        table = self._log(name)
        if reset:
            table.set_records(rows)
        else:
            table.add_records(rows)
        self._next[name] = next_before
        older = self.query_one(f"#admin-{name}-older", Button)
        older.disabled = next_before is None
        older.label = "Load older (o)" if next_before is not None else "No older entries"

    @work(exclusive=True, exit_on_error=False, group="history", description="load history")
    async def load_history(self, *, reset: bool) -> None:
        if not reset and self._next["history"] is None:
            return
        table = self._log("history")
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
        rows = {
            str(entry.id): {"user": history_user(entry), **history_row(entry)}
            for entry in page.items
        }
        self._fill("history", rows, page.next_before, reset=reset)

    @work(exclusive=True, exit_on_error=False, group="audit", description="load audit")
    async def load_audit(self, *, reset: bool) -> None:
        if not reset and self._next["audit"] is None:
            return
        table = self._log("audit")
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
        rows = {str(entry.id): audit_row(entry) for entry in page.items}
        self._fill("audit", rows, page.next_before, reset=reset)
