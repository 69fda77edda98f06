"""The server's answers built from its rows, as tfa_protocol's Structs."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from tfa_protocol import types as wire
from tfa_server.clock import maybe_utc, utc
from tfa_server.config import ThrottleRules
from tfa_server.storage import history, policy
from tfa_server.storage.database import Connection, Row
from tfa_server.storage.services import ServiceRow
from tfa_server.storage.sessions import Session
from tfa_server.storage.users import User

Item = TypeVar("Item", wire.HistoryItem, wire.AdminHistoryItem, wire.AuditItem)


def login_info(at: float | None, ip: str | None, client: str | None) -> wire.LoginInfo | None:
    return None if at is None else wire.LoginInfo(at=utc(at), ip=ip, client=client)


def policy_view(current: policy.Policy) -> wire.Policy:
    return wire.Policy(
        force_2fa=current.force_2fa,
        grace_period_days=current.grace_period_days,
        forced_since=maybe_utc(current.forced_since),
        updated_at=maybe_utc(current.updated_at),
    )


def me(conn: Connection, user: User, session: Session | None) -> wire.Me:
    """GET /me's answer where the caller has a connection (after a sign-in step)."""
    current = policy.load(conn)
    if session is not None and session.kind != "challenge":
        return me_of(user, session, current)
    last = login_info(user.last_login_at, user.last_login_ip, user.last_login_client)
    failed = history.failures_since(conn, user.id, user.last_login_at)
    return _me(user, current, last, failed)


def me_of(user: User, session: Session, current: policy.Policy) -> wire.Me:
    """GET /me for a person's session, from rows already read: `last_login` is the sign-in
    before this session, as a person expects, kept with the session when it began."""
    last = login_info(
        session.previous_login_at, session.previous_login_ip, session.previous_login_client
    )
    return _me(user, current, last, session.failed_before)


def _me(user: User, current: policy.Policy, last: wire.LoginInfo | None, failed: int) -> wire.Me:
    deadline = None if user.totp_enabled else current.enrollment_deadline()
    return wire.Me(
        username=user.username,
        is_admin=user.is_admin,
        password_change_required=user.password_change_required,
        totp_enabled=user.totp_enabled,
        totp_enabled_at=maybe_utc(user.totp_enabled_at),
        recovery_codes_left=user.recovery_codes_left,
        policy=wire.PolicyBrief(
            force_2fa=current.force_2fa, grace_period_days=current.grace_period_days
        ),
        enrollment_deadline=maybe_utc(deadline),
        last_login=last,
        failed_attempts_since_last_login=failed,
    )


def _event(row: Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "at": utc(row["at"]),
        "event": row["event"],
        "success": bool(row["success"]),
        "method": row["method"],
        "reason": row["reason"],
        "ip": row["ip"],
        "client": row["client"],
        "service": row["service"],
        "service_ip": row["service_ip"],
        "count": row["count"],
    }


def history_item(row: Row) -> wire.HistoryItem:
    return wire.HistoryItem(**_event(row))


def admin_history_item(row: Row) -> wire.AdminHistoryItem:
    return wire.AdminHistoryItem(
        **_event(row),
        username=row["username"],
        known_user=row["user_id"] is not None,
        account_deleted=bool(row["account_deleted"]),
    )


def session_item(session: Session, current_id: int) -> wire.Session:
    return wire.Session(
        id=session.id,
        created_at=utc(session.created_at),
        last_seen_at=utc(session.last_seen_at),
        expires_at=utc(session.expires_at),
        ip=session.ip,
        client=session.client,
        kind=session.kind,  # type: ignore[arg-type]  # challenges are never listed
        current=session.id == current_id,
    )


def admin_user(user: User, now: float, rules: ThrottleRules) -> wire.AdminUser:
    locked = user.locked_until if user.locked_until and user.locked_until > now else None
    return wire.AdminUser(
        username=user.username,
        is_admin=user.is_admin,
        totp_enabled=user.totp_enabled,
        totp_enabled_at=maybe_utc(user.totp_enabled_at),
        created_at=utc(user.created_at),
        last_login=login_info(user.last_login_at, user.last_login_ip, user.last_login_client),
        failed_attempts=user.throttle.current_failures(now, rules),
        locked_until=maybe_utc(locked),
        disabled_at=maybe_utc(user.disabled_at),
        password_change_required=user.password_change_required,
        recovery_codes_left=user.recovery_codes_left,
    )


def audit_item(row: Row) -> wire.AuditItem:
    return wire.AuditItem(
        id=row["id"],
        at=utc(row["at"]),
        actor=row["actor"],
        action=row["action"],
        target=row["target"],
        detail=json.loads(row["detail"] or "{}"),
        ip=row["ip"],
        client=row["client"],
    )


def service(row: ServiceRow) -> wire.Service:
    return wire.Service(
        name=row.name,
        description=row.description,
        created_at=utc(row.created_at),
        created_by=row.created_by,
        last_used_at=maybe_utc(row.last_used_at),
        last_used_ip=row.last_used_ip,
    )


def page(
    rows: Sequence[Row], limit: int, shape: Callable[[Row], Item]
) -> tuple[list[Item], int | None]:
    """Rows were fetched with LIMIT limit+1: the extra row only says whether more exist."""
    items = [shape(row) for row in rows[:limit]]
    next_before = items[-1].id if len(rows) > limit and items else None
    return items, next_before
