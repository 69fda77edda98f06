"""Throttle state shared by every instance: names that match no account, failed attempts per
client address, and the leases that give one request at a time an account."""

from __future__ import annotations

from tfa_server.storage.database import Connection, storable
from tfa_server.throttle import ThrottleState


def name_state(conn: Connection, name: str) -> ThrottleState:
    row = conn.execute(
        "SELECT failures, locked_until, last_failure_at FROM name_throttle WHERE name = $1",
        (storable(name),),
    ).fetchone()
    return ThrottleState(row[0], row[1], row[2]) if row else ThrottleState()


def save_name_state(conn: Connection, name: str, state: ThrottleState) -> None:
    conn.execute(
        "INSERT INTO name_throttle (name, failures, locked_until, last_failure_at)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET failures = excluded.failures,"
        " locked_until = excluded.locked_until, last_failure_at = excluded.last_failure_at",
        (storable(name), state.failures, state.locked_until, state.last_failure_at),
    )


def address_failures(conn: Connection, ip: str, since: float) -> list[float]:
    """The address's failed attempts after `since`, oldest first (a few dozen at most: an
    address over its limit is refused before it can add more)."""
    rows = conn.execute(
        "SELECT at FROM address_failures WHERE ip = $1 AND at > $2 ORDER BY at", (ip, since)
    )
    return [float(row[0]) for row in rows]


def add_address_failure(conn: Connection, ip: str, at: float) -> int:
    """Count a failure; the id lets the caller withdraw it (see `forgive`)."""
    row = conn.execute(
        "INSERT INTO address_failures (ip, at) VALUES ($1, $2) RETURNING id", (ip, at)
    ).fetchone()
    return int(row[0])


def forgive(conn: Connection, failure_id: int) -> None:
    """Withdraw a failure counted up front for an attempt that turned out to be no guess."""
    conn.execute("DELETE FROM address_failures WHERE id = $1", (failure_id,))


def acquire_lease(conn: Connection, name: str, holder: str, now: float, until: float) -> bool:
    """Take the account's lease unless someone holds it still (one atomic statement; a lease
    left by a process that died is taken over once it has run out; the holder's own, again)."""
    row = conn.execute(
        "INSERT INTO account_leases AS l (name, holder, expires_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
        " expires_at = excluded.expires_at WHERE l.expires_at <= $4 OR l.holder = $2"
        " RETURNING holder",
        (storable(name), holder, until, now),
    ).fetchone()
    return row is not None


def release_lease(conn: Connection, name: str, holder: str) -> None:
    conn.execute(
        "DELETE FROM account_leases WHERE name = $1 AND holder = $2", (storable(name), holder)
    )


def prune(conn: Connection, now: float, address_window: float, name_memory: float) -> int:
    """Forget what no longer counts: failures out of every window, names quiet for a day
    whose lock ran out. Returns the rows removed."""
    removed = conn.execute(
        "DELETE FROM address_failures WHERE at <= $1", (now - address_window,)
    ).rowcount
    removed += conn.execute(
        "DELETE FROM name_throttle WHERE last_failure_at <= $1"
        " AND (locked_until IS NULL OR locked_until <= $2)",
        (now - name_memory, now),
    ).rowcount
    return removed


def prune_leases(conn: Connection, now: float) -> int:
    """Leases run out that no one took over (their holder died; `now` is wall time)."""
    return conn.execute("DELETE FROM account_leases WHERE expires_at <= $1", (now,)).rowcount
