"""Login history: every sign-in step, success or failure, and every 2FA change."""

from __future__ import annotations

from dataclasses import dataclass, replace

from tfa_server.storage.database import Connection, Row, storable


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    user_id: int | None
    username: str
    event: str
    success: bool
    method: str | None
    reason: str | None
    ip: str
    client: str
    service: str | None = None  # the relying service that asked, for verify-API events
    service_ip: str | None = None


def record(conn: Connection, entry: HistoryEvent, now: float) -> int:
    row = conn.execute(
        "INSERT INTO login_history (user_id, username, at, event, success, method, reason, ip,"
        " client, service, service_ip) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        " RETURNING id",
        (
            entry.user_id,
            storable(entry.username),
            now,
            entry.event,
            int(entry.success),
            entry.method,
            entry.reason,
            entry.ip,
            storable(entry.client),
            entry.service,
            entry.service_ip,
        ),
    ).fetchone()
    return int(row[0])


# Throttled refusals of names that match no account and are not locked themselves share this
# name: otherwise every new name an address tries while it is throttled would add a row.
UNKNOWN_NAMES = "(unknown names)"


def record_refusal(conn: Connection, entry: HistoryEvent, now: float, bucket: float) -> None:
    """Count a throttled refusal into the row of its address, name and minute, so a flood
    writes one row per address and name a minute, however fast it comes. The caller holds
    the transaction and picks the name (see UNKNOWN_NAMES)."""
    start = now - now % bucket
    entry = replace(entry, username=storable(entry.username))
    counted = conn.execute(
        "UPDATE login_history SET count = count + 1 WHERE id = (SELECT id FROM login_history"
        " WHERE ip = $1 AND at >= $2 AND username = $3 AND event = $4 AND reason = 'throttled'"
        " ORDER BY id DESC LIMIT 1)",
        (entry.ip, start, entry.username, entry.event),
    ).rowcount
    if not counted:
        record(conn, entry, now)


def page(
    conn: Connection,
    *,
    limit: int,
    before: int | None = None,
    user_id: int | None = None,
    username: str | None = None,
    success: bool | None = None,
    service: str | None = None,
) -> list[Row]:
    """Newest first, keyset-paged on id: `WHERE ... AND id < ? ORDER BY id DESC LIMIT ?`."""
    clauses: list[str] = []
    params: list[object] = []
    for column, value in (
        ("user_id =", user_id),
        ("username =", username),
        ("success =", None if success is None else int(success)),
        ("service =", service),
        ("id <", before),
    ):
        if value is not None:
            params.append(value)
            clauses.append(f"{column} ${len(params)}")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    params.append(limit)
    return conn.execute(
        f"SELECT * FROM login_history {where} ORDER BY id DESC LIMIT ${len(params)}",  # noqa: S608 fixed clauses
        params,
    ).fetchall()


def failures_since(conn: Connection, user_id: int, since: float | None) -> int:
    row = conn.execute(
        "SELECT COALESCE(SUM(count), 0) FROM login_history WHERE user_id = $1 AND success = 0"
        " AND event IN ('password', 'second_factor') AND at > $2",
        (user_id, since if since is not None else 0.0),
    ).fetchone()
    return int(row[0])


def mark_deleted(conn: Connection, user_id: int) -> int:
    """Before the account goes: its rows stay, marked, for administrators (evidence), and
    lose their link to the id, so a new account with the same name starts with none."""
    cursor = conn.execute(
        "UPDATE login_history SET account_deleted = 1 WHERE user_id = $1", (user_id,)
    )
    return cursor.rowcount
