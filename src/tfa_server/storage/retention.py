"""Sign-in history and audit entries past their retention, deleted one small batch at a time.

Rows are taken oldest id first: ids follow time, so a batch is a range of the primary key and
needs no index on `at` (each delete checks the time again: a row another transaction
committed late, under an id in that range, is new and stays). A batch stops at the first row
that is not old enough; a row written by an instance whose clock ran ahead holds the rest
back only until its own time comes.
"""

from __future__ import annotations

from itertools import takewhile

from tfa_server.storage.database import Connection
from tfa_server.storage.schema import BUCKET_SECONDS


def prune_history(conn: Connection, before: float, limit: int) -> int:
    """Delete up to `limit` of the oldest history rows written before `before`, and the
    activity buckets from before then of everyone and of the accounts they belonged to (the
    rollup of what is no longer kept). Returns how many rows went; fewer than `limit`: done."""
    rows = conn.execute(
        "SELECT id, at, user_id FROM login_history ORDER BY id LIMIT $1", (limit,)
    ).fetchall()
    old = list(takewhile(lambda row: row[1] < before, rows))
    if not old:
        return 0
    conn.execute("DELETE FROM login_history WHERE id <= $1 AND at < $2", (old[-1][0], before))
    scopes = sorted({0} | {int(row[2]) for row in old if row[2] is not None})
    bucket = int(before // BUCKET_SECONDS)
    conn.executemany(
        "DELETE FROM activity WHERE scope = $1 AND bucket < $2",
        [(scope, bucket) for scope in scopes],
    )
    return len(old)


def prune_audit(conn: Connection, before: float, limit: int) -> int:
    """As prune_history, for the audit log."""
    rows = conn.execute("SELECT id, at FROM audit_log ORDER BY id LIMIT $1", (limit,)).fetchall()
    old = list(takewhile(lambda row: row[1] < before, rows))
    if old:
        conn.execute("DELETE FROM audit_log WHERE id <= $1 AND at < $2", (old[-1][0], before))
    return len(old)
