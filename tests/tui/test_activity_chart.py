"""Issue 15, Charts: sign-in activity per day in the Security tab and in Admin > Sign-in
history, read back from the screen for a history each test builds on known days.

The server is the real one on 127.0.0.1 (port 0) with its fake clock; the history is written
through the API (right and wrong passwords), so the numbers come from the server's own
aggregation. The reader's time zone is a fixed one, five and a half hours east of UTC, so a
test can tell whether the days are the reader's or the server's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Input

from tfa_protocol.types import Activity, DayActivity, LastFailure
from tfa_tui.screens.home import HomeScreen
from tfa_tui.widgets.activity_chart import (
    ActivityChart,
    SecurityActivity,
    local_utc_offset,
)

from ..conftest import START, RunningServer, login
from .conftest import at_home, running_app, settle, wait_for
from .test_visibility import screen_cells

DAY = 86_400.0
HOUR = 3_600.0
# 2026-11-28 12:00 UTC, the fake clock's start, is 17:30 here.
ZONE = "IST-5:30"
TODAY = date(2026, 11, 28)


@pytest.fixture
def reader_zone() -> Iterator[None]:
    """The reader's zone (POSIX rule: no tz database needed); the process's zone restored."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = ZONE
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()


async def attempts(server: RunningServer, name: str, *, right: int = 0, wrong: int = 0) -> None:
    """Sign-ins and wrong passwords, a minute apart, at the clock's time."""
    async with server.client() as http:
        for _ in range(right):
            await login(http, name)
            server.clock.advance(60)
        for _ in range(wrong):
            refused = await http.post(
                "/api/v1/login", json={"username": name, "password": "not the password"}
            )
            assert refused.status_code == 401, refused.text
            server.clock.advance(60)


async def build_history(server: RunningServer, name: str) -> None:
    """bob's month, in the reader's days (the app's own sign-in, at the start, adds one more
    sign-in today):

    - 2026-11-19: 2 sign-ins, 1 wrong password
    - 2026-11-26: 3 wrong passwords
    - 2026-11-28 01:30 (still 11-27 in UTC): 1 wrong password, the last failure
    """
    server.clock.value = START - 9 * DAY
    await server.add_user(name)
    await attempts(server, name, right=2, wrong=1)
    server.clock.value = START - 2 * DAY
    await attempts(server, name, wrong=3)
    server.clock.value = START - 16 * HOUR  # 2026-11-27 20:00 UTC, 11-28 01:30 here
    await attempts(server, name, wrong=1)
    server.clock.value = START


def expected(pairs: dict[date, tuple[int, int]]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The per-day (succeeded, failed) rows of the last 30 days, oldest first."""
    days = [TODAY - timedelta(days=29 - index) for index in range(30)]
    return (
        tuple(pairs.get(day, (0, 0))[0] for day in days),
        tuple(pairs.get(day, (0, 0))[1] for day in days),
    )


def screen_lines(app: App[None]) -> list[str]:
    """The screen's text as drawn, a glyph only where it stands out from its background."""
    return ["".join(cell.glyph for cell in row) for row in screen_cells(app)]  # type: ignore[arg-type]


async def test_the_security_tab_charts_the_readers_days(
    server: RunningServer, reader_zone: None
) -> None:
    """Issue 15, Charts (Security tab): the month built by the test, per day of the reader's
    time zone: the sparklines hold those counts, today's words and the last failure say them,
    and the dates under the bars are the first and last day."""
    await build_history(server, "bob")
    assert local_utc_offset() == 330
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "bob")
        chart = app.screen.query_one(SecurityActivity).query_one(ActivityChart)
        succeeded, failed = expected(
            {
                date(2026, 11, 19): (2, 1),
                date(2026, 11, 26): (0, 3),
                TODAY: (1, 1),
            }
        )
        assert chart.succeeded == succeeded
        assert chart.failed == failed
        assert chart.today_text == "Today: 1 sign-in, 1 failed attempt."
        assert chart.last_failure_text == (
            "Last failed attempt: 2026-11-28 01:30 from 127.0.0.1 (wrong password)"
        )
        lines = screen_lines(app)
        assert any("Sign-ins, last 30 days" in line for line in lines)
        [axis] = [line for line in lines if "2026-10-30" in line]
        assert axis.rstrip().endswith("2026-11-28")
        # The bars as drawn: one column a day, the busiest day full, quiet days at the bottom.
        [failed_row] = [line for line in lines if "✘ Failed" in line]
        bars = failed_row.split("✘ Failed")[1].strip()[:30]
        assert bars[27] == "█"
        assert bars[29] != "▁"
        assert bars[28] == "▁"
        assert "most 3 a day" in failed_row
        # At 80x24 beside the rest of the tab: all of it on screen, nothing to scroll sideways.
        body = app.screen.query_one("#security-body")
        assert body.max_scroll_x == 0
        assert app.screen.region.contains_region(chart.region)


async def test_the_chart_follows_a_refresh(server: RunningServer, reader_zone: None) -> None:
    """Issue 15, Charts (Security tab): Home's `r` loads the activity again: two wrong
    passwords typed meanwhile show as today's."""
    await build_history(server, "bob")
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "bob")
        chart = app.screen.query_one(SecurityActivity).query_one(ActivityChart)
        assert chart.failed[-1] == 1
        await attempts(server, "bob", wrong=2)
        await pilot.press("r")
        await settle(app, pilot)
        assert chart.failed[-1] == 3
        assert chart.today_text == "Today: 1 sign-in, 3 failed attempts."


ADMIN_PW = "root-pw-1"


async def build_attack(server: RunningServer) -> None:
    """Refused attempts an administrator should notice, all from 127.0.0.1:

    - 3 days ago (2026-11-25 here): carol, 4 wrong passwords
    - 2 hours ago (today here): bob, 3 wrong passwords; "mallory", no account, 2 attempts
    """
    server.clock.value = START - 3 * DAY
    await server.add_user("admin", ADMIN_PW, admin=True)
    for name in ("bob", "carol"):
        await server.add_user(name)
    await attempts(server, "carol", wrong=4)
    server.clock.value = START - 2 * HOUR
    await attempts(server, "bob", wrong=3)
    await attempts(server, "mallory", wrong=2)
    server.clock.value = START


def rows(table: DataTable[object]) -> list[tuple[str, ...]]:
    return [tuple(str(value) for value in table.get_row_at(row)) for row in range(table.row_count)]


async def test_admin_history_shows_everyones_days_and_who_is_refused_most(
    server: RunningServer, reader_zone: None
) -> None:
    """Issue 15, Charts (Admin > Sign-in history): everyone's days, and the addresses and
    names with the most refused attempts in the last 24 hours, then the last 7 days; a name
    that is no account says so. Acting from the list: Enter on an account opens its own
    screen, on a name that is no account shows its attempts below (the user filter says
    so); the panel and the table both on an 80x24 screen with nothing to scroll sideways."""
    from tfa_tui.screens.user_detail import UserDetailScreen
    from tfa_tui.widgets.activity_panel import ActivityPanel

    await build_attack(server)
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "admin", ADMIN_PW)
        await pilot.press("i")
        await settle(app, pilot)
        panel = app.screen.query_one(ActivityPanel)
        chart = panel.query_one(ActivityChart)
        succeeded, failed = expected({date(2026, 11, 25): (0, 4), TODAY: (1, 5)})
        assert (chart.succeeded, chart.failed) == (succeeded, failed)
        assert chart.today_text == "Today: 1 sign-in, 5 failed attempts."
        addresses = panel.query_one("#leaders-addresses", DataTable)
        accounts = panel.query_one("#leaders-accounts", DataTable)
        assert rows(addresses) == [("127.0.0.1", "5", "15:34")]
        assert rows(accounts) == [("bob", "3", ""), ("mallory", "2", "no account")]
        await pilot.click("#leaders-period")
        await pilot.press("down", "enter")
        await settle(app, pilot)
        assert rows(accounts) == [
            ("carol", "4", ""),
            ("bob", "3", ""),
            ("mallory", "2", "no account"),
        ]
        assert rows(addresses) == [("127.0.0.1", "9", "15:34")]
        accounts.focus()
        await pilot.press("enter")  # carol, the first of the week: her own screen
        await wait_for(pilot, lambda: isinstance(app.screen, UserDetailScreen), "carol's screen")
        detail = app.screen
        assert isinstance(detail, UserDetailScreen)
        assert detail.user.username == "carol"
        await pilot.press("escape")
        await settle(app, pilot)
        assert not isinstance(app.screen, UserDetailScreen)
        await pilot.press("down", "down", "enter")  # mallory, no account: her attempts
        await settle(app, pilot)
        assert app.screen.query_one("#admin-user-filter", Input).value == "mallory"
        history = app.screen.query_one("#admin-history-table", DataTable)
        await wait_for(pilot, lambda: history.row_count > 0, "mallory's attempts")
        names = {str(history.get_row_at(row)[0]) for row in range(history.row_count)}
        assert names == {"mallory"}
        assert app.focused is history
        # Everything on screen at 80x24: the chart, the lists and some rows of the history.
        screen = app.screen.region
        for widget in (panel, history):
            assert screen.contains_region(widget.region), widget
        assert history.region.height >= 4
        for table in (accounts, panel.query_one("#leaders-addresses", DataTable)):
            assert table.max_scroll_x == 0, table


class ChartApp(App[None]):
    """The chart alone, given its data by hand: how it draws, without a server."""

    def __init__(self, activity: Activity) -> None:
        super().__init__()
        self.activity = activity

    def compose(self) -> ComposeResult:
        yield ActivityChart("Sign-ins")

    def on_mount(self) -> None:
        self.query_one(ActivityChart).show(self.activity)


def month(failed: dict[int, int], last: LastFailure | None = None) -> Activity:
    """30 days ending today; `failed` by day index (0 the oldest), one sign-in every 3rd day."""
    first = TODAY - timedelta(days=29)
    return Activity(
        days=[
            DayActivity(
                day=first + timedelta(days=index),
                succeeded=1 if index % 3 == 0 else 0,
                failed=failed.get(index, 0),
            )
            for index in range(30)
        ],
        last_failure=last,
    )


@pytest.fixture(params=[True, False], ids=["NO_COLOR", "colour"])
def no_color(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Textual reads NO_COLOR when the app is made: set (or cleared) before it."""
    if request.param:
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    return bool(request.param)


async def test_the_chart_reads_without_colour(no_color: bool) -> None:
    """Issue 15, Charts (NO_COLOR): with every colour gone the failed attempts are still told
    from the sign-ins: each row has its label, ✔ or ✘, its own line and its largest value, and
    the bars stand out from the background (a day with one failure is above the baseline)."""
    app = ChartApp(month({10: 1, 20: 8}))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.no_color is no_color
        lines = screen_lines(app)
        [signed_in] = [line for line in lines if line.startswith("✔ Signed in")]
        [failed] = [line for line in lines if line.startswith("✘ Failed")]
        assert lines.index(failed) == lines.index(signed_in) + 1
        assert signed_in[12:42] == "█▁▁" * 10
        bars = failed[12:42]
        assert bars[20] == "█"
        assert bars[10] not in "▁ "
        assert set(bars[:10]) == {"▁"}
        assert failed[42:].strip() == "most 8 a day"
        assert signed_in[42:].strip() == "most 1 a day"


async def test_a_quiet_month_says_so_and_server_words_stay_literal() -> None:
    """Issue 15, Charts: no attempt in 30 days reads as such (flat bars, words saying so);
    and the last failure's address and reason, the server's words, are shown as they are."""
    app = ChartApp(month({}))
    async with app.run_test(size=(80, 24)) as pilot:
        chart = app.query_one(ActivityChart)
        chart.show(
            Activity(
                days=[replace_counts(day) for day in month({}).days],
                last_failure=None,
            )
        )
        await pilot.pause()
        assert chart.succeeded == (0,) * 30
        assert chart.failed == (0,) * 30
        assert chart.today_text == "No sign-in attempts in the last 30 days."
        assert chart.last_failure_text == "Last failed attempt: none."
        lines = screen_lines(app)
        assert any(line.startswith("✘ Failed    " + "▁" * 30 + " none") for line in lines)
        odd = LastFailure(
            at=datetime(2026, 11, 28, 9, 0, tzinfo=UTC),
            ip="[b]2001:db8::1",
            event="password",
            reason="[/x] new\x1b",
        )
        chart.show(month({29: 1}, odd))
        await pilot.pause()
        assert "from [b]2001:db8::1 ([/x] new\\x1b)" in chart.last_failure_text


def replace_counts(day: DayActivity) -> DayActivity:
    return DayActivity(day=day.day, succeeded=0, failed=0)


async def test_a_failed_load_is_said_in_words(server: RunningServer) -> None:
    """Issue 15, Charts (Security tab): the server gone, `r` leaves the chart saying so in
    words where today's counts were, and no traceback."""
    await server.add_user("bob")
    async with running_app(server) as (app, pilot):
        await at_home(app, pilot, server, "bob")
        chart = app.screen.query_one(SecurityActivity).query_one(ActivityChart)
        assert chart.today_text.startswith("Today: 1 sign-in")
        await server.app.stop()
        await pilot.press("r")
        await settle(app, pilot)
        assert chart.today_text.startswith("Sign-in activity not loaded: ")
        assert isinstance(app.screen, HomeScreen)
