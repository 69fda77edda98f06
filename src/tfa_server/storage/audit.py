"""Administrator actions: who did what to whom, when and from where."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class AuditEntry:
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]
    ip: str | None
    client: str | None


def record(conn: sqlite3.Connection, entry: AuditEntry, now: float) -> None:
    conn.execute(
        "INSERT INTO audit_log (at, actor, action, target, detail, ip, client)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            now,
            entry.actor,
            entry.action,
            entry.target,
            json.dumps(entry.detail, sort_keys=True),
            entry.ip,
            entry.client,
        ),
    )


def page(conn: sqlite3.Connection, *, limit: int, before: int | None) -> list[sqlite3.Row]:
    if before is None:
        return conn.execute("SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return conn.execute(
        "SELECT * FROM audit_log WHERE id < ? ORDER BY id DESC LIMIT ?", (before, limit)
    ).fetchall()
