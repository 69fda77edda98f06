"""One account for an administrator (Enter in Admin > Users): its state in words, its recent
sign-ins and its activity, and what can be done to it. Escape goes back to the list."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.widgets import Button, Footer, Header, Static

from tfa_tui.api import AdminHistoryItem, AdminUser
from tfa_tui.api.errors import LEAVING, ApiError, NotFound
from tfa_tui.plain import visible
from tfa_tui.screens.base import TfaScreen
from tfa_tui.user_actions import Outcome, UserActions, rights_label, toggle_label
from tfa_tui.widgets.activity_chart import ActivityChart, local_utc_offset
from tfa_tui.words import EVENTS, local_time, origin, reason, seconds_left

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

RECENT = 10  # history rows shown here; Admin > Sign-in history has them all
ACTIVITY_DAYS = 30
LABEL = 15  # the width of a fact's name, so the values line up


def codes_words(count: int) -> str:
    return f"{count} recovery code{'' if count == 1 else 's'} left"


def facts(user: AdminUser) -> list[tuple[str, str]]:
    """What an administrator checks about an account, each in words (no colour needed)."""
    if user.totp_enabled:
        since = f" since {local_time(user.totp_enabled_at)}" if user.totp_enabled_at else ""
        two_factor = f"on{since}; {codes_words(user.recovery_codes_left)}"
    else:
        two_factor = "off"
    left = seconds_left(user.locked_until) if user.locked_until else 0
    if left and user.locked_until is not None:
        locked = f"yes, {left} s left (until {local_time(user.locked_until, with_seconds=True)})"
    else:
        locked = "no"
    if user.failed_attempts:
        attempts = user.failed_attempts
        locked += f", {attempts} failed attempt{'' if attempts == 1 else 's'}"
    login = user.last_login
    if login is None:
        last = "never"
    else:
        last = local_time(login.at, with_seconds=True)
        if login.ip:
            last += f" from {login.ip}"
        if login.client:
            last += f", {login.client}"
    return [
        ("2FA", two_factor),
        ("Locked", locked),
        ("Disabled", f"yes, since {local_time(user.disabled_at)}" if user.disabled_at else "no"),
        ("Administrator", "yes" if user.is_admin else "no"),
        (
            "Password",
            "temporary: a new one is due at the next sign-in"
            if user.password_change_required
            else "chosen by the user",
        ),
        ("Last sign-in", last),
        ("Created", local_time(user.created_at)),
    ]


def facts_text(user: AdminUser) -> Content:
    """The facts as aligned lines; every value from the server shown as plain text."""
    return Content("\n").join(
        Content.assemble((f"{name:<{LABEL}}", "bold"), visible(value))
        for name, value in facts(user)
    )


def history_line(entry: AdminHistoryItem) -> Content:
    """One attempt in a line: when, what, result, from where, then why and with what. A
    refusal is marked ✘ and bold, so it stands out without colour."""
    what = EVENTS.get(entry.event, entry.event)
    count = f" {entry.count} times" if entry.count > 1 else ""
    line = (
        f"{local_time(entry.at, with_seconds=True)}  {'✔' if entry.success else '✘'} {what}"
        f"{count}  {entry.ip or '-'}"
    )
    if entry.reason:
        line += f"  {reason(entry.reason)}"
    line += f"  {origin(entry.client or '-', entry.service)}"
    return Content.styled(visible(line), "" if entry.success else "bold")


class UserDetailScreen(TfaScreen):
    """Everything about one account on one screen that scrolls up and down, never sideways.
    Each act is the one of Admin > Users (the same code, `UserActions`); after it the screen
    shows the account as the server has it then."""

    CSS_PATH = "user_detail.tcss"
    # The page, not a button: the arrows scroll it, and Enter does nothing by surprise.
    AUTO_FOCUS = "#user-detail-body"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back to users", id="user-detail-back"),
        Binding("r", "refresh", "Refresh", id="user-detail-refresh"),
        Binding("f", "act('reset_2fa')", "Reset 2FA", show=False, id="user-detail-reset"),
        Binding("u", "act('unlock')", "Unlock", show=False, id="user-detail-unlock"),
        Binding(
            "w", "act('reset_password')", "Set password", show=False, id="user-detail-password"
        ),
        Binding("d", "act('disable')", "Disable", show=False, id="user-detail-disable"),
        Binding("e", "act('enable')", "Enable", show=False, id="user-detail-enable"),
        Binding("m", "act('admin_rights')", "Admin rights", show=False, id="user-detail-rights"),
        Binding("x", "act('delete')", "Delete user", show=False, id="user-detail-delete"),
    ]

    def __init__(self, user: AdminUser) -> None:
        super().__init__()
        self.user = user

    @property
    def actions(self) -> UserActions:
        return UserActions(self.tfa, before_leaving=self._close)

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="user-detail-body"):
            yield Static("", id="user-detail-title", markup=False)
            yield Static("", id="user-detail-facts")
            with Horizontal(classes="user-detail-actions"):
                yield Button("Reset 2FA (f)", variant="error", id="detail-reset", compact=True)
                yield Button("Unlock (u)", variant="warning", id="detail-unlock", compact=True)
                yield Button(
                    "Set password (w)", variant="warning", id="detail-password", compact=True
                )
            with Horizontal(classes="user-detail-actions"):
                yield Button("Disable (d)", variant="warning", id="detail-disable", compact=True)
                yield Button("Make admin (m)", id="detail-admin", compact=True)
                yield Button("Delete (x)", variant="error", id="detail-delete", compact=True)
            yield ActivityChart("Sign-ins", id="user-detail-activity")
            yield Static("Recent sign-ins", classes="user-detail-heading")
            yield Static("", id="user-detail-history")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"{visible(self.user.username)}: account"
        self._lock_timer = self.set_interval(1.0, self._count_down, pause=True)
        self.show_user(self.user)
        self.load_history()
        self.load_activity()

    # Showing

    def show_user(self, user: AdminUser) -> None:
        self.user = user
        self.query_one("#user-detail-title", Static).update(
            f"{visible(user.username)}" + (" (administrator)" if user.is_admin else "")
        )
        self.query_one("#user-detail-facts", Static).update(facts_text(user))
        self.query_one("#detail-disable", Button).label = toggle_label(user)
        self.query_one("#detail-admin", Button).label = rights_label(user)
        self._count_down()

    def _count_down(self) -> None:
        """A lock is counted down while on screen, and said to be over when it is."""
        until = self.user.locked_until
        if until is not None and seconds_left(until):
            self._lock_timer.resume()
        else:
            self._lock_timer.pause()
        self.query_one("#user-detail-facts", Static).update(facts_text(self.user))

    def failed(self, error: BaseException) -> None:
        if isinstance(error, LEAVING):  # the app goes elsewhere: from Home, not from here
            self._close()
        self.tfa.api_failed(error)

    def _close(self) -> None:
        """Back to the list, closing whatever is open above this screen first."""
        if self not in self.app.screen_stack:
            return
        while self.app.screen is not self:
            self.app.pop_screen()
        self.dismiss()

    @work(exclusive=True, exit_on_error=False, group="user", description="load the user")
    async def load_user(self) -> None:
        try:
            user = await self.tfa.api.user(self.user.username)
        except NotFound:
            self.notify(f"{self.user.username} is no longer there.", severity="warning")
            self._close()
            return
        except ApiError as exc:
            self.failed(exc)
            return
        self.show_user(user)

    @work(exclusive=True, exit_on_error=False, group="history", description="load history")
    async def load_history(self) -> None:
        shown = self.query_one("#user-detail-history", Static)
        shown.loading = True
        try:
            page = await self.tfa.api.admin_history(username=self.user.username, limit=RECENT)
        except ApiError as exc:
            self.failed(exc)
            return
        finally:
            shown.loading = False
        lines = [history_line(entry) for entry in page.items]
        shown.update(Content("\n").join(lines) if lines else "No sign-in attempts yet.")

    @work(exclusive=True, exit_on_error=False, group="activity", description="load activity")
    async def load_activity(self) -> None:
        chart = self.query_one("#user-detail-activity", ActivityChart)
        chart.loading = True
        try:
            activity = await self.tfa.api.admin_activity(
                days=ACTIVITY_DAYS, utc_offset=local_utc_offset(), username=self.user.username
            )
        except ApiError as exc:
            if isinstance(exc, LEAVING):
                self.failed(exc)
            chart.failed_to_load(exc)
            return
        finally:
            chart.loading = False
        chart.show(activity)

    def action_refresh(self) -> None:
        self.load_user()
        self.load_history()
        self.load_activity()

    def action_back(self) -> None:
        self._close()

    # Acts

    def _acts(self) -> dict[str, Callable[[AdminUser], Awaitable[Outcome]]]:
        return {
            "reset_2fa": self.actions.reset_2fa,
            "unlock": self.actions.unlock,
            "reset_password": self.actions.reset_password,
            "disable": self.actions.disable,
            "enable": self.actions.enable,
            "disable_or_enable": self.actions.disable_or_enable,
            "admin_rights": self.actions.admin_rights,
            "delete": self.actions.delete,
        }

    @on(Button.Pressed, ".user-detail-actions Button")
    def _pressed(self, event: Button.Pressed) -> None:
        act = {
            "detail-reset": "reset_2fa",
            "detail-unlock": "unlock",
            "detail-password": "reset_password",
            "detail-disable": "disable_or_enable",
            "detail-admin": "admin_rights",
            "detail-delete": "delete",
        }[event.button.id or ""]
        self.action_act(act)

    @work(exclusive=True, exit_on_error=False, group="act", description="act on the user")
    async def action_act(self, act: str) -> None:
        outcome = await self._acts()[act](self.user)
        if outcome is Outcome.GONE:
            self._close()
        elif outcome is Outcome.CHANGED:
            self.action_refresh()
