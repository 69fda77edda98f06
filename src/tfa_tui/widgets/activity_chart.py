"""Sign-in activity as a chart: successful and failed attempts per day, as two labelled
sparklines (Textual's own `Sparkline`) with their dates and largest values, today's counts in
words and the last failed attempt.

`ActivityChart` only draws an `Activity` it is given (one account's, or everyone's);
`SecurityActivity` loads the reader's own for Home's Security tab.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline, Static

from tfa_protocol.types import Activity, LastFailure
from tfa_tui.api.errors import LEAVING, ApiError
from tfa_tui.plain import visible
from tfa_tui.words import EVENTS, describe, local_time, reason

if TYPE_CHECKING:
    from tfa_tui.app import TfaApp

LABEL_WIDTH = 12  # "✔ Signed in " and "✘ Failed    ": the bars start in one column
DATE_WIDTH = 10  # 2026-11-28
MOST_OFFSET = 840  # the API's bound on utc_offset, in minutes (UTC-14 to UTC+14)


def local_utc_offset(moment: datetime | None = None) -> int:
    """This computer's time zone as the API takes it: minutes east of UTC, a multiple of 15
    (every zone in use is), so the server's days start at the reader's midnight."""
    offset = (moment or datetime.now().astimezone()).astimezone().utcoffset()
    minutes = round(offset.total_seconds() / 60 / 15) * 15 if offset is not None else 0
    return max(-MOST_OFFSET, min(MOST_OFFSET, minutes))


def _plural(count: int, one: str, many: str) -> str:
    if count == 0:
        return f"no {many}"
    return f"{count:,} {one if count == 1 else many}"


def today_words(activity: Activity) -> str:
    """The newest day of the answer is today, in the reader's time zone."""
    if not activity.days:
        return "Today: nothing to show."
    if not any(day.succeeded or day.failed for day in activity.days):
        return f"No sign-in attempts in the last {_days(len(activity.days))}."
    today = activity.days[-1]
    return (
        f"Today: {_plural(today.succeeded, 'sign-in', 'sign-ins')},"
        f" {_plural(today.failed, 'failed attempt', 'failed attempts')}."
    )


def last_failure_words(failure: LastFailure | None) -> Text:
    """When, from where and why: the address and the reason come from the server, so they
    stay literal text."""
    if failure is None:
        return Text("Last failed attempt: none.")
    why = reason(failure.reason) if failure.reason else EVENTS.get(failure.event, failure.event)
    return Text.assemble(
        "Last failed attempt: ",
        (local_time(failure.at), "bold"),
        " from ",
        (visible(failure.ip or "an unknown address"), "bold"),
        f" ({visible(why)})",
        no_wrap=True,
        overflow="ellipsis",
    )


def _days(count: int) -> str:
    return f"{count} day{'' if count == 1 else 's'}"


class DayBars(Sparkline):
    """One bar per day, measured from zero against the busiest day of the row.

    Textual's sparkline scales from the smallest value to the largest, so a quiet month with a
    sign-in every day would draw its quietest day as nothing. A zero beside each day pins the
    bottom to zero (the bar of a day is the larger of its pair), and a day with any attempt
    gets at least the second step, so one failure never looks like none.
    """

    # The lowest step that is not the baseline: int(ratio * 7) >= 1 from 1/7 on.
    LEAST_SHOWN = 1.5 / 7

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__([], summary_function=self._bar, id=id, classes=classes)
        self.counts: tuple[int, ...] = ()

    def _bar(self, pair: Sequence[float]) -> float:
        value = max(pair)
        top = max(self.counts, default=0)
        return 0.0 if value <= 0 else max(value, top * self.LEAST_SHOWN)

    def show(self, counts: Sequence[int]) -> None:
        self.counts = tuple(counts)
        self.styles.width = max(1, len(self.counts))
        self.data = [value for count in self.counts for value in (0, count)]
        self.refresh()


class ActivityChart(Vertical):
    """An `Activity` (one account's or everyone's) drawn; `show()` gives it the data.

    Without colour the two rows still read: each has its label (✔ and ✘ as well as words), its
    own line and its largest value, and the dates of the first and last day sit under the bars.
    """

    DEFAULT_CSS = """
    ActivityChart { height: auto; width: auto; }
    ActivityChart .chart-title { text-style: bold; width: auto; }
    ActivityChart .chart-row { height: 1; width: auto; }
    ActivityChart .chart-label { width: 12; }
    ActivityChart .chart-most { width: auto; margin-left: 1; color: $text-muted; }
    ActivityChart .chart-axis { margin-left: 12; width: auto; color: $text-muted; }
    ActivityChart .chart-today, ActivityChart .chart-last { width: auto; }
    ActivityChart #chart-succeeded > .sparkline--max-color { color: $success; }
    ActivityChart #chart-succeeded > .sparkline--min-color { color: $success 50%; }
    ActivityChart #chart-failed > .sparkline--max-color { color: $error; }
    ActivityChart #chart-failed > .sparkline--min-color { color: $error 50%; }
    """

    def __init__(
        self,
        title: str = "Sign-ins",
        *,
        last_failure: bool = True,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self.with_last_failure = last_failure
        self.activity: Activity | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text(visible(self.title)), classes="chart-title")
        with Horizontal(classes="chart-row"):
            yield Static("✔ Signed in", classes="chart-label")
            yield DayBars(id="chart-succeeded")
            yield Static("", id="chart-succeeded-most", classes="chart-most")
        with Horizontal(classes="chart-row"):
            yield Static("✘ Failed", classes="chart-label")
            yield DayBars(id="chart-failed")
            yield Static("", id="chart-failed-most", classes="chart-most")
        yield Static("", classes="chart-axis")
        yield Static("Not loaded yet.", classes="chart-today")
        last = Static("", classes="chart-last")
        last.display = self.with_last_failure
        yield last

    @property
    def succeeded(self) -> tuple[int, ...]:
        return self.query_one("#chart-succeeded", DayBars).counts

    @property
    def failed(self) -> tuple[int, ...]:
        return self.query_one("#chart-failed", DayBars).counts

    @property
    def today_text(self) -> str:
        return str(self.query_one(".chart-today", Static).content)

    @property
    def last_failure_text(self) -> str:
        return str(self.query_one(".chart-last", Static).content)

    def show(self, activity: Activity) -> None:
        self.activity = activity
        days = activity.days
        self.query_one(".chart-title", Static).update(
            Text(visible(f"{self.title}, last {_days(len(days))}"))
        )
        for name in ("succeeded", "failed"):
            counts = [getattr(day, name) for day in days]
            self.query_one(f"#chart-{name}", DayBars).show(counts)
            most = max(counts, default=0)
            self.query_one(f"#chart-{name}-most", Static).update(
                f"most {most:,} a day" if most else "none"
            )
        self.query_one(".chart-axis", Static).update(self._axis(activity))
        self.query_one(".chart-today", Static).update(Text(today_words(activity)))
        self.query_one(".chart-last", Static).update(last_failure_words(activity.last_failure))

    def failed_to_load(self, error: ApiError) -> None:
        """What went wrong, where the numbers would be (the chart keeps what it had)."""
        words = f"Sign-in activity not loaded: {describe(error)}"
        self.query_one(".chart-today", Static).update(Text(visible(words)))

    @staticmethod
    def _axis(activity: Activity) -> str:
        """The first and the last day under the ends of the bars, or "first to last" when the
        bars are too short to hold both."""
        if not activity.days:
            return ""
        first, last = (day.day.isoformat() for day in (activity.days[0], activity.days[-1]))
        width = len(activity.days)
        if width == 1:
            return first
        if width >= 2 * DATE_WIDTH + 1:
            return first + last.rjust(width - DATE_WIDTH)
        return f"{first} to {last}"


class SecurityActivity(Vertical):
    """The reader's own sign-ins for Home's Security tab: loads on mount and on `reload()`
    (Home's `r`)."""

    DEFAULT_CSS = """
    SecurityActivity { height: auto; margin-top: 1; }
    """

    def __init__(self) -> None:
        super().__init__(id="security-activity")

    @property
    def tfa(self) -> TfaApp:
        return cast("TfaApp", self.app)

    def compose(self) -> ComposeResult:
        yield ActivityChart("Sign-ins", id="my-activity")

    def on_mount(self) -> None:
        self.reload()

    @work(exclusive=True, exit_on_error=False, group="my-activity")
    async def reload(self) -> None:
        chart = self.query_one(ActivityChart)
        chart.loading = True
        try:
            activity = await self.tfa.api.activity(days=30, utc_offset=local_utc_offset())
        except ApiError as exc:
            if isinstance(exc, LEAVING):
                self.tfa.api_failed(exc)  # the session's state: the app's one way for it
            chart.failed_to_load(exc)
            return
        finally:
            chart.loading = False
        chart.show(activity)
