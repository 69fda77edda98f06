"""Sign-in activity as people read it: per day in their time zone, the last refused attempt,
and for administrators the addresses and names refused most often lately."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tfa_protocol import types as wire
from tfa_server.clock import utc
from tfa_server.storage import activity
from tfa_server.storage.database import Connection, Row

DAY = 86_400.0
WEEK = 7 * DAY


def days(
    conn: Connection, scope: int, now: float, count: int, utc_offset: int
) -> list[wire.DayActivity]:
    span, first_local = activity.day_range(now, count, utc_offset)
    first = datetime.fromtimestamp(first_local, UTC).date()
    return [
        wire.DayActivity(day=first + timedelta(days=index), succeeded=succeeded, failed=failed)
        for index, (succeeded, failed) in enumerate(activity.per_day(conn, scope, span))
    ]


def last_failure(conn: Connection, user_id: int | None) -> wire.LastFailure | None:
    row = activity.last_failure(conn, user_id)
    if row is None:
        return None
    return wire.LastFailure(
        at=utc(row["at"]), ip=row["ip"], event=row["event"], reason=row["reason"]
    )


def _counts(rows: list[Row]) -> list[wire.FailureCount]:
    return [
        wire.FailureCount(
            name=row["name"],
            failed=row["failed"],
            last_at=utc(row["last_at"]),
            known_user=bool(row["known_user"]),
        )
        for row in rows
    ]


def leaders(conn: Connection, since: float, user_id: int | None) -> wire.FailureLeaders:
    addresses, accounts = activity.leaders(conn, since, user_id)
    return wire.FailureLeaders(addresses=_counts(addresses), accounts=_counts(accounts))


def own(conn: Connection, user_id: int, now: float, count: int, utc_offset: int) -> wire.Activity:
    """One account's: what GET /me/activity answers."""
    return wire.Activity(
        days=days(conn, user_id, now, count, utc_offset),
        last_failure=last_failure(conn, user_id),
    )


def overall(
    conn: Connection, user_id: int | None, now: float, count: int, utc_offset: int
) -> wire.AdminActivity:
    """Everyone's (or, with `user_id`, one account's, leaders included): GET /admin/activity."""
    scope = activity.EVERYONE if user_id is None else user_id
    return wire.AdminActivity(
        days=days(conn, scope, now, count, utc_offset),
        last_failure=last_failure(conn, user_id),
        last_24_hours=leaders(conn, now - DAY, user_id),
        last_7_days=leaders(conn, now - WEEK, user_id),
    )
