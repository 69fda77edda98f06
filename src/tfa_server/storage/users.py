"""User rows, with the 2FA state joined in because nearly every caller needs both."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tfa_server.storage.database import Connection, Row
from tfa_server.storage.schema import PART_LENGTH
from tfa_server.throttle import ThrottleState


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    password_hash: str
    is_admin: bool
    created_at: float
    failed_attempts: int
    locked_until: float | None
    last_login_at: float | None
    last_login_ip: str | None
    last_login_client: str | None
    totp_enabled_at: float | None
    last_failure_at: float | None = None
    disabled_at: float | None = None
    password_change_required: bool = False
    recovery_codes_left: int = 0

    @property
    def totp_enabled(self) -> bool:
        return self.totp_enabled_at is not None

    @property
    def throttle(self) -> ThrottleState:
        return ThrottleState(self.failed_attempts, self.locked_until, self.last_failure_at)


# In the order of User's fields, so that a row's first WIDTH values make a User by position.
_COLUMNS = """
SELECT u.id, u.username, u.password_hash, u.is_admin, u.created_at, u.failed_attempts,
       u.locked_until, u.last_login_at, u.last_login_ip, u.last_login_client,
       t.enabled_at AS totp_enabled_at, u.last_failure_at, u.disabled_at,
       u.password_change_required,
       (SELECT COUNT(*) FROM recovery_codes r WHERE r.user_id = u.id AND r.used_at IS NULL)
           AS recovery_codes_left"""
WIDTH = 15  # the columns of _COLUMNS
_FROM = """
FROM users u LEFT JOIN totp_secrets t ON t.user_id = u.id
"""
_SELECT = _COLUMNS + _FROM


def select_with(columns: str, joins: str) -> str:
    """The user query with more columns (named so as not to clash with a user's: id,
    created_at, ...) and joins, for a caller that needs other rows beside the user in one
    statement."""
    return f"{_COLUMNS}, {columns}{_FROM}{joins}"


def _user(row: Row) -> User:
    return User(
        id=row["id"],
        username=row["username"],
        password_hash=row["password_hash"],
        is_admin=bool(row["is_admin"]),
        created_at=row["created_at"],
        failed_attempts=row["failed_attempts"],
        locked_until=row["locked_until"],
        last_login_at=row["last_login_at"],
        last_login_ip=row["last_login_ip"],
        last_login_client=row["last_login_client"],
        totp_enabled_at=row["totp_enabled_at"],
        last_failure_at=row["last_failure_at"],
        disabled_at=row["disabled_at"],
        password_change_required=bool(row["password_change_required"]),
        recovery_codes_left=row["recovery_codes_left"],
    )


def user_from(values: Sequence[Any]) -> User:
    """A user from the first WIDTH values of a `select_with` row, by position: this runs for
    every signed-in request, and looking each column up by name cost as much as the query.
    is_admin (3) and password_change_required (13) are integers in SQLite."""
    v = values
    return User(
        v[0],
        v[1],
        v[2],
        bool(v[3]),
        v[4],
        v[5],
        v[6],
        v[7],
        v[8],
        v[9],
        v[10],
        v[11],
        v[12],
        bool(v[13]),
        v[14],
    )


def by_name(conn: Connection, username: str) -> User | None:
    row = conn.execute(_SELECT + " WHERE u.username = $1", (username,)).fetchone()
    return _user(row) if row else None


def by_id(conn: Connection, user_id: int) -> User | None:
    row = conn.execute(_SELECT + " WHERE u.id = $1", (user_id,)).fetchone()
    return _user(row) if row else None


def all_users(conn: Connection) -> list[User]:
    return [_user(row) for row in conn.execute(_SELECT + " ORDER BY u.username")]


@dataclass(frozen=True, slots=True)
class UserFilter:
    """What narrows a page of the list: a part of the name (lower case, taken literally) and
    flags, each True (only those), False (only the others) or None (either)."""

    contains: str | None = None
    admin: bool | None = None
    two_factor: bool | None = None
    locked: bool | None = None
    disabled: bool | None = None


# A search term in at most this many names is looked up in name_parts; one in more is found
# by walking the names in order, which then fills a page soon.
FEW_NAMES = 1000


def _rarest_part(conn: Connection, term: str) -> tuple[str, int]:
    """The part of `term` (itself when short, else its rarest piece of PART_LENGTH characters)
    in the fewest names, and in how many, counted up to FEW_NAMES + 1."""
    if len(term) <= PART_LENGTH:
        pieces = [term]
    else:
        pieces = sorted({term[i : i + PART_LENGTH] for i in range(len(term) - PART_LENGTH + 1)})
    rarest = (term, FEW_NAMES + 1)
    for piece in pieces:
        row = conn.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM name_parts WHERE part = $1 LIMIT $2) AS found",
            (piece, FEW_NAMES + 1),
        ).fetchone()
        if int(row[0]) < rarest[1]:
            rarest = (piece, int(row[0]))
            if not rarest[1]:
                break
    return rarest


def page(
    conn: Connection, limit: int, after: str | None, where: UserFilter, now: float
) -> list[User]:
    """Accounts in name order after `after`: a walk along the name index (UNIQUE) that stops
    after `limit` matches, so a page costs the rows it passes, never a sort of them all.
    The name part is found by position, not LIKE: '%' and '_' in it are plain characters.
    A part in few names (name_parts) starts from those names instead and sorts them: a rare
    term would otherwise walk every name."""
    clauses: list[str] = []
    params: list[object] = []
    few = ""

    def param(value: object) -> str:
        params.append(value)
        return f"${len(params)}"

    if after is not None:
        clauses.append(f"u.username > {param(after)}")
    if where.contains:
        clauses.append(f"{conn.dialect.position('u.username', param(where.contains))} > 0")
        part, count = _rarest_part(conn, where.contains)
        if count <= FEW_NAMES:
            few = f"u.id IN (SELECT user_id FROM name_parts WHERE part = {param(part)})"  # noqa: S608 fixed text
            clauses.append(few)
    flags = (
        (where.admin, "u.is_admin = 1"),
        (where.two_factor, "t.enabled_at IS NOT NULL"),
        # Locked exactly when the wire says so (views.admin_user): a lock still running.
        (where.locked, "COALESCE(u.locked_until > {now}, false)"),
        (where.disabled, "u.disabled_at IS NOT NULL"),
    )
    for wanted, test in flags:
        if wanted is not None:
            if "{now}" in test:
                test = test.format(now=param(now))
            clauses.append(test if wanted else f"NOT ({test})")
    where_sql = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    order = f" ORDER BY u.username LIMIT {param(limit)}"
    if few:
        # The few names are sorted by name alone, and only the page's accounts read whole
        # (a sort of whole rows would compute every candidate's recovery codes first).
        names = (
            "SELECT u.id FROM users u LEFT JOIN totp_secrets t ON t.user_id = u.id"  # noqa: S608 fixed clauses
            + where_sql
        )
        rows = conn.execute(
            f"{_SELECT} WHERE u.id IN ({names}{order}) ORDER BY u.username",
            params,
        )
    else:
        rows = conn.execute(_SELECT + where_sql + order, params)
    return [_user(row) for row in rows]


def create(
    conn: Connection, username: str, password_hash: str, is_admin: bool, now: float
) -> int | None:
    """The new id, or None when the name is taken."""
    row = conn.execute(
        "INSERT INTO users (username, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (username) DO NOTHING RETURNING id",
        (username, password_hash, int(is_admin), now),
    ).fetchone()
    return None if row is None else int(row[0])


def save_throttle(conn: Connection, user_id: int, state: ThrottleState) -> None:
    conn.execute(
        "UPDATE users SET failed_attempts = $1, locked_until = $2, last_failure_at = $3"
        " WHERE id = $4",
        (state.failures, state.locked_until, state.last_failure_at, user_id),
    )


def record_login(conn: Connection, user_id: int, now: float, ip: str, client: str) -> None:
    conn.execute(
        "UPDATE users SET last_login_at = $1, last_login_ip = $2, last_login_client = $3,"
        " failed_attempts = 0, locked_until = NULL, last_failure_at = NULL WHERE id = $4",
        (now, ip, client, user_id),
    )


def replace_password_hash(conn: Connection, user_id: int, old: str, new: str) -> bool:
    """Compare-and-set, so a rehash never overwrites a password changed meanwhile."""
    cursor = conn.execute(
        "UPDATE users SET password_hash = $1 WHERE id = $2 AND password_hash = $3",
        (new, user_id, old),
    )
    return cursor.rowcount == 1


def set_password(
    conn: Connection, user_id: int, password_hash: str, *, change_required: bool
) -> None:
    """A new password clears the throttle: whoever set it knows it."""
    conn.execute(
        "UPDATE users SET password_hash = $1, password_change_required = $2, failed_attempts = 0,"
        " locked_until = NULL, last_failure_at = NULL WHERE id = $3",
        (password_hash, int(change_required), user_id),
    )


def set_disabled(conn: Connection, user_id: int, at: float | None) -> bool:
    """Disable (at a time) or enable (None); False when it already was so."""
    test = "disabled_at IS NULL" if at is not None else "disabled_at IS NOT NULL"
    cursor = conn.execute(
        f"UPDATE users SET disabled_at = $1 WHERE id = $2 AND {test}",  # noqa: S608 fixed clauses
        (at, user_id),
    )
    return cursor.rowcount == 1


def set_admin(conn: Connection, user_id: int, is_admin: bool) -> bool:
    """False when nothing changed."""
    cursor = conn.execute(
        "UPDATE users SET is_admin = $1 WHERE id = $2 AND is_admin != $3",
        (int(is_admin), user_id, int(is_admin)),
    )
    return cursor.rowcount == 1


def enabled_admins(conn: Connection) -> int:
    row = conn.execute(
        "SELECT COUNT(*) FROM users WHERE is_admin = 1 AND disabled_at IS NULL"
    ).fetchone()
    return int(row[0])


def delete(conn: Connection, user_id: int) -> None:
    """Secrets, codes and sessions go with it (ON DELETE CASCADE); history rows stay."""
    conn.execute("DELETE FROM users WHERE id = $1", (user_id,))
