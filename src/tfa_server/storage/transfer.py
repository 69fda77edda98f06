"""`tfa-server copy`: a whole installation from one database to another (SQLite to PostgreSQL
and back), rows and ids as they are, in one transaction on the target.

The TOTP secrets travel sealed, with the key's generation, check value and retired
recovery MAC keys: the target is read with the same key file. The activity
rollup is not copied but rebuilt by the target's own triggers as the history goes in, and the
throttle rows and leases are not copied at all (minutes of state, rebuilt by use).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from tfa_server.storage.database import Connection, Database, Row

# Parents before children (foreign keys), each with the column that orders it.
TABLES = (
    "users",
    "totp_secrets",
    "pending_totp_secrets",
    "recovery_codes",
    "sessions",
    "services",
    "login_history",
    "audit_log",
    "retired_recovery_keys",
)
KEYS = {
    "totp_secrets": "user_id",
    "pending_totp_secrets": "user_id",
    "retired_recovery_keys": "generation",
}
# The tables whose ids the target hands out next (PostgreSQL's identity sequences).
IDENTITIES = ("users", "recovery_codes", "sessions", "services", "login_history", "audit_log")
BATCH = 2000


class CopyRefused(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Counts:
    rows: dict[str, int]

    def differences(self, other: Counts) -> list[str]:
        return [
            f"{table}: {self.rows[table]} in the source, {other.rows.get(table)} in the target"
            for table in self.rows
            if self.rows[table] != other.rows.get(table)
        ]


def counts(conn: Connection) -> Counts:
    rows = {
        table: int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608 fixed names
        for table in (*TABLES, "policy", "server_key")
    }
    return Counts(rows)


def require_empty(conn: Connection, name: str) -> None:
    """A target with accounts, history or an audit trail is someone's installation."""
    filled = [
        table
        for table in TABLES
        if conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None  # noqa: S608 fixed names
    ]
    if filled:
        raise CopyRefused(
            f"{name} is not empty (it has rows in {', '.join(filled)}); copy only into a new"
            " database"
        )


def _batches(conn: Connection, table: str) -> Iterator[list[Row]]:
    """The table in key order, a batch at a time (keyset: no OFFSET rescans)."""
    key = KEYS.get(table, "id")
    rows = conn.execute(f"SELECT * FROM {table} ORDER BY {key} LIMIT {BATCH}").fetchall()  # noqa: S608 fixed names
    while rows:
        yield rows
        rows = conn.execute(
            f"SELECT * FROM {table} WHERE {key} > $1 ORDER BY {key} LIMIT {BATCH}",  # noqa: S608 fixed names
            (rows[-1][key],),
        ).fetchall()


def _insert(conn: Connection, table: str, rows: list[Row]) -> None:
    columns = rows[0].keys()
    marks = ", ".join(f"${number}" for number in range(1, len(columns) + 1))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608 fixed names
    conn.executemany(sql, [tuple(row[column] for column in columns) for row in rows])


def copy(source: Database, target: Database, target_name: str) -> tuple[Counts, Counts]:
    """Copy everything; returns the source's counts and the target's after. The source is
    read in one snapshot; the target is checked empty and filled in one transaction, so a
    copy that fails leaves it as empty as it was."""
    with source.session() as src, target.session() as dst, src.snapshot(), dst.transaction():
        before = counts(src)
        require_empty(dst, target_name)
        for table in TABLES:
            for rows in _batches(src, table):
                _insert(dst, table, rows)
        policy = src.execute(
            "SELECT force_2fa, grace_period_days, forced_since, updated_at FROM policy"
        ).fetchone()
        dst.execute(
            "UPDATE policy SET force_2fa = $1, grace_period_days = $2, forced_since = $3,"
            " updated_at = $4 WHERE id = 1",
            (policy[0], policy[1], policy[2], policy[3]),
        )
        key = src.execute("SELECT generation, fingerprint, rotated_at FROM server_key").fetchone()
        dst.execute(
            "UPDATE server_key SET generation = $1, fingerprint = $2, rotated_at = $3 WHERE id = 1",
            (key[0], key[1], key[2]),
        )
        if not dst.dialect.sqlite:
            for table in IDENTITIES:
                dst.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"  # noqa: S608 fixed names
                    f" COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)"
                )
        return before, counts(dst)
