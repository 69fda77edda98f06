"""Sign-in activity: per-day sums from the rollup, and the refused attempts that stand out.

The rollup (table `activity`, schema version 5) holds completed sign-ins and refused attempts
per quarter hour of UTC, per account and for everyone (scope 0); triggers keep it with every
history write. The lists of most refused addresses and names read the refused rows of a
window through the partial indexes over `success = 0`, never the whole history.
"""

from __future__ import annotations

from dataclasses import dataclass

from tfa_server.storage.database import POSTGRESQL, SQLITE, Connection, Dialect, Row
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


def per_day(conn: Connection, scope: int, span: DayRange) -> list[tuple[int, int]]:
    """(succeeded, failed) for each day of the span, oldest first, zeros included."""
    sums = [(0, 0)] * span.days
    rows = conn.execute(
        "SELECT (bucket - $1) / $2 AS day, SUM(succeeded), SUM(failed) FROM activity"
        " WHERE scope = $3 AND bucket >= $4 AND bucket < $5 GROUP BY day",
        (span.first_bucket, BUCKETS_PER_DAY, scope, span.first_bucket, span.end_bucket),
    )
    for day, succeeded, failed in rows:
        sums[day] = (int(succeeded), int(failed))
    return sums


_REFUSED = f"success = 0 AND event IN {FAILURE_EVENTS}"
_ORDER = f"ORDER BY failed DESC, last_at DESC, name LIMIT {LEADERS}"


@dataclass(frozen=True, slots=True)
class _Queries:
    """The look-ups of refused attempts, through the partial indexes (named for SQLite)."""

    last_failure: str
    last_failure_of: str
    addresses: str
    accounts: str
    addresses_of: str
    accounts_of: str


def _queries(dialect: Dialect) -> _Queries:
    everyone = dialect.indexed_by("history_failures")
    by_user = dialect.indexed_by("history_failures_by_user")
    last = "SELECT at, ip, event, reason FROM login_history{index} WHERE {test}"
    last += f" AND {_REFUSED} ORDER BY at DESC, id DESC LIMIT 1"
    addresses = (
        "SELECT ip AS name, SUM(count) AS failed, MAX(at) AS last_at, 0 AS known_user"  # noqa: S608 fixed text
        " FROM login_history{index} WHERE {test} AND " + _REFUSED + " GROUP BY ip " + _ORDER
    )
    accounts = (
        "SELECT h.name, h.failed, h.last_at,"  # noqa: S608 fixed text
        " EXISTS (SELECT 1 FROM users WHERE users.username = h.name) AS known_user FROM"
        " (SELECT username AS name, SUM(count) AS failed, MAX(at) AS last_at"
        " FROM login_history{index} WHERE {test} AND "
        + _REFUSED
        + f" GROUP BY username {_ORDER}) AS h {_ORDER}"
    )
    window, window_of = "at >= $1", "user_id = $1 AND at >= $2"
    return _Queries(
        last_failure=last.format(index=everyone, test="true"),
        last_failure_of=last.format(index=by_user, test="user_id = $1"),
        addresses=addresses.format(index=everyone, test=window),
        accounts=accounts.format(index=everyone, test=window),
        addresses_of=addresses.format(index=by_user, test=window_of),
        accounts_of=accounts.format(index=by_user, test=window_of),
    )


_QUERIES = {dialect.name: _queries(dialect) for dialect in (SQLITE, POSTGRESQL)}


def last_failure(conn: Connection, user_id: int | None) -> Row | None:
    """The newest refused attempt: the account's, or anyone's."""
    queries = _QUERIES[conn.dialect.name]
    if user_id is None:
        return conn.execute(queries.last_failure).fetchone()  # type: ignore[no-any-return]
    return conn.execute(queries.last_failure_of, (user_id,)).fetchone()  # type: ignore[no-any-return]


def leaders(conn: Connection, since: float, user_id: int | None) -> tuple[list[Row], list[Row]]:
    """The addresses and the attempted names with the most refused attempts since `since`
    (an account's only, with `user_id`), most first, the most recent first among equals;
    rows of (name, failed, last_at, known_user)."""
    queries = _QUERIES[conn.dialect.name]
    if user_id is None:
        return (
            conn.execute(queries.addresses, (since,)).fetchall(),
            conn.execute(queries.accounts, (since,)).fetchall(),
        )
    return (
        conn.execute(queries.addresses_of, (user_id, since)).fetchall(),
        conn.execute(queries.accounts_of, (user_id, since)).fetchall(),
    )
