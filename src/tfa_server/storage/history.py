"""Login history: every sign-in step, success or failure, and every 2FA change."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


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


def record(conn: sqlite3.Connection, entry: HistoryEvent, now: float) -> int:
    cursor = conn.execute(
        "INSERT INTO login_history (user_id, username, at, event, success, method, reason, ip,"
        " client, service, service_ip) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            entry.user_id,
            entry.username,
            now,
            entry.event,
            int(entry.success),
            entry.method,
            entry.reason,
            entry.ip,
            entry.client,
            entry.service,
            entry.service_ip,
        ),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


# Throttled refusals of names that match no account and are not locked themselves share this
# name: otherwise every new name an address tries while it is throttled would add a row.
UNKNOWN_NAMES = "(unknown names)"


def record_refusal(
    conn: sqlite3.Connection, entry: HistoryEvent, now: float, bucket: float
) -> None:
    """Count a throttled refusal into the row of its address, name and minute, so a flood
    writes one row per address and name a minute, however fast it comes. The caller holds
    the transaction and picks the name (see UNKNOWN_NAMES)."""
    start = now - now % bucket
    counted = conn.execute(
        "UPDATE login_history SET count = count + 1 WHERE id = (SELECT id FROM login_history"
        " WHERE ip = ? AND at >= ? AND username = ? AND event = ? AND reason = 'throttled'"
        " ORDER BY id DESC LIMIT 1)",
        (entry.ip, start, entry.username, entry.event),
    ).rowcount
    if not counted:
        record(conn, entry, now)


def page(
    conn: sqlite3.Connection,
    *,
    limit: int,
    before: int | None = None,
    user_id: int | None = None,
    username: str | None = None,
    success: bool | None = None,
    service: str | None = None,
) -> list[sqlite3.Row]:
    """Newest first, keyset-paged on id: `WHERE ... AND id < ? ORDER BY id DESC LIMIT ?`."""
    clauses: list[str] = []
    params: list[object] = []
    if user_id is not None:
        clauses.append("user_id = ?")
        params.append(user_id)
    if username is not None:
        clauses.append("username = ?")
        params.append(username)
    if success is not None:
        clauses.append("success = ?")
        params.append(int(success))
    if service is not None:
        clauses.append("service = ?")
        params.append(service)
    if before is not None:
        clauses.append("id < ?")
        params.append(before)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    params.append(limit)
    return conn.execute(
        f"SELECT * FROM login_history {where} ORDER BY id DESC LIMIT ?",  # noqa: S608 fixed clauses
        params,
    ).fetchall()


def failures_since(conn: sqlite3.Connection, user_id: int, since: float | None) -> int:
    row = conn.execute(
        "SELECT COALESCE(SUM(count), 0) FROM login_history WHERE user_id = ? AND success = 0"
        " AND event IN ('password', 'second_factor') AND at > ?",
        (user_id, since if since is not None else 0.0),
    ).fetchone()
    return int(row[0])


def mark_deleted(conn: sqlite3.Connection, user_id: int) -> int:
    """Before the account goes: its rows stay, marked, for administrators (evidence), and
    lose their link to the id, so a new account with the same name starts with none."""
    cursor = conn.execute(
        "UPDATE login_history SET account_deleted = 1 WHERE user_id = ?", (user_id,)
    )
    return cursor.rowcount
