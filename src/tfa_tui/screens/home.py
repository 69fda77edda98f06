"""Home: Security, History, Sessions and (for administrators) Admin, by tab or by key."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import (
    Button,
    Footer,
    Header,
    Input,
    Select,
    Static,
    TabbedContent,
    TabPane,
)

from tfa_tui.api import HistoryItem, Me, Session, TotpDisabled
from tfa_tui.api.errors import ApiError, PolicyRequires2fa
from tfa_tui.plain import cell, template, visible
from tfa_tui.screens.base import TfaScreen
from tfa_tui.screens.confirm import ConfirmScreen
from tfa_tui.screens.reauth import Reauthentication, ReauthScreen
from tfa_tui.widgets.activity_chart import SecurityActivity
from tfa_tui.widgets.fields import Field
from tfa_tui.widgets.fit_table import Cell, FitColumn, FitTable, FitTableView, when
from tfa_tui.words import EVENTS, METHODS, local_time, origin, reason, seconds_left

if TYPE_CHECKING:
    from tfa_tui.widgets.admin_pane import AdminPane

PAGE = 50


def result_cell(success: bool, count: int = 1) -> str:
    """A symbol and bold as well as a colour, so the table reads without colour; refusals
    counted into one entry say how many."""
    if success:
        return "[green]✔ successful[/]"
    return "[b red]✘ failed[/]" + (f" [b]{count:,} times[/b]" if count > 1 else "")


# At 80 columns: when, what, result and from where, which tell whether someone else is trying
# the account; then the reason of a refusal before the (long) client string.
HISTORY_COLUMNS = (
    FitColumn("at", "Time"),
    FitColumn("event", "Event", min_width=10),
    FitColumn("result", "Result", min_width=8),
    FitColumn("ip", "IP", min_width=9),
    FitColumn("reason", "Reason", priority=1, min_width=10),
    FitColumn("method", "Method", priority=3),
    FitColumn("client", "Client", priority=2, min_width=12),
)


def history_row(entry: HistoryItem) -> dict[str, Cell]:
    """Whatever the server sent is a literal cell, the raw values this client has no words for
    included. A relying service's call reads "sshd-bastion (service)" where a sign-in's
    client program would be, with the end user's address in the IP column."""
    return {
        "at": when(entry.at),
        "event": cell(EVENTS.get(entry.event, entry.event)),
        "result": result_cell(entry.success, entry.count),
        "method": cell(METHODS.get(entry.method or "", entry.method or "-")),
        "ip": cell(entry.ip or "-"),
        "client": cell(origin(entry.client or "-", entry.service)),
        "reason": cell(reason(entry.reason)),
    }


# A session that is not yet a sign-in, in words; a full one needs none.
SESSION_KINDS = {"password_change": "new password due", "enrollment": "2FA setup only"}
SESSION_COLUMNS = (
    FitColumn("kind", "Session"),
    FitColumn("created", "Signed in", priority=1),
    FitColumn("seen", "Last seen"),
    FitColumn("ip", "IP", min_width=9),
    FitColumn("client", "Client", min_width=12),
)

FORCED_FOR_ADMIN = (
    "Two-factor authentication is forced for every account, yours too (the policy under Admin)."
)
FORCED_FOR_USER = "Your administrator requires two-factor authentication."


class HomeScreen(TfaScreen):
    """The section keys are the underlined letters of the tabs (the Admin tab's sections too:
    P, U, V, I, L); the footer keeps the rest."""

    CSS_PATH = "home.tcss"
    BINDINGS = [
        Binding("s", "tab('security')", "Security", id="security", show=False),
        Binding("h", "tab('history')", "History", id="history", show=False),
        Binding("n", "tab('sessions')", "Sessions", id="sessions", show=False),
        Binding("a", "tab('admin')", "Admin", id="admin", show=False),
        Binding("p", "admin_section('admin-policy')", "Policy", id="admin-policy", show=False),
        Binding("u", "admin_section('admin-users')", "Users", id="admin-users", show=False),
        Binding(
            "v", "admin_section('admin-services')", "Services", id="admin-services", show=False
        ),
        Binding(
            "i", "admin_section('admin-history')", "Sign-in history", id="admin-history", show=False
        ),
        Binding("l", "admin_section('admin-audit')", "Audit log", id="admin-audit", show=False),
        Binding("g", "new_codes", "New recovery codes", id="new-codes", show=False),
        Binding("x", "revoke_session", "Revoke session", id="revoke-session"),
        Binding("c", "change_password", "Change password", id="change-password"),
        Binding("r", "refresh", "Refresh", id="refresh"),
        Binding("ctrl+o", "sign_out", "Sign out", id="sign-out"),
    ]

    def __init__(self, me: Me) -> None:
        super().__init__()
        self.me = me
        self._next_before: int | None = None
        self._service: str | None = None  # the History's service filter
        self._sessions: dict[str, Session] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="security"):
            with (
                TabPane("[u]S[/u]ecurity", id="security"),
                VerticalScroll(id="security-body", can_focus=False),
            ):
                yield Static("", id="failed-banner", classes="banner hidden")
                yield Static("", id="deadline-banner", classes="banner hidden")
                yield Static("", id="status")
                yield Static("", id="codes-left")
                with Horizontal(classes="buttons"):
                    yield Button(
                        "Connect authenticator app", variant="primary", id="connect", compact=True
                    )
                    yield Button("New recovery codes", id="regenerate", compact=True)
                    yield Button("Change password", id="change-password", compact=True)
                    yield Button("Disconnect", variant="error", id="disconnect", compact=True)
                yield SecurityActivity()
            with TabPane("[u]H[/u]istory", id="history"), Vertical():
                with Horizontal(classes="toolbar"):
                    yield Select(
                        [("All", "all"), ("Successful", "ok"), ("Failed", "failed")],
                        value="all",
                        allow_blank=False,
                        id="history-filter",
                        compact=True,
                    )
                    yield Field(
                        placeholder="Service, then Enter",
                        id="history-service",
                        max_length=64,
                        compact=True,
                        tooltip="Only what this service (sshd, say) asked; empty: everything",
                    )
                    yield Button("Load older", id="older", disabled=True, compact=True)
                yield FitTableView(
                    HISTORY_COLUMNS, table_id="history-table", title="Sign-in history entry"
                )
            with TabPane("Sessio[u]n[/u]s", id="sessions"), Vertical():
                yield FitTableView(SESSION_COLUMNS, table_id="sessions-table", title="Session")
                with Horizontal(classes="buttons"):
                    yield Button(
                        "Revoke selected session (x)", id="revoke", variant="warning", compact=True
                    )
            if self.me.is_admin:
                from tfa_tui.widgets.admin_pane import AdminPane

                with TabPane("[u]A[/u]dmin", id="admin"):
                    yield AdminPane()
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"{visible(self.me.username)} @ {visible(self.tfa.api.base_url)}"
        self._deadline_timer = self.set_interval(1.0, self._watch_deadline, pause=True)
        self.show_me(self.me)
        self._focus_security()
        self.load_history(reset=True)
        self.load_sessions()

    def _focus_security(self) -> None:
        """The main action of the Security tab takes the focus, so Enter does the obvious."""
        for button in self.query("#security-body Button").results(Button):
            if button.display:
                button.focus()
                return

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("admin_section", "add_user", "add_service", "force_2fa") or (
            action == "tab" and parameters == ("admin",)
        ):
            return self.me.is_admin
        if action == "new_codes":
            return self.me.totp_enabled
        if action == "revoke_session":
            return self.query_one(TabbedContent).active == "sessions"
        return True

    @on(TabbedContent.TabActivated)
    def _tab_shown(self) -> None:
        self.refresh_bindings()  # the keys of one tab (x: revoke) show only there

    def action_revoke_session(self) -> None:
        self.revoke()

    def action_new_codes(self) -> None:
        self.regenerate()

    def action_tab(self, tab: str) -> None:
        """Open a section by key; its main control takes the focus, so keys work at once."""
        self._open(tab)
        if tab == "security":
            self._focus_security()
        elif tab in ("history", "sessions"):
            self.query_one(f"#{tab}-table").focus()

    def _open(self, tab: str) -> None:
        """Show a tab, from no focus: when a focused button's pane is hidden, Textual hands the
        focus to a sibling button, whose pane then opens again (the Security tab's buttons did
        that to the keys of the other tabs). The tab opened gives the focus out itself."""
        tabbed = self.query_one(TabbedContent)
        if tabbed.active != tab:
            self.set_focus(None)
        tabbed.active = tab

    def action_admin_section(self, section: str) -> None:
        """Open a section of the Admin tab, from any tab, as the main tabs' keys do."""
        self._open("admin")
        self._admin_pane().show_section(section)

    def _admin_pane(self) -> AdminPane:
        from tfa_tui.widgets.admin_pane import AdminPane

        return self.query_one(AdminPane)

    def action_add_user(self) -> None:
        """The palette's "Add user": Admin, Users, then the dialog, as with the button."""
        self.action_admin_section("admin-users")
        self._admin_pane().action_add_user()

    def action_add_service(self) -> None:
        """The palette's "Add service": Admin, Services, then the dialog, as with the button."""
        self.action_admin_section("admin-services")
        self._admin_pane().action_add_service()

    def action_force_2fa(self, force: bool) -> None:
        self._open("admin")
        self._admin_pane().force_2fa(force)

    @property
    def policy_forced(self) -> bool:
        """Whether 2FA is forced: as the Admin tab last loaded it, else as Home was told."""
        if self.me.is_admin:
            forced = self._admin_pane().forced
            if forced is not None:
                return forced
        return self.me.policy.force_2fa

    def action_refresh(self) -> None:
        self.refresh_me()
        self.query_one(SecurityActivity).reload()
        self.load_history(reset=True)
        self.load_sessions()
        if self.me.is_admin:
            self._admin_pane().reload()

    def on_admin_pane_policy_saved(self) -> None:
        self.refresh_me()

    def action_sign_out(self) -> None:
        self.tfa.sign_out()

    def failed(self, error: BaseException) -> None:
        self.tfa.api_failed(error)

    # Security

    def show_me(self, me: Me) -> None:
        self.me = me
        status = self.query_one("#status", Static)
        if me.totp_enabled:
            status.update(
                "[b]Two-factor authentication:[/b] [green]✔ connected[/] since"
                f" {local_time(me.totp_enabled_at)}"
            )
        else:
            status.update("[b]Two-factor authentication:[/b] [red]✘ not connected[/]")
        left = self.query_one("#codes-left", Static)
        left.set_class(not me.totp_enabled, "hidden")
        warn = me.totp_enabled and me.recovery_codes_left <= 2
        left.update(
            f"Recovery codes left: {me.recovery_codes_left}"
            + (" - [b]running low:[/b] press G to make new ones." if warn else "")
        )
        left.set_class(warn, "warning")
        self.query_one("#connect").display = not me.totp_enabled
        self.query_one("#disconnect").display = me.totp_enabled
        self.query_one("#regenerate").display = me.totp_enabled
        failed = self.query_one("#failed-banner", Static)
        count = me.failed_attempts_since_last_login
        if count and me.last_login is not None:
            failed.update(
                template(
                    f"⚠ {count} failed sign-in attempt{'s' if count != 1 else ''} since your last"
                    f" sign-in on {local_time(me.last_login.at)} from $ip. See History.",
                    ip=me.last_login.ip or "an unknown address",
                )
            )
        elif count:
            failed.update(
                f"⚠ {count} failed sign-in attempt{'s' if count != 1 else ''}"
                " before this sign-in. See History."
            )
        failed.set_class(not count, "hidden")
        self._show_deadline()

    def _show_deadline(self) -> None:
        """The policy's deadline for this account, in words for whoever reads them (the
        administrator's own policy is not "your administrator"), and only while it is ahead."""
        me = self.me
        banner = self.query_one("#deadline-banner", Static)
        deadline = None if me.totp_enabled else me.enrollment_deadline
        banner.set_class(deadline is None, "hidden")
        if deadline is None:
            self._deadline_timer.pause()
            return
        who = FORCED_FOR_ADMIN if me.is_admin else FORCED_FOR_USER
        if seconds_left(deadline):
            banner.update(
                f"⚠ {who} Set it up before {local_time(deadline)}: after that you must set it"
                " up before you can do anything else."
            )
            self._deadline_timer.resume()
        else:
            banner.update(f"⚠ {who} The time to set it up is over: set it up now.")
            self._deadline_timer.pause()

    def _watch_deadline(self) -> None:
        """The deadline passed on screen: the banner stops naming it, and the server is asked
        (one call: its rule now holds this session to the setup, which that call's answer
        leads to)."""
        deadline = self.me.enrollment_deadline
        if deadline is not None and not seconds_left(deadline):
            self._show_deadline()
            self.load_sessions()

    @work(exclusive=True, exit_on_error=False, group="me")
    async def refresh_me(self) -> None:
        try:
            self.show_me(await self.tfa.api.me())
        except ApiError as exc:
            self.failed(exc)

    @on(Button.Pressed, "#connect")
    def action_connect(self) -> None:
        from tfa_tui.screens.setup import SetupScreen

        self.tfa.switch_screen(SetupScreen())

    @on(Button.Pressed, "#change-password")
    def action_change_password(self) -> None:
        self.change_password()

    @work(exclusive=True, exit_on_error=False, group="change-password")
    async def change_password(self) -> None:
        """The dialog sends the change itself; here only what follows it: this session goes
        on, and History and Sessions show the change and the sessions it ended."""
        from tfa_tui.screens.change_password import ChangePasswordScreen

        if not await self.app.push_screen_wait(
            ChangePasswordScreen(with_code=self.me.totp_enabled)
        ):
            return
        self.notify(
            "Your password is changed. Your other sessions were signed out; this one goes on."
        )
        self.load_history(reset=True)
        self.load_sessions()

    @on(Button.Pressed, "#disconnect")
    @work(exclusive=True, exit_on_error=False, group="disconnect")
    async def disconnect(self) -> None:
        forced = self.me.policy.force_2fa
        if forced and not await self.app.push_screen_wait(
            ConfirmScreen(
                "Two-factor authentication is mandatory",
                (
                    f"{FORCED_FOR_ADMIN} If you disconnect it you will be signed out and must"
                    " set it up again at your next sign-in. To make it optional, turn the"
                    " policy off first."
                    if self.me.is_admin
                    else "Your administrator requires two-factor authentication for all"
                    " accounts. If you disconnect it you will be signed out and must set it up"
                    " again at your next sign-in."
                ),
                confirm="Disconnect and sign out",
                danger=True,
            )
        ):
            return
        policy_changed = False

        async def attempt(answer: Reauthentication) -> TotpDisabled | None:
            nonlocal policy_changed
            try:
                return await self.tfa.api.totp_disable(
                    answer.password, answer.code, acknowledge_forced_policy=forced
                )
            except PolicyRequires2fa:
                policy_changed = True  # forced meanwhile: the warning above was not shown
                return None

        result = await self.app.push_screen_wait(
            ReauthScreen[TotpDisabled | None](
                "Disconnect two-factor authentication",
                "Confirm it is you. Your recovery codes stop working too.",
                "Disconnect",
                attempt,
            )
        )
        if policy_changed:
            self.notify("2FA was made mandatory meanwhile: read the warning.", severity="warning")
            self.refresh_me()
            return
        if result is None:
            return
        if self.tfa.demo is not None:
            self.tfa.demo.remember_secret(self.me.username, None)
        if result.logged_out:
            self.tfa.session_ended(
                "Two-factor authentication was disconnected and you were signed out."
                " Set it up again at your next sign-in."
            )
            return
        self.notify("Two-factor authentication is disconnected.")
        self.refresh_me()

    @on(Button.Pressed, "#regenerate")
    @work(exclusive=True, exit_on_error=False, group="regenerate")
    async def regenerate(self) -> None:
        codes = await self.app.push_screen_wait(
            ReauthScreen(
                "New recovery codes",
                "Confirm it is you. Your current recovery codes stop working.",
                "Make new codes",
                lambda answer: self.tfa.api.regenerate_recovery_codes(answer.password, answer.code),
            )
        )
        if codes is None:
            return
        from tfa_tui.screens.recovery_codes import RecoveryCodesScreen

        self.tfa.switch_screen(RecoveryCodesScreen(codes, self.me.username))

    # History

    def _history_filter(self) -> bool | None:
        value = self.query_one("#history-filter", Select).value
        return {"ok": True, "failed": False}.get(str(value))

    @on(Select.Changed, "#history-filter")
    @on(Input.Submitted, "#history-service")
    def _filter_changed(self) -> None:
        # Applied on Enter, and kept for "Load older" whatever is typed meanwhile.
        self._service = self.query_one("#history-service", Input).value.strip() or None
        self.load_history(reset=True)

    @on(Button.Pressed, "#older")
    def _older(self) -> None:
        self.load_history(reset=False)

    @work(exclusive=True, exit_on_error=False, group="history", description="load history")
    async def load_history(self, *, reset: bool) -> None:
        table = self.query_one("#history-table", FitTable)
        before = None if reset else self._next_before
        table.loading = True
        try:
            page = await self.tfa.api.history(
                success=self._history_filter(),
                service=self._service,
                limit=PAGE,
                before=before,
            )
        except ApiError as exc:
            self.failed(exc)
            return
        finally:
            table.loading = False
        rows = {str(entry.id): history_row(entry) for entry in page.items}
        if reset:
            table.set_records(rows)
        else:
            table.add_records(rows)
        self._next_before = page.next_before
        older = self.query_one("#older", Button)
        older.disabled = page.next_before is None
        older.label = "Load older" if page.next_before is not None else "No older entries"

    # Sessions

    @work(exclusive=True, exit_on_error=False, group="sessions")
    async def load_sessions(self) -> None:
        table = self.query_one("#sessions-table", FitTable)
        table.loading = True
        try:
            sessions = await self.tfa.api.sessions()
        except ApiError as exc:
            self.failed(exc)
            return
        finally:
            table.loading = False
        self._sessions = {str(session.id): session for session in sessions}
        table.set_records(
            {
                str(session.id): {
                    "kind": "▶ this session"
                    if session.current
                    else SESSION_KINDS.get(session.kind, ""),
                    "created": when(session.created_at),
                    "seen": when(session.last_seen_at),
                    "ip": cell(session.ip),
                    "client": cell(session.client),
                }
                for session in sessions
            }
        )

    @on(Button.Pressed, "#revoke")
    @work(exclusive=True, exit_on_error=False, group="revoke")
    async def revoke(self) -> None:
        key = self.query_one("#sessions-table", FitTable).selected_key
        session = self._sessions.get(key or "")
        if key is None or session is None:
            return
        current = session.current
        if not await self.app.push_screen_wait(
            ConfirmScreen(
                "Revoke this session?",
                # The client is any User-Agent: ConfirmScreen shows it as plain text.
                f"{visible(session.client)}\nfrom {visible(session.ip)}, signed in"
                f" {local_time(session.created_at)}, last seen"
                f" {local_time(session.last_seen_at)}.\n\n"
                + (
                    "This is the session you are using: you will be signed out here."
                    if current
                    else "Whoever uses that session will be signed out."
                ),
                confirm="Revoke",
                danger=True,
            )
        ):
            return
        try:
            await self.tfa.api.revoke_session(int(key))
        except ApiError as exc:
            self.failed(exc)
            return
        if current:
            self.tfa.session_ended("You revoked this session.")
            return
        self.notify("Session revoked.")
        self.load_sessions()
