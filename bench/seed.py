"""Big databases for the benchmarks that need data (B4, B6, B8): accounts and history written by
SQL on the database itself, fast enough for 10^7 history rows in about a minute or two a
backend.

Accounts are user0, user1, ... with one production Argon2 hash of servers.PASSWORD shared by
all (as servers.prepare), every 3rd with 2FA, every 400th locked, every 300th disabled, and
one administrator, ADMIN, without 2FA (the default policy does not ask it of anyone). History
spreads over the last 90 days, oldest first (ids follow time, as in a real database): about a
fifth refused, some from names that are no account, a few thousand client addresses with a
few of them busy, a relying service's checks, and a twentieth of all rows for HEAVY, so that
one account's own history is large.

Rows come from a number sequence inside the database (a recursive CTE on SQLite,
generate_series on PostgreSQL), each column a fixed function of the row number, so nothing
crosses the driver row by row. Indexes and the activity triggers (schema version 5) are set
aside while rows go in, then the indexes are built again and the rollup is filled the way the
version 5 migration backfills it (schema.backfill), by the triggers' own rules.

A database is made once per (backend, accounts, events) and process, so the benchmarks of one
`python -m bench` share it; they live in a temporary folder (and PostgreSQL databases) removed
when the process ends.
"""

from __future__ import annotations

import atexit
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher, Type

from tfa_server.config import PasswordHashing
from tfa_server.storage.schema import backfill, name_parts_backfill

from .harness import Backend, _postgres
from .servers import PASSWORD, prepare

ADMIN = "admin"
HEAVY = "user0"
DAY = 86_400.0

# (event, success, method, reason, weight in 100) for rows of known accounts: a busy server's
# mix. Names that match no account (UNKNOWN_SHARE of all rows) add refused password steps.
KINDS = [
    ("password", 1, "password", None, 50),
    ("password", 1, "password", "totp_required", 12),
    ("second_factor", 1, "totp", None, 11),
    ("second_factor", 1, "recovery_code", None, 1),
    ("logout", 1, None, None, 8),
    ("password", 0, "password", "bad_password", 12),
    ("second_factor", 0, "totp", "bad_code", 2),
    ("password", 0, "password", "throttled", 2),
    ("verify", 1, "totp", None, 1),
    ("verify", 0, "totp", "bad_code", 1),
]
UNKNOWN_SHARE = 5  # in 100: rows of unknown names
HEAVY_SHARE = 5  # in 100: rows of HEAVY's own
ADDRESSES = 3000
SERVICE = "mail"


@dataclass(frozen=True)
class Seeded:
    db: str  # SQLite path or PostgreSQL URL
    key: Path
    accounts: int
    events: int
    seconds: float  # how long seeding took


_made: dict[tuple[str, int, int], Seeded] = {}
_root: Path | None = None
_hash: str | None = None


def _folder() -> Path:
    global _root
    if _root is None:
        _root = Path(tempfile.mkdtemp(prefix="tfa-bench-seed-"))
        atexit.register(shutil.rmtree, _root, True)
    return _root


def password_hash() -> str:
    """PASSWORD hashed once with the production parameters."""
    global _hash
    if _hash is None:
        rules = PasswordHashing()
        _hash = PasswordHasher(
            time_cost=rules.time_cost,
            memory_cost=rules.memory_kib,
            parallelism=rules.parallelism,
            type=Type.ID,
        ).hash(PASSWORD)
    return _hash


def seeded(backend: Backend, accounts: int, events: int) -> Seeded:
    """A database with `accounts` accounts (plus ADMIN) and `events` history rows, made at
    first use in this process and shared afterwards: do not write to it."""
    wanted = (backend, accounts, events)
    if wanted not in _made:
        folder = _folder() / f"{backend}-{accounts}-{events}"
        started = time.monotonic()
        if backend == "sqlite":
            db = str(folder / "tfa.db")
            key = prepare(db, folder, 0)
            _fill_sqlite(db, accounts, events)
        else:
            server = _postgres()
            name = server.create_database()
            atexit.register(server.drop_database, name)
            db = server.url(name)
            key = prepare(db, folder, 0)
            _fill_postgres(db, accounts, events)
        _made[wanted] = Seeded(db, key, accounts, events, time.monotonic() - started)
    return _made[wanted]


def _literal(text: str | None) -> str:
    return "NULL" if text is None else "'" + text.replace("'", "''") + "'"


def _text(expression: str) -> str:
    return f"CAST({expression} AS TEXT)"


def _mix(multiplier: int) -> str:
    """A number in 0..2^31-2 that looks random, a fixed function of the row number i."""
    linear = f"(((i + 1) * {multiplier}) % 2147483647)"
    return f"(({linear} * {linear}) % 2147483647)"  # squared: no step from row to row


def _kind_column(index: int) -> str:
    """The column `index` of KINDS for the row's kind (k, 0..99, weighted)."""
    parts, upto = [], 0
    for kind in KINDS:
        upto += kind[4]
        value = kind[index]
        parts.append(f"WHEN k < {upto} THEN {value if isinstance(value, int) else _literal(value)}")
    return "CASE " + " ".join(parts) + " END"


def _users_sql(accounts: int, numbers: str, now: float) -> list[str]:
    hashed = _literal(password_hash())
    return [
        "INSERT INTO users (id, username, password_hash, is_admin, created_at, failed_attempts,"  # noqa: S608 fixed text
        " locked_until, last_failure_at, disabled_at)"
        f" SELECT i + 1, 'user' || {_text('i')}, {hashed}, 0, {now - 100 * DAY},"
        f" CASE WHEN i % 400 = 7 THEN 5 ELSE 0 END,"
        f" CASE WHEN i % 400 = 7 THEN {now + 365 * DAY} END,"
        f" CASE WHEN i % 400 = 7 THEN {now} END,"
        f" CASE WHEN i % 300 = 11 THEN {now - DAY} END FROM {numbers}",
        "INSERT INTO users (id, username, password_hash, is_admin, created_at)"  # noqa: S608 fixed text
        f" VALUES ({accounts + 1}, {_literal(ADMIN)}, {hashed}, 1, {now - 100 * DAY})",
        "INSERT INTO totp_secrets (user_id, secret, enabled_at, last_step)"  # noqa: S608 fixed text
        f" SELECT i + 1, {{secret}}, {now - 50 * DAY}, 0 FROM {numbers} WHERE i % 3 = 1",
    ]


def _history_sql(accounts: int, events: int, numbers: str, now: float) -> str:
    start, step = now - 90 * DAY, 90 * DAY / max(events, 1)
    unknown, heavy = UNKNOWN_SHARE, UNKNOWN_SHARE + HEAVY_SHARE
    event, success, method, reason = (_kind_column(n) for n in range(4))
    # Addresses: the product of two uniform picks leans to the small numbers, so a few
    # addresses are busy and most are quiet.
    address = f"((a1 % {ADDRESSES}) * (a2 % {ADDRESSES}) / {ADDRESSES})"
    ip = f"'10.' || {_text(f'{address} / 250')} || '.' || {_text(f'{address} % 250')} || '.7'"
    return (
        "INSERT INTO login_history (user_id, username, at, event, success, method, reason, ip,"  # noqa: S608 fixed text
        " client, count, service, service_ip) SELECT"
        f" CASE WHEN who < {unknown} THEN NULL WHEN who < {heavy} THEN 1"
        f" ELSE pick % {accounts} + 1 END,"
        f" CASE WHEN who < {unknown} THEN 'nobody' || {_text('pick % 20000')}"
        f" WHEN who < {heavy} THEN {_literal(HEAVY)} ELSE 'user' || {_text(f'pick % {accounts}')}"
        " END,"
        f" {start} + i * {step},"
        f" CASE WHEN who < {unknown} THEN 'password' ELSE {event} END,"
        f" CASE WHEN who < {unknown} THEN 0 ELSE {success} END,"
        f" CASE WHEN who < {unknown} THEN 'password' ELSE {method} END,"
        f" CASE WHEN who < {unknown} THEN 'unknown_user' ELSE {reason} END,"
        f" {ip}, 'tfa-tui/1.0',"
        f" CASE WHEN who >= {unknown} AND ({reason}) = 'throttled' THEN pick % 29 + 1 ELSE 1 END,"
        f" CASE WHEN who >= {unknown} AND ({event}) = 'verify' THEN {_literal(SERVICE)} END,"
        f" CASE WHEN who >= {unknown} AND ({event}) = 'verify' THEN '10.9.9.9' END"
        f" FROM (SELECT i, {_mix(48271)} % 100 AS k, {_mix(69621)} % 100 AS who,"
        f" {_mix(16807)} AS pick, {_mix(39373)} AS a1, {_mix(40692)} AS a2 FROM {numbers}) AS r"
        " ORDER BY i"
    )


def _sqlite_numbers(count: int) -> str:
    return (
        f"(WITH RECURSIVE n(i) AS (SELECT 0 WHERE {count} > 0 UNION ALL SELECT i + 1 FROM n"  # noqa: S608 fixed text
        f" WHERE i < {count - 1}) SELECT i FROM n) AS numbers"
    )


def _fill_sqlite(path: str, accounts: int, events: int) -> None:
    now = time.time()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # A build nobody else sees: no journal, no syncing; WAL again afterwards (the server
        # sets its own pragmas when it opens the file).
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -524288")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA threads = 2")  # sorts for the index builds
        aside = conn.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE (tbl_name = 'login_history'"
            " AND type IN ('index', 'trigger') OR tbl_name = 'users' AND type = 'trigger')"
            " AND sql IS NOT NULL"
        ).fetchall()
        conn.execute("BEGIN")
        for kind, name, _sql in aside:
            conn.execute(f'DROP {kind.upper()} "{name}"')
        for statement in _users_sql(accounts, _sqlite_numbers(accounts), now):
            conn.execute(statement.replace("{secret}", "x'00'"))
        conn.execute(_history_sql(accounts, events, _sqlite_numbers(events), now))
        for _kind, _name, sql in aside:
            conn.execute(sql)
        conn.execute("DELETE FROM activity")
        conn.execute(backfill(sqlite=True))
        conn.execute("DELETE FROM name_parts")
        conn.execute(name_parts_backfill())
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()


def _fill_postgres(url: str, accounts: int, events: int) -> None:
    import psycopg

    now = time.time()
    numbers = lambda count: f"generate_series(0::bigint, {count - 1}) AS numbers(i)"  # noqa: E731
    with psycopg.connect(url, autocommit=True) as conn:
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'login_history'"
            " AND indexname <> 'login_history_pkey'"
        ).fetchall()
        with conn.transaction():
            # No triggers while rows go in (the rollup and the parts of names are filled
            # after, the foreign keys hold by construction); the build's own memory to sort.
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute("SET LOCAL maintenance_work_mem = '512MB'")
            conn.execute("SET LOCAL synchronous_commit = off")
            for statement in _users_sql(accounts, numbers(accounts), now):
                conn.execute(statement.replace("{secret}", "'\\x00'::bytea").encode())
            conn.execute("SELECT setval(pg_get_serial_sequence('users', 'id'), max(id)) FROM users")
            conn.execute("DELETE FROM name_parts")
            conn.execute(name_parts_backfill().encode())
            for name, _definition in indexes:
                conn.execute(f'DROP INDEX "{name}"'.encode())
            conn.execute(_history_sql(accounts, events, numbers(events), now).encode())
            for _name, definition in indexes:
                conn.execute(definition.encode())
            conn.execute("DELETE FROM activity")
            conn.execute(backfill(sqlite=False).encode())
        conn.execute("VACUUM ANALYZE")
