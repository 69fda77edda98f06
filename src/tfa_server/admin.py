"""Administration: policy, accounts and their lifecycle, everyone's history and the audit log.

Shared by the HTTP API and the `tfa-server` CLI, so both are audited the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from tfa_protocol import types as wire
from tfa_protocol.types import SERVICE_NAME_RULE, USERNAME_RULE
from tfa_server import activity as sign_in_activity
from tfa_server import views
from tfa_server.auth import USERNAME, canonical_username, history_event
from tfa_server.core import Core, Origin
from tfa_server.crypto import token_digest
from tfa_server.errors import Conflict, InvalidRequest, NotFound
from tfa_server.passwords import password_problem
from tfa_server.storage import audit, history, policy, users
from tfa_server.storage import second_factor as factor_rows
from tfa_server.storage import services as service_rows
from tfa_server.storage import sessions as session_rows
from tfa_server.storage.audit import AuditEntry
from tfa_server.storage.database import Connection, transaction
from tfa_server.storage.services import ServiceRow
from tfa_server.storage.users import User
from tfa_server.throttle import ThrottleState
from tfa_server.verify import new_service_key

MAX_GRACE_DAYS = 365


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: an administrator over HTTP, or `cli:<login>` on the server's console."""

    name: str
    origin: Origin | None


def valid_username(username: str, *, rule: str = USERNAME_RULE) -> str:
    """Lower case; services' names follow the same rule (with `rule` saying so)."""
    name = canonical_username(username)
    if not (username.isascii() and USERNAME.fullmatch(name)):
        raise InvalidRequest(rule)
    return name


def _target(conn: Connection, username: str) -> User:
    user = users.by_name(conn, canonical_username(username))
    if user is None:
        raise NotFound(f"There is no user '{username[:64]}'.")
    return user


class Admin:
    def __init__(self, core: Core) -> None:
        self.core = core

    def _audit(
        self,
        conn: Connection,
        actor: Actor,
        action: str,
        target: str | None,
        detail: dict[str, Any],
    ) -> None:
        origin = actor.origin
        entry = AuditEntry(
            actor.name,
            action,
            target,
            detail,
            origin.ip if origin else None,
            origin.client if origin else None,
        )
        audit.record(conn, entry, self.core.now())

    def _view(self, user: User) -> wire.AdminUser:
        return views.admin_user(user, self.core.now(), self.core.settings.throttle)

    async def get_policy(self) -> wire.Policy:
        return views.policy_view(await self.core.db.run(policy.load))

    async def set_policy(
        self, actor: Actor, force_2fa: bool, grace_period_days: int
    ) -> wire.Policy:
        if not 0 <= grace_period_days <= MAX_GRACE_DAYS:
            raise InvalidRequest(f"The grace period is 0 to {MAX_GRACE_DAYS} days.")

        def _save(conn: Connection) -> policy.Policy:
            with transaction(conn):
                before = policy.load(conn)
                after = policy.save(conn, force_2fa, grace_period_days, self.core.now())
                self._audit(
                    conn,
                    actor,
                    "policy_changed",
                    None,
                    {
                        "before": {
                            "force_2fa": before.force_2fa,
                            "grace_period_days": before.grace_period_days,
                        },
                        "after": {"force_2fa": force_2fa, "grace_period_days": grace_period_days},
                    },
                )
                return after

        return views.policy_view(await self.core.db.run(_save))

    async def list_users(self) -> wire.UserList:
        """Every account at once: for the console (`tfa-server user list`)."""
        found = await self.core.db.run(users.all_users)
        return wire.UserList([self._view(user) for user in found], next_after=None)

    async def user_page(
        self, limit: int, after: str | None, where: users.UserFilter
    ) -> wire.UserList:
        """A page in name order; names and the part searched for compare in lower case."""
        now = self.core.now()
        found = await self.core.db.run(
            lambda conn: users.page(
                conn, limit + 1, canonical_username(after) if after else None, where, now
            )
        )
        items = [self._view(user) for user in found[:limit]]
        return wire.UserList(items, next_after=items[-1].username if len(found) > limit else None)

    async def get_user(self, username: str) -> wire.AdminUser:
        return self._view(await self.core.db.run(lambda conn: _target(conn, username)))

    async def activity(
        self, username: str | None, days: int, utc_offset: int
    ) -> wire.AdminActivity:
        """Everyone's sign-in activity, or one existing account's (its id, so rows of a
        deleted account of the same name are not its own)."""
        now = self.core.now()

        def _read(conn: Connection) -> wire.AdminActivity:
            user_id = _target(conn, username).id if username is not None else None
            return sign_in_activity.overall(conn, user_id, now, days, utc_offset)

        return await self.core.db.run(_read)

    async def create_user(
        self, actor: Actor, username: str, password: str, is_admin: bool
    ) -> wire.AdminUser:
        name = valid_username(username)
        problem = password_problem(password)
        if problem:
            raise InvalidRequest(problem)
        password_hash = await self.core.passwords.hash(password)

        def _create(conn: Connection) -> User:
            with transaction(conn):
                user_id = users.create(conn, name, password_hash, is_admin, self.core.now())
                if user_id is None:
                    raise Conflict(f"The username '{name}' is taken.")
                self._audit(conn, actor, "user_created", name, {"is_admin": is_admin})
                created = users.by_id(conn, user_id)
                assert created is not None
                return created

        return self._view(await self.core.db.run(_create))

    def _on_user(
        self, username: str, work: Callable[[Connection, User, float], None]
    ) -> Callable[[Connection], User]:
        """`work` on the named account in one transaction; the account as it is after."""

        def _run(conn: Connection) -> User:
            with transaction(conn):
                user = _target(conn, username)
                work(conn, user, self.core.now())
                fresh = users.by_id(conn, user.id)
                assert fresh is not None
                return fresh

        return _run

    def _record(
        self,
        conn: Connection,
        actor: Actor,
        user: User,
        event: str,
        action: str,
        detail: dict[str, Any],
        reason: str | None = None,
    ) -> None:
        """An administrator's act on an account: in the audit log and the account's history."""
        origin = actor.origin or Origin("", "tfa-server cli")
        entry = history_event(user, "", origin, event, True, None, reason)
        history.record(conn, entry, self.core.now())
        self._audit(conn, actor, action, user.username, detail)

    def _keep_an_administrator(
        self,
        conn: Connection,
        actor: Actor,
        user: User,
        doing: str,
        *,
        may_be_own: bool = False,
    ) -> None:
        """Someone must be able to administer tfa afterwards, and nobody locks themselves
        out by a slip: another administrator disables or deletes an administrator."""
        if actor.name == user.username and not may_be_own:
            raise Conflict(
                f"You cannot {doing} your own account: another administrator must do it."
            )
        if user.is_admin and user.disabled_at is None and users.enabled_admins(conn) <= 1:
            raise Conflict(
                f"{user.username} is the last enabled administrator, so you cannot {doing} this"
                " account. Make another account an administrator first."
            )

    async def reset_2fa(self, actor: Actor, username: str) -> wire.AdminUser:
        """Remove the user's 2FA and end their sessions, for a person who lost their phone; a
        user without 2FA is refused (409) and nothing changes."""

        def _reset(conn: Connection, user: User, now: float) -> None:
            if not factor_rows.remove(conn, user.id):
                # Nothing to reset: a "reset" would still end every session and stand in
                # the audit log as one. The transaction rolls back a pending setup too.
                raise Conflict(f"{user.username} has no two-factor authentication to reset.")
            ended = session_rows.revoke_all(conn, user.id, now)
            detail = {"had_2fa": True, "sessions_ended": ended}
            self._record(conn, actor, user, "totp_reset_by_admin", "totp_reset", detail)

        return self._view(await self.core.db.run(self._on_user(username, _reset)))

    async def unlock(self, actor: Actor, username: str) -> wire.AdminUser:
        def _unlock(conn: Connection, user: User, now: float) -> None:
            users.save_throttle(conn, user.id, ThrottleState())
            detail = {"failed_attempts": user.failed_attempts}
            self._audit(conn, actor, "user_unlocked", user.username, detail)

        return self._view(await self.core.db.run(self._on_user(username, _unlock)))

    async def reset_password(
        self, actor: Actor, username: str, password: str, temporary: bool
    ) -> wire.AdminUser:
        """For a person who forgot theirs: every session ends, the throttle clears, and a
        temporary password must be replaced at the next sign-in before anything else."""
        problem = password_problem(password)
        if problem:
            raise InvalidRequest(problem)
        password_hash = await self.core.passwords.hash(password)

        def _reset(conn: Connection, user: User, now: float) -> None:
            users.set_password(conn, user.id, password_hash, change_required=temporary)
            ended = session_rows.revoke_all(conn, user.id, now)
            detail = {"temporary": temporary, "sessions_ended": ended}
            reason = "temporary" if temporary else None
            self._record(
                conn, actor, user, "password_reset_by_admin", "password_reset", detail, reason
            )

        return self._view(await self.core.db.run(self._on_user(username, _reset)))

    async def disable(self, actor: Actor, username: str) -> wire.AdminUser:
        """At once: every session and sign-in in progress ends, and no new one starts."""

        def _disable(conn: Connection, user: User, now: float) -> None:
            if user.disabled_at is not None:
                raise Conflict(f"{user.username} is already disabled.")
            self._keep_an_administrator(conn, actor, user, "disable")
            users.set_disabled(conn, user.id, now)
            ended = session_rows.revoke_all(conn, user.id, now)
            detail = {"sessions_ended": ended}
            self._record(conn, actor, user, "account_disabled", "user_disabled", detail)

        return self._view(await self.core.db.run(self._on_user(username, _disable)))

    async def enable(self, actor: Actor, username: str) -> wire.AdminUser:
        def _enable(conn: Connection, user: User, now: float) -> None:
            if not users.set_disabled(conn, user.id, None):
                raise Conflict(f"{user.username} is not disabled.")
            disabled_for = round(now - (user.disabled_at or now))
            detail = {"disabled_seconds": disabled_for}
            self._record(conn, actor, user, "account_enabled", "user_enabled", detail)

        return self._view(await self.core.db.run(self._on_user(username, _enable)))

    async def set_admin(self, actor: Actor, username: str, is_admin: bool) -> wire.AdminUser:
        """Idempotent, as PUT is: asking for what already holds changes and records nothing."""

        def _set(conn: Connection, user: User, now: float) -> None:
            if user.is_admin == is_admin:
                return
            if not is_admin:
                doing = "remove administrator rights from"
                self._keep_an_administrator(conn, actor, user, doing, may_be_own=True)
            users.set_admin(conn, user.id, is_admin)
            event = "admin_granted" if is_admin else "admin_revoked"
            self._record(conn, actor, user, event, event, {"is_admin": is_admin})

        return self._view(await self.core.db.run(self._on_user(username, _set)))

    async def may_delete(self, actor: Actor, username: str) -> None:
        """The delete's rules alone, for asking "are you sure?" only when it could happen."""

        def _check(conn: Connection) -> None:
            self._keep_an_administrator(conn, actor, _target(conn, username), "delete")

        await self.core.db.run(_check)

    async def delete(self, actor: Actor, username: str) -> None:
        """The account, its secrets, codes and sessions go; its history stays for
        administrators under the old name, marked, and the name is free again."""

        def _delete(conn: Connection, user: User, now: float) -> None:
            self._keep_an_administrator(conn, actor, user, "delete")
            ended = session_rows.revoke_all(conn, user.id, now)
            detail = {
                "was_admin": user.is_admin,
                "had_2fa": user.totp_enabled,
                "sessions_ended": ended,
            }
            self._record(conn, actor, user, "account_deleted", "user_deleted", detail)
            history.mark_deleted(conn, user.id)
            users.delete(conn, user.id)

        def _run(conn: Connection) -> None:
            with transaction(conn):
                _delete(conn, _target(conn, username), self.core.now())

        await self.core.db.run(_run)

    async def add_service(self, actor: Actor, name: str, description: str) -> wire.NewService:
        """A relying service and its key, which this answer holds once: only its hash is kept."""
        service_name = valid_username(name, rule=SERVICE_NAME_RULE)
        key = new_service_key()

        def _add(conn: Connection) -> ServiceRow:
            with transaction(conn):
                now = self.core.now()
                created = service_rows.create(
                    conn, service_name, description, token_digest(key), now, actor.name
                )
                if created is None:
                    raise Conflict(f"There is already a service called '{service_name}'.")
                self._audit(
                    conn, actor, "service_added", service_name, {"description": description}
                )
                row = service_rows.by_name(conn, service_name)
                assert row is not None
                return row

        row = await self.core.db.run(_add)
        return wire.NewService(**msgspec.structs.asdict(views.service(row)), key=key)

    async def list_services(self) -> wire.ServiceList:
        rows = await self.core.db.run(service_rows.all_services)
        return wire.ServiceList([views.service(row) for row in rows])

    async def revoke_service(self, actor: Actor, name: str) -> None:
        """Immediate: the key's next request is refused."""

        def _revoke(conn: Connection) -> None:
            with transaction(conn):
                row = service_rows.by_name(conn, canonical_username(name))
                if row is None or not service_rows.delete(conn, row.name):
                    raise NotFound(f"There is no service '{name[:64]}'.")
                self._audit(conn, actor, "service_revoked", row.name, {})

        await self.core.db.run(_revoke)

    async def history(
        self,
        username: str | None,
        success: bool | None,
        service: str | None,
        limit: int,
        before: int | None,
    ) -> wire.AdminHistoryPage:
        name = canonical_username(username) if username else None
        rows = await self.core.db.run(
            lambda conn: history.page(
                conn,
                limit=limit + 1,
                before=before,
                username=name,
                success=success,
                service=canonical_username(service) if service else None,
            )
        )
        return wire.AdminHistoryPage(*views.page(rows, limit, views.admin_history_item))

    async def audit_log(self, limit: int, before: int | None) -> wire.AuditPage:
        rows = await self.core.db.run(lambda conn: audit.page(conn, limit=limit + 1, before=before))
        return wire.AuditPage(*views.page(rows, limit, views.audit_item))
