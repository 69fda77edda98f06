"""Relying services: a name, and the SHA-256 of the key they present (never the key)."""

from __future__ import annotations

from dataclasses import dataclass

from tfa_server.storage.database import Connection, Row


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


def _service(row: Row) -> ServiceRow:
    return ServiceRow(**{key: row[key] for key in row.keys()})  # noqa: SIM118 Row iterates values


def _row(row: Row | None) -> ServiceRow | None:
    return None if row is None else _service(row)


def create(
    conn: Connection, name: str, description: str, digest: str, now: float, by: str
) -> int | None:
    """The new service's id, or None when the name is taken."""
    row = conn.execute(
        "INSERT INTO services (name, description, key_digest, created_at, created_by)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING id",
        (name, description, digest, now, by),
    ).fetchone()
    return None if row is None else int(row[0])


def by_name(conn: Connection, name: str) -> ServiceRow | None:
    return _row(
        conn.execute(f"SELECT {_COLUMNS} FROM services WHERE name = $1", (name,)).fetchone()  # noqa: S608
    )


def by_digest(conn: Connection, digest: str) -> ServiceRow | None:
    return _row(
        conn.execute(f"SELECT {_COLUMNS} FROM services WHERE key_digest = $1", (digest,)).fetchone()  # noqa: S608
    )


def all_services(conn: Connection) -> list[ServiceRow]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM services ORDER BY name").fetchall()  # noqa: S608
    return [_service(row) for row in rows]


def delete(conn: Connection, name: str) -> bool:
    """Revocation: the key stops working with the next request."""
    return conn.execute("DELETE FROM services WHERE name = $1", (name,)).rowcount > 0


def touch(conn: Connection, service_id: int, now: float, ip: str) -> None:
    conn.execute(
        "UPDATE services SET last_used_at = $1, last_used_ip = $2 WHERE id = $3",
        (now, ip, service_id),
    )
