"""The JSON shapes of the API, in one place so the OpenAPI document can mirror them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from tfa_server.clock import rfc3339
from tfa_server.config import ThrottleRules
from tfa_server.storage import history, policy
from tfa_server.storage import second_factor as factor_rows
from tfa_server.storage.sessions import Session
from tfa_server.storage.users import User

JsonObject = dict[str, Any]


def login_info(at: float | None, ip: str | None, client: str | None) -> JsonObject | None:
    if at is None:
        return None
    return {"at": rfc3339(at), "ip": ip, "client": client}


def policy_view(current: policy.Policy) -> JsonObject:
    return {
        "force_2fa": current.force_2fa,
        "grace_period_days": current.grace_period_days,
        "forced_since": rfc3339(current.forced_since),
        "updated_at": rfc3339(current.updated_at),
    }


def me(conn: sqlite3.Connection, user: User, session: Session | None) -> JsonObject:
    """GET /me. `last_login` is the sign-in before this session, as a person expects."""
    current = policy.load(conn)
    if session is not None and session.kind != "challenge":
        last = login_info(
            session.previous_login_at, session.previous_login_ip, session.previous_login_client
        )
        failed = session.failed_before
    else:
        last = login_info(user.last_login_at, user.last_login_ip, user.last_login_client)
        failed = history.failures_since(conn, user.id, user.last_login_at)
    deadline = None if user.totp_enabled else current.enrollment_deadline()
    return {
        "username": user.username,
        "is_admin": user.is_admin,
        "totp_enabled": user.totp_enabled,
        "totp_enabled_at": rfc3339(user.totp_enabled_at),
        "recovery_codes_left": factor_rows.recovery_codes_left(conn, user.id),
        "policy": {
            "force_2fa": current.force_2fa,
            "grace_period_days": current.grace_period_days,
        },
        "enrollment_deadline": rfc3339(deadline),
        "last_login": last,
        "failed_attempts_since_last_login": failed,
    }


def history_item(row: sqlite3.Row, *, with_username: bool = False) -> JsonObject:
    item: JsonObject = {
        "id": row["id"],
        "at": rfc3339(row["at"]),
        "event": row["event"],
        "success": bool(row["success"]),
        "method": row["method"],
        "reason": row["reason"],
        "ip": row["ip"],
        "client": row["client"],
        "count": row["count"],
    }
    if with_username:
        item["username"] = row["username"]
        item["known_user"] = row["user_id"] is not None
    return item


def session_item(session: Session, current_id: int) -> JsonObject:
    return {
        "id": session.id,
        "created_at": rfc3339(session.created_at),
        "last_seen_at": rfc3339(session.last_seen_at),
        "expires_at": rfc3339(session.expires_at),
        "ip": session.ip,
        "client": session.client,
        "kind": session.kind,
        "current": session.id == current_id,
    }


def admin_user(user: User, now: float, rules: ThrottleRules) -> JsonObject:
    locked = user.locked_until if user.locked_until and user.locked_until > now else None
    return {
        "username": user.username,
        "is_admin": user.is_admin,
        "totp_enabled": user.totp_enabled,
        "totp_enabled_at": rfc3339(user.totp_enabled_at),
        "created_at": rfc3339(user.created_at),
        "last_login": login_info(user.last_login_at, user.last_login_ip, user.last_login_client),
        "failed_attempts": user.throttle.current_failures(now, rules),
        "locked_until": rfc3339(locked),
    }


def audit_item(row: sqlite3.Row) -> JsonObject:
    return {
        "id": row["id"],
        "at": rfc3339(row["at"]),
        "actor": row["actor"],
        "action": row["action"],
        "target": row["target"],
        "detail": json.loads(row["detail"] or "{}"),
        "ip": row["ip"],
        "client": row["client"],
    }


def page(
    rows: Sequence[sqlite3.Row], limit: int, shape: Callable[[sqlite3.Row], JsonObject]
) -> JsonObject:
    """Rows were fetched with LIMIT limit+1: the extra row only says whether more exist."""
    items = [shape(row) for row in rows[:limit]]
    next_before = items[-1]["id"] if len(rows) > limit and items else None
    return {"items": items, "next_before": next_before}
