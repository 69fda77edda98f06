"""Relying services: a name, and the SHA-256 of the key they present (never the key)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServiceRow:
    id: int
    name: str
    description: str
    created_at: float
    created_by: str
    last_used_at: float | None
    last_used_ip: str | None


_COLUMNS = "id, name, description, created_at, created_by, last_used_at, last_used_ip"


def _row(row: sqlite3.Row | None) -> ServiceRow | None:
    return None if row is None else ServiceRow(*row)


def create(
    conn: sqlite3.Connection, name: str, description: str, digest: str, now: float, by: str
) -> int | None:
    """The new service's id, or None when the name is taken."""
    cursor = conn.execute(
        "INSERT INTO services (name, description, key_digest, created_at, created_by)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
        (name, description, digest, now, by),
    )
    return cursor.lastrowid if cursor.rowcount else None


def by_name(conn: sqlite3.Connection, name: str) -> ServiceRow | None:
    return _row(conn.execute(f"SELECT {_COLUMNS} FROM services WHERE name = ?", (name,)).fetchone())  # noqa: S608


def by_digest(conn: sqlite3.Connection, digest: str) -> ServiceRow | None:
    return _row(
        conn.execute(f"SELECT {_COLUMNS} FROM services WHERE key_digest = ?", (digest,)).fetchone()  # noqa: S608
    )


def all_services(conn: sqlite3.Connection) -> list[ServiceRow]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM services ORDER BY name").fetchall()  # noqa: S608
    return [ServiceRow(*row) for row in rows]


def delete(conn: sqlite3.Connection, name: str) -> bool:
    """Revocation: the key stops working with the next request."""
    return conn.execute("DELETE FROM services WHERE name = ?", (name,)).rowcount > 0


def touch(conn: sqlite3.Connection, service_id: int, now: float, ip: str) -> None:
    conn.execute(
        "UPDATE services SET last_used_at = ?, last_used_ip = ? WHERE id = ?",
        (now, ip, service_id),
    )
