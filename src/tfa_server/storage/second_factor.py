"""TOTP secrets (pending and active) and recovery codes: the rows spent or replaced once."""

from __future__ import annotations

from enum import Enum

from tfa_server.storage.database import Connection


class CodeUse(Enum):
    SPENT = "spent"
    ALREADY_USED = "already_used"
    UNKNOWN = "unknown"


def active_secret(conn: Connection, user_id: int) -> tuple[bytes, int] | None:
    row = conn.execute(
        "SELECT secret, last_step FROM totp_secrets WHERE user_id = $1", (user_id,)
    ).fetchone()
    return (row["secret"], row["last_step"]) if row else None


def is_enabled(conn: Connection, user_id: int) -> bool:
    row = conn.execute("SELECT 1 FROM totp_secrets WHERE user_id = $1", (user_id,)).fetchone()
    return row is not None


def advance_step(conn: Connection, user_id: int, step: int) -> bool:
    """Compare-and-set: only one request can move last_step to a given step (RFC 6238 5.2)."""
    cursor = conn.execute(
        "UPDATE totp_secrets SET last_step = $1 WHERE user_id = $2 AND last_step < $3",
        (step, user_id, step),
    )
    return cursor.rowcount == 1


def put_pending(conn: Connection, user_id: int, secret: bytes, now: float) -> None:
    conn.execute(
        "INSERT INTO pending_totp_secrets (user_id, secret, created_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret,"
        " created_at = excluded.created_at",
        (user_id, secret, now),
    )


def pending_secret(conn: Connection, user_id: int) -> bytes | None:
    row = conn.execute(
        "SELECT secret FROM pending_totp_secrets WHERE user_id = $1", (user_id,)
    ).fetchone()
    return bytes(row["secret"]) if row else None


def activate(conn: Connection, user_id: int, secret: bytes, step: int, now: float) -> bool:
    """Move the pending secret to active; False when another request already did."""
    deleted = conn.execute(
        "DELETE FROM pending_totp_secrets WHERE user_id = $1 AND secret = $2", (user_id, secret)
    ).rowcount
    if deleted != 1:
        return False
    conn.execute(
        "INSERT INTO totp_secrets (user_id, secret, enabled_at, last_step) VALUES ($1, $2, $3, $4)",
        (user_id, secret, now, step),
    )
    return True


def remove(conn: Connection, user_id: int) -> bool:
    removed = conn.execute("DELETE FROM totp_secrets WHERE user_id = $1", (user_id,)).rowcount
    conn.execute("DELETE FROM pending_totp_secrets WHERE user_id = $1", (user_id,))
    conn.execute("DELETE FROM recovery_codes WHERE user_id = $1", (user_id,))
    return removed == 1


def replace_recovery_codes(
    conn: Connection, user_id: int, digests: list[str], now: float, generation: int
) -> None:
    conn.execute("DELETE FROM recovery_codes WHERE user_id = $1", (user_id,))
    conn.executemany(
        "INSERT INTO recovery_codes (user_id, digest, created_at, key_generation)"
        " VALUES ($1, $2, $3, $4)",
        [(user_id, digest, now, generation) for digest in digests],
    )


def recovery_generations(conn: Connection, user_id: int) -> list[int]:
    """The key generations the user's codes were made under (one, unless a set is mid-way)."""
    rows = conn.execute(
        "SELECT DISTINCT key_generation FROM recovery_codes WHERE user_id = $1"
        " ORDER BY key_generation",
        (user_id,),
    ).fetchall()
    return [int(row[0]) for row in rows]


def use_recovery_code(conn: Connection, user_id: int, digests: list[str], now: float) -> CodeUse:
    """Spend a code with one conditional UPDATE, so two concurrent uses cannot both win.

    `digests`: what the code is under each key generation the user's codes were made in."""
    if not digests:
        return CodeUse.UNKNOWN
    marks = ", ".join(f"${number}" for number in range(3, len(digests) + 3))
    spent = conn.execute(
        f"UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND digest IN ({marks})"  # noqa: S608 placeholders only
        " AND used_at IS NULL",
        (now, user_id, *digests),
    ).rowcount
    if spent == 1:
        return CodeUse.SPENT
    marks = ", ".join(f"${number}" for number in range(2, len(digests) + 2))
    exists = conn.execute(
        f"SELECT 1 FROM recovery_codes WHERE user_id = $1 AND digest IN ({marks})",  # noqa: S608 placeholders only
        (user_id, *digests),
    ).fetchone()
    return CodeUse.ALREADY_USED if exists else CodeUse.UNKNOWN


def recovery_codes_left(conn: Connection, user_id: int) -> int:
    row = conn.execute(
        "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL", (user_id,)
    ).fetchone()
    return int(row[0])
