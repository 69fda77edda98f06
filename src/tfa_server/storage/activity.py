"""Sign-in activity: per-day sums from the rollup, and the refused attempts that stand out.

The rollup (table `activity`, schema version 5) holds completed sign-ins and refused attempts
per quarter hour of UTC, per account and for everyone (scope 0); triggers keep it with every
history write. The lists of most refused addresses and names read the refused rows of a
window through the partial indexes over `success = 0`, never the whole history.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from tfa_server.storage.schema import BUCKET_SECONDS, FAILURE_EVENTS

EVERYONE = 0  # the scope of everyone's sums; accounts' scopes are their ids (from 1)
BUCKETS_PER_DAY = 86_400 // BUCKET_SECONDS
LEADERS = 5


@dataclass(frozen=True, slots=True)
class DayRange:
    """`days` days ending with today in a zone `utc_offset` minutes east of UTC, as buckets."""

    first_bucket: int
    days: int

    @property
    def end_bucket(self) -> int:
        return self.first_bucket + self.days * BUCKETS_PER_DAY


def day_range(now: float, days: int, utc_offset: int) -> tuple[DayRange, float]:
    """The buckets of the range, and the first day's midnight as local seconds (UTC epoch
    shifted by the offset), from which the caller names the days."""
    shift = utc_offset * 60
    local_now = now + shift
    today = local_now - local_now % 86_400
    first_local = today - (days - 1) * 86_400
    first_bucket = int((first_local - shift) // BUCKET_SECONDS)
    return DayRange(first_bucket, days), first_local


def per_day(conn: sqlite3.Connection, scope: int, span: DayRange) -> list[tuple[int, int]]:
    """(succeeded, failed) for each day of the span, oldest first, zeros included."""
    sums = [(0, 0)] * span.days
    rows = conn.execute(
        "SELECT (bucket - ?) / ? AS day, SUM(succeeded), SUM(failed) FROM activity"
        " WHERE scope = ? AND bucket >= ? AND bucket < ? GROUP BY day",
        (span.first_bucket, BUCKETS_PER_DAY, scope, span.first_bucket, span.end_bucket),
    )
    for day, succeeded, failed in rows:
        sums[day] = (int(succeeded), int(failed))
    return sums


_REFUSED = f"success = 0 AND event IN {FAILURE_EVENTS}"
_LAST_FAILURE = (
    "SELECT at, ip, event, reason FROM login_history INDEXED BY history_failures"  # noqa: S608 fixed text
    f" WHERE {_REFUSED} ORDER BY at DESC, id DESC LIMIT 1"
)
_LAST_FAILURE_OF = (
    "SELECT at, ip, event, reason FROM login_history INDEXED BY history_failures_by_user"  # noqa: S608 fixed text
    f" WHERE user_id = ? AND {_REFUSED} ORDER BY at DESC, id DESC LIMIT 1"
)
_WINDOW = f"login_history INDEXED BY history_failures WHERE {_REFUSED} AND at >= ?"
_WINDOW_OF = (
    "login_history INDEXED BY history_failures_by_user"
    f" WHERE user_id = ? AND {_REFUSED} AND at >= ?"
)
_ORDER = f"ORDER BY failed DESC, last_at DESC, name LIMIT {LEADERS}"
_ADDRESSES = (
    "SELECT ip AS name, SUM(count) AS failed, MAX(at) AS last_at, 0 AS known_user"  # noqa: S608 fixed text
    " FROM {source} GROUP BY ip " + _ORDER
)
_ACCOUNTS = (
    "SELECT h.name, h.failed, h.last_at,"  # noqa: S608 fixed text
    " EXISTS (SELECT 1 FROM users WHERE users.username = h.name) AS known_user FROM"
    " (SELECT username AS name, SUM(count) AS failed, MAX(at) AS last_at FROM {source}"
    f" GROUP BY username {_ORDER}) AS h {_ORDER}"
)


def last_failure(conn: sqlite3.Connection, user_id: int | None) -> sqlite3.Row | None:
    """The newest refused attempt: the account's, or anyone's."""
    if user_id is None:
        return conn.execute(_LAST_FAILURE).fetchone()  # type: ignore[no-any-return]
    return conn.execute(_LAST_FAILURE_OF, (user_id,)).fetchone()  # type: ignore[no-any-return]


def leaders(
    conn: sqlite3.Connection, since: float, user_id: int | None
) -> tuple[list[sqlite3.Row], list[sqlite3.Row]]:
    """The addresses and the attempted names with the most refused attempts since `since`
    (an account's only, with `user_id`), most first, the most recent first among equals;
    rows of (name, failed, last_at, known_user)."""
    source, params = (_WINDOW, (since,)) if user_id is None else (_WINDOW_OF, (user_id, since))
    addresses = conn.execute(_ADDRESSES.format(source=source), params).fetchall()
    accounts = conn.execute(_ACCOUNTS.format(source=source), params).fetchall()
    return addresses, accounts
