"""Admin > Sign-in history, above the table: everyone's sign-ins per day, and the addresses and
account names with the most refused attempts in the last 24 hours or 7 days, so an attack shows
at a glance. Enter on an account posts `AccountChosen`, which the Admin pane answers by showing
that account's history below."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Select, Static

from tfa_protocol.types import AdminActivity, FailureCount
from tfa_tui import words
from tfa_tui.api.errors import ApiError
from tfa_tui.plain import cell
from tfa_tui.widgets.activity_chart import ActivityChart, local_utc_offset
from tfa_tui.words import local_time

if TYPE_CHECKING:
    from tfa_tui.app import TfaApp

PERIODS = {"day": "last 24 hours", "week": "last 7 days"}
NAME_CELL = 16  # at 80 columns two lists side by side: a long name is cut, Enter uses it whole


def short_time(failure: FailureCount, today: str) -> str:
    """The time alone when it is today, else the day too (the minutes matter in an attack)."""
    moment = local_time(failure.last_at)
    return moment[11:] if moment.startswith(today) else moment[5:]


def address_row(failure: FailureCount, today: str) -> tuple[Text, str, str]:
    name = cell(failure.name)
    name.truncate(NAME_CELL, overflow="ellipsis")  # an IPv6 address; the history has it whole
    return name, f"{failure.failed:,}", short_time(failure, today)


def account_row(failure: FailureCount) -> tuple[Text, str, str]:
    """A name that is no account (someone guessing names) says so in words."""
    name = cell(failure.name)
    name.truncate(NAME_CELL, overflow="ellipsis")
    return name, f"{failure.failed:,}", "" if failure.known_user else "no account"


class ActivityPanel(Vertical):
    """Everyone's activity, loaded by `reload()`: the Admin pane calls it with its own
    sections' loads (when it opens, and on Home's `r`)."""

    DEFAULT_CSS = """
    ActivityPanel { height: auto; }
    ActivityPanel .activity-top { height: auto; }
    ActivityPanel .leaders-side { width: 1fr; height: auto; margin-left: 2; }
    ActivityPanel .leaders-side Static { color: $text-muted; }
    ActivityPanel #leaders-period { width: 19; }
    ActivityPanel .leaders { height: auto; }
    /* Ids outrank the Admin pane's rule for its tables (a whole-height table, a margin). */
    ActivityPanel #leaders-addresses, ActivityPanel #leaders-accounts {
        height: auto; max-height: 6; width: 1fr; margin-top: 0;
    }
    ActivityPanel #leaders-accounts { margin-left: 2; }
    ActivityPanel #leaders-none { color: $text-muted; }
    """

    class AccountChosen(Message):
        """The administrator chose an account among the most refused: act on it."""

        def __init__(self, username: str, known_user: bool) -> None:
            super().__init__()
            self.username = username
            self.known_user = known_user

    def __init__(self) -> None:
        super().__init__(id="admin-activity")
        self.activity: AdminActivity | None = None

    @property
    def tfa(self) -> TfaApp:
        return cast("TfaApp", self.app)

    def compose(self) -> ComposeResult:
        with Horizontal(classes="activity-top"):
            yield ActivityChart("Everyone's sign-ins", last_failure=False, id="admin-chart")
            with Vertical(classes="leaders-side"):
                yield Static("Most failed attempts:")
                yield Select(
                    [(label, key) for key, label in PERIODS.items()],
                    value="day",
                    allow_blank=False,
                    id="leaders-period",
                    compact=True,
                )
                yield Static("Enter on an account: open it and act on it.")
        with Horizontal(classes="leaders"):
            yield DataTable(id="leaders-addresses", cursor_type="row")
            yield DataTable(id="leaders-accounts", cursor_type="row")
        yield Static("", id="leaders-none")

    def on_mount(self) -> None:
        self.query_one("#leaders-addresses", DataTable).add_columns("Address", "Failed", "Last")
        self.query_one("#leaders-none").display = False  # until an answer says there are none
        self.query_one("#leaders-accounts", DataTable).add_columns("Account", "Failed", "")

    @property
    def chart(self) -> ActivityChart:
        return self.query_one("#admin-chart", ActivityChart)

    def period(self) -> str:
        return str(self.query_one("#leaders-period", Select).value)

    @work(exclusive=True, exit_on_error=False, group="admin-activity")
    async def reload(self) -> None:
        self.loading = True
        try:
            activity = await self.tfa.api.admin_activity(days=30, utc_offset=local_utc_offset())
        except ApiError as exc:
            self.chart.failed_to_load(exc)
            self.tfa.api_failed(exc)
            return
        finally:
            self.loading = False
        self.activity = activity
        self.chart.show(activity)
        self.show_leaders()

    @on(Select.Changed, "#leaders-period")
    def show_leaders(self) -> None:
        activity = self.activity
        if activity is None:
            return
        leaders = activity.last_24_hours if self.period() == "day" else activity.last_7_days
        today = local_time(words.utc_now())[:10]  # the tests' clock, in tests
        for name, failures in (("addresses", leaders.addresses), ("accounts", leaders.accounts)):
            table = cast("DataTable[str | Text]", self.query_one(f"#leaders-{name}", DataTable))
            table.clear()
            for failure in failures:
                row = account_row(failure) if name == "accounts" else address_row(failure, today)
                table.add_row(*row, key=failure.name)
        empty = not leaders.addresses and not leaders.accounts
        none = self.query_one("#leaders-none", Static)
        none.display = empty
        none.update(f"No failed attempts in the {PERIODS[self.period()]}.")

    @on(DataTable.RowSelected, "#leaders-accounts")
    def _account_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        activity = self.activity
        name = event.row_key.value
        if activity is None or name is None:
            return
        known = {
            failure.name: failure.known_user
            for leaders in (activity.last_24_hours, activity.last_7_days)
            for failure in leaders.accounts
        }
        self.post_message(self.AccountChosen(name, known.get(name, False)))
