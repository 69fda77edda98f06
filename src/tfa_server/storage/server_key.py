"""The server key's generation and check value, and the retired recovery MAC keys."""

from __future__ import annotations

from dataclasses import dataclass

from tfa_server.storage.database import Connection


@dataclass(frozen=True, slots=True)
class KeyState:
    generation: int
    fingerprint: str | None
    rotated_at: float | None


def state(conn: Connection) -> KeyState:
    row = conn.execute(
        "SELECT generation, fingerprint, rotated_at FROM server_key WHERE id = 1"
    ).fetchone()
    return KeyState(int(row[0]), row[1], row[2])


def fingerprint(conn: Connection) -> str | None:
    """The check value alone: what every request that seals or checks a code compares."""
    row = conn.execute("SELECT fingerprint FROM server_key WHERE id = 1").fetchone()
    return None if row is None else row[0]


def claim(conn: Connection, value: str) -> bool:
    """Record the check value of the key that first opens the database; False if another
    key's is there already."""
    conn.execute(
        "UPDATE server_key SET fingerprint = $1 WHERE id = 1 AND fingerprint IS NULL", (value,)
    )
    return fingerprint(conn) == value


def advance(conn: Connection, generation: int, value: str, now: float) -> None:
    conn.execute(
        "UPDATE server_key SET generation = $1, fingerprint = $2, rotated_at = $3 WHERE id = 1",
        (generation, value, now),
    )


def retired(conn: Connection, since: int) -> list[tuple[int, bytes]]:
    """The sealed MAC keys of generation `since` onwards, oldest first."""
    rows = conn.execute(
        "SELECT generation, sealed FROM retired_recovery_keys WHERE generation >= $1"
        " ORDER BY generation",
        (since,),
    ).fetchall()
    return [(int(row[0]), bytes(row[1])) for row in rows]


def put_retired(conn: Connection, generation: int, sealed: bytes, now: float) -> None:
    conn.execute(
        "INSERT INTO retired_recovery_keys (generation, sealed, retired_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (generation) DO UPDATE SET sealed = excluded.sealed",
        (generation, sealed, now),
    )


def forget_unused(conn: Connection) -> int:
    """Drop the retired keys no recovery code needs any more (every code made under them
    has been replaced); returns how many went."""
    return conn.execute(
        "DELETE FROM retired_recovery_keys WHERE generation <"
        " (SELECT COALESCE(MIN(key_generation), (SELECT generation FROM server_key))"
        " FROM recovery_codes)"
    ).rowcount
