"""The single policy row: whether 2FA is forced, and the grace period for enrolling."""

from __future__ import annotations

from dataclasses import dataclass

from tfa_server.storage.database import Connection

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Policy:
    force_2fa: bool
    grace_period_days: int
    forced_since: float | None
    updated_at: float | None

    def enrollment_deadline(self) -> float | None:
        if not self.force_2fa or self.forced_since is None:
            return None
        return self.forced_since + self.grace_period_days * DAY


def load(conn: Connection) -> Policy:
    row = conn.execute(
        "SELECT force_2fa, grace_period_days, forced_since, updated_at FROM policy WHERE id = 1"
    ).fetchone()
    return Policy(bool(row[0]), int(row[1]), row[2], row[3])


def save(conn: Connection, force_2fa: bool, grace_period_days: int, now: float) -> Policy:
    """The grace period counts from when force was switched on, not from later edits."""
    current = load(conn)
    forced_since = (current.forced_since or now) if force_2fa else None
    conn.execute(
        "UPDATE policy SET force_2fa = $1, grace_period_days = $2, forced_since = $3,"
        " updated_at = $4 WHERE id = 1",
        (int(force_2fa), grace_period_days, forced_since, now),
    )
    return Policy(force_2fa, grace_period_days, forced_since, now)
