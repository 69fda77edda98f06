"""What a signed-in person does to their own account: password, 2FA, recovery codes,
history, sessions."""

from __future__ import annotations

import hmac

from tfa_protocol import types as wire
from tfa_server import activity as sign_in_activity
from tfa_server import totp, views
from tfa_server.auth import SignedIn, SignIn, history_event
from tfa_server.core import Core, Origin
from tfa_server.errors import (
    Conflict,
    InvalidCode,
    InvalidRequest,
    NotFound,
    PasswordRequired,
    PolicyRequires2fa,
    Unauthorized,
)
from tfa_server.second_factor import Method, new_recovery_codes, require_current_key
from tfa_server.storage import history, policy, users
from tfa_server.storage import second_factor as factor_rows
from tfa_server.storage import sessions as session_rows
from tfa_server.storage.database import Connection, transaction
from tfa_server.storage.sessions import Session
from tfa_server.storage.users import User

FORCED_POLICY_WARNING = (
    "Two-factor authentication is mandatory for all accounts. If you disconnect it you will be"
    " signed out everywhere and must set it up again at your next sign-in."
)


def _user(conn: Connection, user_id: int) -> User:
    user = users.by_id(conn, user_id)
    if user is None:
        raise Unauthorized("This account no longer exists.")
    return user


class Account:
    def __init__(self, core: Core, sign_in: SignIn) -> None:
        self.core = core
        self.sign_in = sign_in

    async def user_view(self, user_id: int, session_id: int) -> wire.Me:
        def _view(conn: Connection) -> wire.Me:
            return views.me(conn, _user(conn, user_id), session_rows.by_id(conn, session_id))

        return await self.core.db.run(_view)

    async def totp_setup(
        self, session: Session, password: str | None, origin: Origin
    ) -> wire.TotpSetup:
        """A new pending secret; it replaces any earlier pending one and is not active yet.

        Whoever connects an authenticator controls the account from then on, so a session
        that signed in more than a few minutes ago must show the password again.
        """
        core = self.core
        rules = core.settings.totp
        fresh = core.now() - session.created_at <= core.settings.sessions.fresh_sign_in
        if password is None and not fresh:
            raise PasswordRequired(
                "Enter your password to connect an authenticator app: this session signed in"
                " more than a few minutes ago."
            )
        if password is not None:
            await self.sign_in.confirm_password(session.user_id, password, origin)
        secret = totp.new_secret(rules)

        def _store(conn: Connection) -> User:
            with transaction(conn):
                user = _user(conn, session.user_id)
                if user.totp_enabled:
                    raise Conflict(
                        "Two-factor authentication is already on. Disconnect it first to"
                        " connect another app."
                    )
                require_current_key(conn, core)
                blob = core.keys.encrypt_secret(secret, user.id)
                factor_rows.put_pending(conn, user.id, blob, core.now())
                return user

        user = await core.db.run(_store)
        return wire.TotpSetup(
            secret=secret,
            otpauth_uri=totp.provisioning_uri(secret, user.username, core.settings.issuer, rules),
            issuer=core.settings.issuer,
            account=user.username,
            algorithm=rules.algorithm,
            digits=rules.digits,
            period=rules.period,
        )

    async def totp_confirm(self, session: Session, code: str, origin: Origin) -> wire.RecoveryCodes:
        """The first right code turns 2FA on, issues the codes and, for an enrollment
        session, makes it a full one: all in one transaction."""
        core = self.core

        def _confirm(conn: Connection) -> list[str]:
            now = core.now()
            with transaction(conn):
                user = _user(conn, session.user_id)
                blob = factor_rows.pending_secret(conn, user.id)
                if user.totp_enabled or blob is None:
                    raise Conflict(
                        "There is no setup waiting for a code. Start the setup again."
                        if not user.totp_enabled
                        else "Two-factor authentication is already on."
                    )
                require_current_key(conn, core)
                secret = core.keys.decrypt_secret(blob, user.id)
                step = totp.matching_step(secret, code, now, core.settings.totp)
                if step is None:
                    raise InvalidCode(
                        "That code is not right. Check that the app shows this account and"
                        " that your device's clock is correct, then try the next code."
                    )
                if not factor_rows.activate(conn, user.id, blob, step, now):
                    raise Conflict("Two-factor authentication is already on.")
                codes = new_recovery_codes(conn, core, user.id)
                if session.kind == "enrollment":
                    session_rows.upgrade_to_full(conn, session.id)
                history.record(
                    conn, history_event(user, "", origin, "totp_enabled", True, "totp"), now
                )
                return codes

        return wire.RecoveryCodes(await core.db.run(_confirm))

    async def totp_disable(
        self,
        session: Session,
        password: str,
        code: str,
        acknowledge_forced_policy: bool,
        origin: Origin,
    ) -> wire.TotpDisabled:
        core = self.core
        forced = await core.db.run(lambda conn: policy.load(conn).force_2fa)
        if forced and not acknowledge_forced_policy:
            raise PolicyRequires2fa(FORCED_POLICY_WARNING)
        user = await core.db.run(lambda conn: _user(conn, session.user_id))
        if not user.totp_enabled:
            raise Conflict("Two-factor authentication is not on.")

        def _disable(conn: Connection, method: Method) -> bool:
            now = core.now()
            # Read the policy again inside the transaction: it may have changed meanwhile.
            forced_now = policy.load(conn).force_2fa
            factor_rows.remove(conn, user.id)
            history.record(
                conn, history_event(user, "", origin, "totp_disabled", True, method), now
            )
            if forced_now:
                session_rows.revoke_all(conn, user.id, now)
                history.record(
                    conn,
                    history_event(
                        user, "", origin, "forced_sign_out", True, None, "policy_requires_2fa"
                    ),
                    now,
                )
            return forced_now

        logged_out = await self.sign_in.reauthenticate(user.id, password, code, origin, _disable)
        return wire.TotpDisabled(totp_enabled=False, logged_out=logged_out)

    async def regenerate_recovery_codes(
        self, session: Session, password: str, code: str, origin: Origin
    ) -> wire.RecoveryCodes:
        core = self.core
        user = await core.db.run(lambda conn: _user(conn, session.user_id))
        if not user.totp_enabled:
            raise Conflict("Two-factor authentication is not on, so there are no recovery codes.")

        def _regenerate(conn: Connection, method: Method) -> list[str]:
            codes = new_recovery_codes(conn, core, user.id)
            history.record(
                conn,
                history_event(user, "", origin, "recovery_codes_regenerated", True, method),
                core.now(),
            )
            return codes

        codes = await self.sign_in.reauthenticate(user.id, password, code, origin, _regenerate)
        return wire.RecoveryCodes(codes)

    async def change_password(
        self,
        session: Session,
        current: str,
        new: str,
        code: str | None,
        origin: Origin,
    ) -> SignedIn | None:
        """The current password (and a code, with 2FA) for a new one; every other session
        ends. A session from a temporary password ends too, and its answer is the sign-in's
        next step (the second factor, or 2FA set-up), since the password alone is no sign-in."""
        core = self.core
        if hmac.compare_digest(current.encode(), new.encode()):
            raise InvalidRequest("The new password must differ from the current one.")
        restricted = session.kind == "password_change"
        user = await core.db.run(lambda conn: _user(conn, session.user_id))
        if user.totp_enabled and not restricted and code is None:
            raise InvalidRequest(
                "Enter a code from your authenticator app (or a recovery code): this account"
                " has two-factor authentication."
            )
        new_hash = await core.passwords.hash(new)

        def _change(conn: Connection, method: Method | None) -> SignedIn | None:
            now = core.now()
            users.set_password(conn, user.id, new_hash, change_required=False)
            session_rows.revoke_others(conn, user.id, session.id, now)
            entry = history_event(user, "", origin, "password_changed", True, method or "password")
            history.record(conn, entry, now)
            if not restricted:
                return None
            session_rows.revoke(conn, session.id, now)
            return self.sign_in.next_step(conn, _user(conn, user.id), origin)

        if user.totp_enabled and not restricted:
            assert code is not None
            return await self.sign_in.reauthenticate(user.id, current, code, origin, _change)
        return await self.sign_in.with_password(
            user.id, current, origin, lambda conn: _change(conn, None)
        )

    async def history(
        self,
        session: Session,
        success: bool | None,
        service: str | None,
        limit: int,
        before: int | None,
    ) -> wire.HistoryPage:
        rows = await self.core.db.run(
            lambda conn: history.page(
                conn,
                limit=limit + 1,
                before=before,
                user_id=session.user_id,
                success=success,
                service=service.lower() if service else None,
            )
        )
        return wire.HistoryPage(*views.page(rows, limit, views.history_item))

    async def activity(self, session: Session, days: int, utc_offset: int) -> wire.Activity:
        """Own sign-ins per day and the last refused attempt, from the rollup."""
        now = self.core.now()
        return await self.core.db.run(
            lambda conn: sign_in_activity.own(conn, session.user_id, now, days, utc_offset)
        )

    async def sessions(self, session: Session) -> wire.SessionList:
        core = self.core
        rows = await core.db.run(
            lambda conn: session_rows.active(
                conn, session.user_id, core.now(), core.settings.sessions.idle_timeout
            )
        )
        return wire.SessionList([views.session_item(row, session.id) for row in rows])

    async def revoke_session(self, session: Session, target_id: int, origin: Origin) -> None:
        core = self.core

        def _revoke(conn: Connection) -> None:
            now = core.now()
            with transaction(conn):
                target = session_rows.by_id(conn, target_id)
                if (
                    target is None
                    or target.user_id != session.user_id
                    or target.kind == "challenge"
                    or target.revoked_at is not None
                ):
                    raise NotFound("There is no such active session.")
                session_rows.revoke(conn, target_id, now)
                user = _user(conn, session.user_id)
                history.record(
                    conn, history_event(user, "", origin, "session_revoked", True, None), now
                )

        await core.db.run(_revoke)
