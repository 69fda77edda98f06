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


def record(conn: sqlite3.Connection, entry: HistoryEvent, now: float) -> int:
    cursor = conn.execute(
        "INSERT INTO login_history (user_id, username, at, event, success, method, reason, ip,"
        " client) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        ),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def page(
    conn: sqlite3.Connection,
    *,
    limit: int,
    before: int | None = None,
    user_id: int | None = None,
    username: str | None = None,
    success: bool | None = None,
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
        "SELECT COUNT(*) FROM login_history WHERE user_id = ? AND success = 0"
        " AND event IN ('password', 'second_factor') AND at > ?",
        (user_id, since if since is not None else 0.0),
    ).fetchone()
    return int(row[0])
