"""Schema versions, the same numbers on both backends, applied forward in order.

SQLite keeps the version in `PRAGMA user_version`, PostgreSQL in the one-row table
`tfa_schema`. Each version is one script per backend: DDL differs too much between the two
to share text (types, identity columns, triggers), but every version means the same tables,
columns and rules on both.
"""

from __future__ import annotations

from tfa_server.storage.database import MIGRATION_LOCK, Connection

_V1 = """
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    locked_until REAL,
    last_login_at REAL,
    last_login_ip TEXT,
    last_login_client TEXT
);
CREATE TABLE totp_secrets (
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret BLOB NOT NULL,
    enabled_at REAL NOT NULL,
    last_step INTEGER NOT NULL
);
CREATE TABLE pending_totp_secrets (
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret BLOB NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE recovery_codes (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    created_at REAL NOT NULL,
    used_at REAL,
    UNIQUE (user_id, digest)
);
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_digest TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('challenge', 'enrollment', 'full')),
    created_at REAL NOT NULL,
    last_seen_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    ip TEXT NOT NULL,
    client TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    revoked_at REAL,
    previous_login_at REAL,
    previous_login_ip TEXT,
    previous_login_client TEXT,
    failed_before INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_by_user ON sessions (user_id, revoked_at);
CREATE TABLE login_history (
    id INTEGER PRIMARY KEY,
    user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    username TEXT NOT NULL,
    at REAL NOT NULL,
    event TEXT NOT NULL,
    success INTEGER NOT NULL,
    method TEXT,
    reason TEXT,
    ip TEXT NOT NULL,
    client TEXT NOT NULL
);
CREATE INDEX history_by_user ON login_history (user_id, id);
CREATE INDEX history_by_name ON login_history (username, id);
CREATE INDEX history_by_result ON login_history (success, id);
CREATE TABLE policy (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    force_2fa INTEGER NOT NULL DEFAULT 0,
    grace_period_days INTEGER NOT NULL DEFAULT 0,
    forced_since REAL,
    updated_at REAL
);
INSERT INTO policy (id) VALUES (1);
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT,
    ip TEXT,
    client TEXT
);
"""

# Issue 10: failure counts that decay, counted refusals, per-address look-ups for them.
_V2 = """
ALTER TABLE users ADD COLUMN last_failure_at REAL;
ALTER TABLE login_history ADD COLUMN count INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1);
CREATE INDEX history_by_address ON login_history (ip, at);
UPDATE users SET last_failure_at = CAST(strftime('%s', 'now') AS REAL) WHERE failed_attempts > 0;
"""

# Issue 13: relying services (their keys stored as SHA-256 only) and their calls in history.
_V3 = """
CREATE TABLE services (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    key_digest TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    created_by TEXT NOT NULL,
    last_used_at REAL,
    last_used_ip TEXT
);
ALTER TABLE login_history ADD COLUMN service TEXT;
ALTER TABLE login_history ADD COLUMN service_ip TEXT;
CREATE INDEX history_by_service ON login_history (service, id)
"""

# Issue 14: the account lifecycle. Disabled accounts, passwords an administrator set for one
# sign-in, sessions that may only change the password (the kind CHECK changes, so the table is
# copied: SQLite cannot alter a constraint), and the history of deleted accounts kept, marked.
_V4 = """
ALTER TABLE users ADD COLUMN disabled_at REAL;
ALTER TABLE users ADD COLUMN password_change_required INTEGER NOT NULL DEFAULT 0;
ALTER TABLE login_history ADD COLUMN account_deleted INTEGER NOT NULL DEFAULT 0;
CREATE TABLE sessions_v4 (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_digest TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('challenge', 'password_change', 'enrollment', 'full')),
    created_at REAL NOT NULL,
    last_seen_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    ip TEXT NOT NULL,
    client TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    revoked_at REAL,
    previous_login_at REAL,
    previous_login_ip TEXT,
    previous_login_client TEXT,
    failed_before INTEGER NOT NULL DEFAULT 0
);
INSERT INTO sessions_v4 SELECT * FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_v4 RENAME TO sessions;
CREATE INDEX sessions_by_user ON sessions (user_id, revoked_at)
"""

# What the activity counts, as SQL over a login_history row (`row` is "NEW." in a trigger).
# A sign-in completed: the password alone when nothing more was needed, a second factor, a
# relying service's code check, or a service's start that let the user through without one.
SUCCEEDED = (
    "({row}success = 1 AND (({row}event = 'password' AND {row}reason IS NULL)"
    " OR {row}event IN ('second_factor', 'verify')"
    " OR ({row}event = 'verify_start' AND {row}reason IN ('not_required', 'grace_period'))))"
)
# An attempt refused: a wrong password or code, a throttled, disabled or denied attempt.
FAILURE_EVENTS = "('password', 'second_factor', 'reauthentication', 'verify', 'verify_start')"
FAILED = f"({{row}}success = 0 AND {{row}}event IN {FAILURE_EVENTS})"
BUCKET_SECONDS = 900


def _bucket(column: str, sqlite: bool) -> str:
    """The quarter hour a time falls in; CAST truncates in SQLite but rounds in PostgreSQL."""
    if sqlite:
        return f"CAST({column} / {BUCKET_SECONDS} AS INTEGER)"
    return f"floor({column} / {BUCKET_SECONDS})::bigint"


def _add_activity(succeeded: str, failed: str) -> str:
    """Add to everyone's bucket and to the account's (when the row has one) in a trigger."""
    bucket = _bucket("NEW.at", sqlite=True)
    upsert = (
        "ON CONFLICT (scope, bucket) DO UPDATE SET succeeded = succeeded + excluded.succeeded,"
        " failed = failed + excluded.failed"
    )
    return (
        f"    INSERT INTO activity (scope, bucket, succeeded, failed)"
        f" SELECT 0, {bucket}, {succeeded}, {failed} WHERE true {upsert};\n"
        f"    INSERT INTO activity (scope, bucket, succeeded, failed)"
        f" SELECT NEW.user_id, {bucket}, {succeeded}, {failed}"
        f" WHERE NEW.user_id IS NOT NULL {upsert};"
    )


def _sums(scope: str, where: str, group: str, sqlite: bool) -> str:
    succeeded = SUCCEEDED.format(row="")
    failed = FAILED.format(row="")
    return (
        f"SELECT {scope}, {_bucket('at', sqlite)} AS quarter,"  # noqa: S608 fixed text
        f" SUM(CASE WHEN {succeeded} THEN count ELSE 0 END),"
        f" SUM(CASE WHEN {failed} THEN count ELSE 0 END)"
        f" FROM login_history WHERE ({succeeded} OR {failed}){where} GROUP BY {group}"
    )


def backfill(sqlite: bool) -> str:
    """The rollup of the history already there, by the triggers' rules."""
    return (
        "INSERT INTO activity (scope, bucket, succeeded, failed) "
        + _sums("0", "", "quarter", sqlite)
        + " UNION ALL "
        + _sums("user_id", " AND user_id IS NOT NULL", "user_id, quarter", sqlite)
    )


# Issue 15: sign-in activity per day without reading history. A rollup of completed sign-ins
# and refused attempts per account (scope = user id) and for everyone (scope 0) per quarter
# hour of UTC (bucket = at // 900), so a day starting at any utc_offset's midnight (a multiple
# of 15 minutes) is a whole number of buckets and a 90-day chart sums at most 8,640 rows. The
# triggers keep it in the statement that writes history (record, and record_refusal's count
# increments), so it cannot drift from history whoever writes it; the backfill fills it from
# history already there by the same rules (SUCCEEDED, FAILED). An account's rows
# go with the account; everyone's stay. Partial indexes over the refused attempts serve the
# "most failures" lists and the last failure; they hold every column those read (covering:
# no look-up in the table per row; `success` too, or SQLite 3.40 reads the row to check it).
_WHEN_SUCCEEDED = f"CASE WHEN {SUCCEEDED.format(row='NEW.')} THEN NEW.count ELSE 0 END"
_WHEN_FAILED = f"CASE WHEN {FAILED.format(row='NEW.')} THEN NEW.count ELSE 0 END"
_V5 = f"""
CREATE TABLE activity (
    scope INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, bucket)
) WITHOUT ROWID;
CREATE INDEX history_failures ON login_history (at, success, event, ip, username, count)
    WHERE success = 0;
CREATE INDEX history_failures_by_user
    ON login_history (user_id, at, success, event, ip, username, count) WHERE success = 0;
CREATE TRIGGER activity_on_record AFTER INSERT ON login_history
WHEN {SUCCEEDED.format(row="NEW.")} OR {FAILED.format(row="NEW.")}
BEGIN
{_add_activity(_WHEN_SUCCEEDED, _WHEN_FAILED)}
END;
CREATE TRIGGER activity_on_count AFTER UPDATE OF count ON login_history
WHEN {FAILED.format(row="NEW.")}
BEGIN
{_add_activity("0", "NEW.count - OLD.count")}
END;
CREATE TRIGGER activity_of_deleted_account AFTER DELETE ON users
BEGIN
    DELETE FROM activity WHERE scope = OLD.id;
END;
{backfill(sqlite=True)}
"""  # noqa: S608 fixed text

# Issue 16: what one process used to keep in memory, in the database, so that every instance
# sharing it sees the same: the throttle of names that match no account, the failed attempts
# per client address (one row per failure, counted in a sliding window), and the leases that
# let one request at a time work on an account (held while a password is hashed, which must
# not hold a transaction open). All three are pruned as they age.
_V6 = """
CREATE TABLE name_throttle (
    name TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    locked_until REAL,
    last_failure_at REAL NOT NULL
);
CREATE TABLE address_failures (
    id INTEGER PRIMARY KEY,
    ip TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX address_failures_by_ip ON address_failures (ip, at);
CREATE TABLE account_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL
)
"""


NAME_LENGTH = 64  # auth.USERNAME: names are at most 64 characters
PART_LENGTH = 3  # the longest part kept: a longer term is looked up by its rarest 3 characters


def name_parts(name: str, user_id: str) -> str:
    """A SELECT of the distinct parts (1 to PART_LENGTH characters) of the name `name` (an
    SQL expression) with `user_id` beside each, both backends alike."""
    return (
        f"SELECT DISTINCT substr({name}, p.n, w.n), {user_id}"  # noqa: S608 fixed text
        f" FROM name_numbers p, name_numbers w"
        f" WHERE w.n <= {PART_LENGTH} AND p.n + w.n - 1 <= length({name})"
    )


def forget_name_parts(name: str, user_id: str) -> str:
    return (
        f"DELETE FROM name_parts WHERE user_id = {user_id}"  # noqa: S608 fixed text
        f" AND part IN (SELECT substr({name}, p.n, w.n) FROM name_numbers p, name_numbers w"
        f" WHERE w.n <= {PART_LENGTH} AND p.n + w.n - 1 <= length({name}))"
    )


def name_parts_backfill() -> str:
    """Every account's parts, for accounts already there."""
    parts = name_parts("u.username", "u.id").replace(" FROM ", " FROM users u, ", 1)
    return f"INSERT INTO name_parts (part, user_id) {parts}"


NAME_NUMBERS = ", ".join(f"({n})" for n in range(1, NAME_LENGTH + 1))

# Issue 17: searching the accounts list for a part of a name without a walk over every name.
# name_parts holds every distinct piece of one to three characters of every name (about 24
# rows for a 9-character name), kept by triggers on users in the statement that writes the
# account, so a term of up to three characters is one index range, and a longer one is
# looked up by its rarest three characters and then checked whole (users.page). The rows go
# by trigger too, by their own key: no index by account is needed. name_numbers is 1..64, the
# positions in a name (SQLite allows no WITH in a trigger).
# And one account's or one name's refused (or successful) attempts, newest first: with only
# (user_id, id) and (success, id) SQLite, which has no statistics, walks every refused
# attempt of everyone looking for the account's few, and PostgreSQL's generic plan (psycopg
# prepares a statement run five times) reads all of a busy name's rows and sorts them. An
# index on both equalities then the id answers a page by reading the page (B4).
_V7 = f"""
CREATE TABLE name_numbers (n INTEGER PRIMARY KEY);
INSERT INTO name_numbers (n) VALUES {NAME_NUMBERS};
CREATE TABLE name_parts (
    part TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    PRIMARY KEY (part, user_id)
) WITHOUT ROWID;
CREATE INDEX history_by_user_result ON login_history (user_id, success, id);
CREATE INDEX history_by_name_result ON login_history (username, success, id);
CREATE TRIGGER name_parts_of_new_account AFTER INSERT ON users
BEGIN
    INSERT INTO name_parts (part, user_id) {name_parts("NEW.username", "NEW.id")};
END;
CREATE TRIGGER name_parts_of_renamed_account AFTER UPDATE OF username ON users
BEGIN
    {forget_name_parts("OLD.username", "OLD.id")};
    INSERT INTO name_parts (part, user_id) {name_parts("NEW.username", "NEW.id")};
END;
CREATE TRIGGER name_parts_of_deleted_account AFTER DELETE ON users
BEGIN
    {forget_name_parts("OLD.username", "OLD.id")};
END;
{name_parts_backfill()}
"""  # noqa: S608 fixed text

# Issue 18: the server key's generation and check value (`tfa-server rotate-key` moves both
# forward; a server whose key file has another check value refuses to start), the recovery
# MAC keys of retired generations sealed under the current key, kept while codes made under
# them remain, and the generation each recovery code was made under. The fingerprint stays
# empty until a server first opens the database with its key.
_V8 = """
CREATE TABLE server_key (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL CHECK (generation >= 1),
    fingerprint TEXT,
    rotated_at REAL
);
INSERT INTO server_key (id, generation) VALUES (1, 1);
CREATE TABLE retired_recovery_keys (
    generation INTEGER PRIMARY KEY,
    sealed BLOB NOT NULL,
    retired_at REAL NOT NULL
);
ALTER TABLE recovery_codes ADD COLUMN key_generation INTEGER NOT NULL DEFAULT 1
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8)
LATEST = len(MIGRATIONS)


class SchemaTooNew(Exception):
    pass


def version(conn: Connection) -> int:
    """The schema version a database is at; 0 for an empty one."""
    if conn.dialect.sqlite:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    conn.execute("CREATE TABLE IF NOT EXISTS tfa_schema (version integer NOT NULL)")
    row = conn.execute("SELECT max(version) FROM tfa_schema").fetchone()
    return int(row[0] or 0)


def migrate(conn: Connection) -> int:
    """Bring the schema to LATEST, each step in its own transaction; returns the version.

    A database newer than this code is refused. On PostgreSQL a session lock keeps two
    instances starting at once from migrating the same database twice.
    """
    if conn.dialect.sqlite:
        return _migrate(conn, MIGRATIONS)
    from tfa_server.storage.schema_postgres import MIGRATIONS as POSTGRES_MIGRATIONS

    conn.execute("SELECT pg_advisory_lock($1)", (MIGRATION_LOCK,))
    try:
        return _migrate(conn, POSTGRES_MIGRATIONS)
    finally:
        conn.execute("SELECT pg_advisory_unlock($1)", (MIGRATION_LOCK,))


def _migrate(conn: Connection, scripts: tuple[str, ...]) -> int:
    current = version(conn)
    if current > LATEST:
        raise SchemaTooNew(
            f"database schema version {current} is newer than this server ({LATEST})"
        )
    for number in range(current, LATEST):
        with conn.transaction():
            conn.script(scripts[number])
            if conn.dialect.sqlite:
                conn.execute(f"PRAGMA user_version = {number + 1}")
            else:
                conn.execute("DELETE FROM tfa_schema")
                conn.execute("INSERT INTO tfa_schema (version) VALUES ($1)", (number + 1,))
    return LATEST
