"""Administrator actions: who did what to whom, when and from where."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tfa_server.storage.database import Connection, Row


@dataclass(frozen=True, slots=True)
class AuditEntry:
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]
    ip: str | None
    client: str | None


def record(conn: Connection, entry: AuditEntry, now: float) -> None:
    conn.execute(
        "INSERT INTO audit_log (at, actor, action, target, detail, ip, client)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
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


def page(conn: Connection, *, limit: int, before: int | None) -> list[Row]:
    if before is None:
        return conn.execute(
            "SELECT * FROM audit_log ORDER BY id DESC LIMIT $1", (limit,)
        ).fetchall()
    return conn.execute(
        "SELECT * FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2", (before, limit)
    ).fetchall()
