"""Bearer sessions, stored by the SHA-256 of their token only."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from tfa_server.storage import users
from tfa_server.storage.database import Connection, Row
from tfa_server.storage.policy import Policy
from tfa_server.storage.users import User

SessionKind = Literal["challenge", "password_change", "enrollment", "full"]


@dataclass(frozen=True, slots=True)
class Session:
    id: int
    user_id: int
    kind: SessionKind
    created_at: float
    last_seen_at: float
    expires_at: float
    ip: str
    client: str
    attempts: int
    revoked_at: float | None
    previous_login_at: float | None
    previous_login_ip: str | None
    previous_login_client: str | None
    failed_before: int


@dataclass(frozen=True, slots=True)
class PreviousLogin:
    """What /me reports as the sign-in before this session, captured when it began."""

    at: float | None
    ip: str | None
    client: str | None
    failed_since: int


def _session(row: Row) -> Session:
    return Session(**{key: row[key] for key in row.keys() if key != "token_digest"})  # noqa: SIM118 Row iterates values


def insert(
    conn: Connection,
    *,
    user_id: int,
    digest: str,
    kind: SessionKind,
    now: float,
    expires_at: float,
    ip: str,
    client: str,
    previous: PreviousLogin | None = None,
) -> int:
    previous = previous or PreviousLogin(None, None, None, 0)
    row = conn.execute(
        "INSERT INTO sessions (user_id, token_digest, kind, created_at, last_seen_at, expires_at,"
        " ip, client, previous_login_at, previous_login_ip, previous_login_client, failed_before)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
        (
            user_id,
            digest,
            kind,
            now,
            now,
            expires_at,
            ip,
            client,
            previous.at,
            previous.ip,
            previous.client,
            previous.failed_since,
        ),
    ).fetchone()
    return int(row[0])


def by_digest(conn: Connection, digest: str) -> Session | None:
    row = conn.execute("SELECT * FROM sessions WHERE token_digest = $1", (digest,)).fetchone()
    return _session(row) if row else None


_CALLER = users.select_with(
    ", ".join(f"s.{field.name} AS s_{field.name}" for field in fields(Session))
    + ", p.force_2fa AS p_force_2fa, p.grace_period_days AS p_grace_period_days,"
    " p.forced_since AS p_forced_since, p.updated_at AS p_updated_at",
    " JOIN sessions s ON s.user_id = u.id CROSS JOIN policy p"
    " WHERE s.token_digest = $1 AND p.id = 1",
)


_SESSION_END = users.WIDTH + len(fields(Session))


def caller(conn: Connection, digest: str) -> tuple[Session, User, Policy] | None:
    """The session behind a token digest with its user and the policy, in one statement:
    what every signed-in request needs before its own work. Read by position (the columns
    are in the order of the fields): this runs for every signed-in request."""
    row = conn.execute(_CALLER, (digest,)).fetchone()
    if row is None:
        return None
    values = tuple(row)
    session = Session(*values[users.WIDTH : _SESSION_END])
    force_2fa, grace_period_days, forced_since, updated_at = values[_SESSION_END:]
    current = Policy(bool(force_2fa), int(grace_period_days), forced_since, updated_at)
    return session, users.user_from(values[: users.WIDTH]), current


def by_id(conn: Connection, session_id: int) -> Session | None:
    row = conn.execute("SELECT * FROM sessions WHERE id = $1", (session_id,)).fetchone()
    return _session(row) if row else None


def touch(conn: Connection, session_id: int, now: float, ip: str, client: str) -> None:
    conn.execute(
        "UPDATE sessions SET last_seen_at = $1, ip = $2, client = $3 WHERE id = $4",
        (now, ip, client, session_id),
    )


def count_attempt(conn: Connection, session_id: int) -> int:
    row = conn.execute(
        "UPDATE sessions SET attempts = attempts + 1 WHERE id = $1 RETURNING attempts",
        (session_id,),
    ).fetchone()
    return int(row[0]) if row else 0


def revoke(conn: Connection, session_id: int, now: float) -> bool:
    cursor = conn.execute(
        "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        (now, session_id),
    )
    return cursor.rowcount == 1


def revoke_all(conn: Connection, user_id: int, now: float) -> int:
    cursor = conn.execute(
        "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        (now, user_id),
    )
    return cursor.rowcount


def restrict_to_enrollment(conn: Connection, session_id: int) -> bool:
    cursor = conn.execute(
        "UPDATE sessions SET kind = 'enrollment' WHERE id = $1 AND kind = 'full'", (session_id,)
    )
    return cursor.rowcount == 1


def revoke_others(conn: Connection, user_id: int, keep: int, now: float) -> int:
    cursor = conn.execute(
        "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND id != $3"
        " AND revoked_at IS NULL",
        (now, user_id, keep),
    )
    return cursor.rowcount


def upgrade_to_full(conn: Connection, session_id: int) -> None:
    conn.execute("UPDATE sessions SET kind = 'full' WHERE id = $1", (session_id,))


def active(conn: Connection, user_id: int, now: float, idle_timeout: float) -> list[Session]:
    """Sessions a person holds (not second-factor challenges), newest first."""
    rows = conn.execute(
        "SELECT * FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND kind != 'challenge'"
        " AND expires_at > $2 AND last_seen_at > $3 ORDER BY id DESC",
        (user_id, now, now - idle_timeout),
    )
    return [_session(row) for row in rows]


def count_active(conn: Connection, now: float, idle_timeout: float) -> int:
    """Everyone's sessions as `active` counts them (for the metrics)."""
    row = conn.execute(
        "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND kind != 'challenge'"
        " AND expires_at > $1 AND last_seen_at > $2",
        (now, now - idle_timeout),
    ).fetchone()
    return int(row[0])


def beyond_newest(
    conn: Connection,
    user_id: int,
    *,
    challenges: bool,
    keep: int,
    now: float,
    idle_timeout: float,
) -> list[int]:
    """Live sessions of one class (challenges, or a person's) past the newest `keep`: what a
    per-user cap ends."""
    kind_test = "kind = 'challenge'" if challenges else "kind != 'challenge'"
    seen_after = float("-inf") if challenges else now - idle_timeout
    rows = conn.execute(
        f"SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND {kind_test}"  # noqa: S608 fixed clauses
        # No LIMIT -1 (SQLite's "all") in PostgreSQL, no OFFSET without LIMIT in SQLite.
        " AND expires_at > $2 AND last_seen_at > $3 ORDER BY id DESC"
        " LIMIT 9223372036854775807 OFFSET $4",
        (user_id, now, seen_after, keep),
    )
    return [int(row[0]) for row in rows]


def purge_expired(conn: Connection, now: float, keep_for: float) -> int:
    """Drop rows that ended long ago, so the table does not grow without bound."""
    cursor = conn.execute(
        "DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $2",
        (now - keep_for, now - keep_for),
    )
    return cursor.rowcount
