"""Signing in: the password step, the second factor, re-authentication and signing out."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

from tfa_protocol import types as wire
from tfa_server import sessions, views
from tfa_server.core import Core, Origin
from tfa_server.errors import (
    AccountDisabled,
    ChallengeExpired,
    CodeReused,
    InvalidCode,
    InvalidCredentials,
    TooManyAttempts,
    Unauthorized,
)
from tfa_server.second_factor import Method, Verdict, check, method_of
from tfa_server.storage import history, policy, throttles, users
from tfa_server.storage import second_factor as factor_rows
from tfa_server.storage import sessions as session_rows
from tfa_server.storage.database import Connection, storage_unavailable, transaction
from tfa_server.storage.history import HistoryEvent
from tfa_server.storage.sessions import Session, SessionKind
from tfa_server.storage.users import User
from tfa_server.throttle import ThrottleState, address_retry_after, after_failure

T = TypeVar("T")
USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
Status = Literal[
    "authenticated", "totp_required", "enrollment_required", "password_change_required"
]

WRONG_PASSWORD = "Wrong username or password."  # noqa: S105 a message, not a password
DISABLED = "This account is disabled. Contact your administrator."


@dataclass(frozen=True, slots=True)
class SignedIn:
    status: Status
    token: str
    expires_at: float
    user_id: int
    username: str
    session_id: int
    recovery_codes_left: int | None = None
    # The answer's account view, read in the sign-in's own transaction (one trip fewer).
    me: wire.Me | None = None


def code_refusal(verdict: Verdict, method: Method) -> CodeReused | InvalidCode:
    """Why a code was not taken, in the words of the sign-in's code step."""
    if verdict is Verdict.REUSED:
        return CodeReused(
            "That code has already been used. Wait for the next code and try again."
            if method == "totp"
            else "That recovery code has already been used."
        )
    return InvalidCode(
        "That code is not right. Check the time on your device and try again."
        if method == "totp"
        else "That recovery code is not right."
    )


def with_view(conn: Connection, signed: SignedIn) -> SignedIn:
    """The account view a signed-in answer carries, read in the caller's transaction; the
    steps before a full sign-in show none of it."""
    if signed.status not in ("authenticated", "enrollment_required"):
        return signed
    user = users.by_id(conn, signed.user_id)
    assert user is not None
    me = views.me(conn, user, session_rows.by_id(conn, signed.session_id))
    return replace(signed, me=me)


def canonical_username(name: str) -> str:
    return name.lower()


def history_event(
    user: User | None,
    name: str,
    origin: Origin,
    event: str,
    success: bool,
    method: str | None,
    reason: str | None = None,
) -> HistoryEvent:
    return HistoryEvent(
        user_id=user.id if user else None,
        username=user.username if user else name[:64],
        event=event,
        success=success,
        method=method,
        reason=reason,
        ip=origin.ip,
        client=origin.client,
        service=origin.service,
        service_ip=origin.service_ip,
    )


class SignIn:
    def __init__(self, core: Core) -> None:
        self.core = core

    async def _record(self, entry: HistoryEvent) -> None:
        now = self.core.now()
        await self.core.db.run(lambda conn: history.record(conn, entry, now))

    async def refuse_if_throttled(
        self, user: User | None, name: str, origin: Origin, event: str, method: str
    ) -> int:
        """Refuse before evaluating anything (the refusal goes into the history), or count the
        attempt against its address up front, so parallel guesses from one address cannot all
        slip under its limit: both in one write transaction, so every instance sees the same.
        Returns the counted failure's id, for `forgive` when the attempt proves no guess."""

        def _gate(conn: Connection) -> tuple[float | None, int]:
            with transaction(conn):
                return self.gate(conn, user, name, origin, event, method)

        wait, reserved = await self.core.db.run(_gate)
        if wait is not None:
            raise TooManyAttempts(wait)
        return reserved

    def gate(
        self,
        conn: Connection,
        user: User | None,
        name: str,
        origin: Origin,
        event: str,
        method: str,
    ) -> tuple[float | None, int]:
        """refuse_if_throttled's writes, in the caller's transaction: the wait (with the
        refusal recorded), or no wait and the address failure counted up front."""
        now = self.core.now()
        rules = self.core.settings.throttle
        state = user.throttle if user else throttles.name_state(conn, name)
        name_wait = state.retry_after(now)
        recent = throttles.address_failures(conn, origin.ip, now - rules.ip_window)
        waits = [
            wait
            for wait in (name_wait, address_retry_after(recent, now, rules))
            if wait is not None
        ]
        if not waits:
            return None, throttles.add_address_failure(conn, origin.ip, now)
        # A locked name keeps its own row (few names get locked: each needs failures the
        # address limit allows); any other unknown name is counted under one shared name.
        shown = name if user or name_wait is not None else history.UNKNOWN_NAMES
        entry = history_event(user, shown, origin, event, False, method, "throttled")
        history.record_refusal(conn, entry, now, rules.refusal_bucket)
        return max(waits), 0

    async def forgive(self, reserved: int) -> None:
        """Withdraw the address failure counted up front: the attempt was no wrong guess."""
        await self.core.db.run(lambda conn: throttles.forgive(conn, reserved))

    async def _forgive_quietly(self, reserved: int) -> None:
        """After storage failed (a 503: nothing checked, so no guess), if it can be done."""
        with contextlib.suppress(Exception):
            await self.forgive(reserved)

    async def count_failure(self, user: User | None, name: str, entry: HistoryEvent) -> None:
        def _write(conn: Connection) -> None:
            with transaction(conn):
                self.failure_writes(conn, user, name, entry)

        await self.core.db.run(_write)

    def failure_writes(
        self, conn: Connection, user: User | None, name: str, entry: HistoryEvent
    ) -> None:
        """A wrong password counted against its account (or unknown name) and recorded, in
        the caller's transaction."""
        now = self.core.now()
        rules = self.core.settings.throttle
        if user is None:
            state = after_failure(throttles.name_state(conn, name), now, rules)
            throttles.save_name_state(conn, name, state)
        else:
            users.save_throttle(conn, user.id, after_failure(user.throttle, now, rules))
        history.record(conn, entry, now)

    async def verify_password(
        self, user: User | None, name: str, password: str, origin: Origin, event: str, reserved: int
    ) -> bool:
        """Verify, with the address failure `reserved` by refuse_if_throttled; a success
        withdraws it."""
        ok = await self.core.passwords.verify(user.password_hash if user else None, password)
        if ok:
            await self.forgive(reserved)
            assert user is not None
            await self._rehash_if_needed(user, password)
            return True
        reason = "bad_password" if user else "unknown_user"
        entry = history_event(user, name, origin, event, False, "password", reason)
        try:
            await self.count_failure(user, name, entry)
        except Exception as exc:
            if storage_unavailable(exc):  # a 503: nothing recorded, so no guess counted
                await self._forgive_quietly(reserved)
            raise
        return False

    async def _rehash_if_needed(self, user: User, password: str) -> None:
        new_hash = await self._new_hash(user, password)
        if new_hash is None:
            return

        def _store(conn: Connection) -> None:
            users.replace_password_hash(conn, user.id, user.password_hash, new_hash)

        await self.core.db.run(_store)

    async def _new_hash(self, user: User, password: str) -> str | None:
        """A hash made with older or other Argon2 settings is replaced at its next right
        password, so every account ends up costing what the settings say (and an unknown
        name, checked against a dummy hash on the current settings, takes as long)."""
        passwords = self.core.passwords
        if not passwords.needs_rehash(user.password_hash):
            return None
        return await passwords.hash(password)

    async def login(self, username: str, password: str, origin: Origin) -> SignedIn:
        """Two write transactions around the hash, one on each side: the lease, the account
        and the throttle gate before it; the outcome recorded and the lease given back after.
        (A sign-in is mostly hashing; on few cores every write is taken from it.)"""
        name = canonical_username(username)
        core = self.core
        well_formed = USERNAME.fullmatch(name) is not None

        def _first(conn: Connection) -> tuple[User | None, float | None, int]:
            user = users.by_name(conn, name) if well_formed else None
            return user, *self.gate(conn, user, name, origin, "password", "password")

        async with core.account_locks.hold_with(name, _first) as (lease, first):
            user, wait, reserved = first
            if wait is not None:
                raise TooManyAttempts(wait)
            try:
                if not await core.passwords.verify(user.password_hash if user else None, password):
                    reason = "bad_password" if user else "unknown_user"
                    entry = history_event(user, name, origin, "password", False, "password", reason)
                    await lease.last(lambda conn: self.failure_writes(conn, user, name, entry))
                    raise InvalidCredentials(WRONG_PASSWORD)
                assert user is not None
                new_hash = await self._new_hash(user, password)
                signed = await lease.last(
                    lambda conn: self._succeed(conn, user, name, origin, reserved, new_hash)
                )
            except Exception as exc:
                if storage_unavailable(exc):  # a 503: nothing recorded, so no guess counted
                    await self._forgive_quietly(reserved)
                raise
            if signed is None:
                raise AccountDisabled(DISABLED)
            return signed

    def _succeed(
        self,
        conn: Connection,
        user: User,
        name: str,
        origin: Origin,
        reserved: int,
        new_hash: str | None,
    ) -> SignedIn | None:
        """The right password's writes, in the caller's transaction: the address failure
        withdrawn, a new hash stored, then the next step (None when the account is disabled:
        only the right password learns that, a wrong one was refused before)."""
        throttles.forgive(conn, reserved)
        if new_hash is not None:
            users.replace_password_hash(conn, user.id, user.password_hash, new_hash)
        fresh = users.by_id(conn, user.id)
        assert fresh is not None
        now = self.core.now()
        if fresh.disabled_at is not None:
            entry = history_event(
                fresh, name, origin, "password", False, "password", "account_disabled"
            )
            history.record(conn, entry, now)
            return None
        signed = self.next_step(conn, fresh, origin)
        reason = None if signed.status == "authenticated" else signed.status
        history.record(
            conn, history_event(fresh, name, origin, "password", True, "password", reason), now
        )
        return with_view(conn, signed)

    def next_step(self, conn: Connection, user: User, origin: Origin) -> SignedIn:
        """After the right password (or a changed one): a new temporary password first, then
        the second factor, then 2FA set-up when the policy demands it. In the caller's
        transaction."""
        deadline = policy.load(conn).enrollment_deadline()
        status: Status
        kind: SessionKind
        if user.password_change_required:
            status, kind = "password_change_required", "password_change"
        elif user.totp_enabled:
            status, kind = "totp_required", "challenge"
        elif deadline is not None and deadline <= self.core.now():
            status, kind = "enrollment_required", "enrollment"
        else:
            status, kind = "authenticated", "full"
        issued = sessions.issue(conn, self.core, user, kind, origin)
        return SignedIn(
            status, issued.token, issued.expires_at, user.id, user.username, issued.session_id
        )

    async def second_factor(
        self, authorization: str | None, code: str, method: Method, origin: Origin
    ) -> SignedIn:
        core = self.core
        challenge = await sessions.find_challenge(core, authorization)
        user = await core.db.run(lambda conn: users.by_id(conn, challenge.user_id))
        if user is None:
            raise Unauthorized("This account no longer exists.")
        async with core.account_locks.hold(user.username):
            user = await core.db.run(lambda conn: users.by_id(conn, challenge.user_id))
            assert user is not None
            now = core.now()
            if not sessions.is_live(challenge, now, core.settings.sessions.idle_timeout):
                await self._record(
                    history_event(
                        user, "", origin, "second_factor", False, method, "expired_challenge"
                    )
                )
                raise ChallengeExpired("This sign-in has expired. Enter your password again.")
            reserved = await self.refuse_if_throttled(
                user, user.username, origin, "second_factor", method
            )
            try:
                outcome = await core.db.run(
                    lambda conn: self._try_code(
                        conn, user, challenge, code, method, origin, reserved
                    )
                )
            except BaseException:
                # Storage failed (a 503): nothing was checked, so it is no failed guess.
                await self._forgive_quietly(reserved)
                raise
            if isinstance(outcome, SignedIn):
                return outcome
            verdict, exhausted = outcome
            if exhausted:
                raise ChallengeExpired(
                    "That code did not work, and it was the last try for this sign-in."
                    " Enter your password again."
                )
            raise code_refusal(verdict, method)

    def _try_code(
        self,
        conn: Connection,
        user: User,
        challenge: Session,
        code: str,
        method: Method,
        origin: Origin,
        reserved: int,
    ) -> SignedIn | tuple[Verdict, bool]:
        """One transaction: spend the code and issue the session, or count the failure. The
        address failure counted up front goes unless the code was a wrong guess (a reused
        code was right once: no guess either)."""
        core = self.core
        now = core.now()
        with transaction(conn):
            current = session_rows.by_id(conn, challenge.id)
            if current is None or current.revoked_at is not None:
                history.record(
                    conn,
                    history_event(
                        user, "", origin, "second_factor", False, method, "expired_challenge"
                    ),
                    now,
                )
                return Verdict.WRONG, True
            verdict = check(conn, core, user.id, code, method)
            if verdict is not Verdict.WRONG:
                throttles.forgive(conn, reserved)
            if verdict is Verdict.ACCEPTED:
                session_rows.revoke(conn, challenge.id, now)
                issued = sessions.issue(conn, core, user, "full", origin)
                history.record(
                    conn, history_event(user, "", origin, "second_factor", True, method), now
                )
                left = (
                    factor_rows.recovery_codes_left(conn, user.id)
                    if method == "recovery_code"
                    else None
                )
                signed = SignedIn(
                    "authenticated",
                    issued.token,
                    issued.expires_at,
                    user.id,
                    user.username,
                    issued.session_id,
                    left,
                )
                return with_view(conn, signed)
            attempts = session_rows.count_attempt(conn, challenge.id)
            exhausted = attempts >= core.settings.throttle.challenge_attempts
            if exhausted:
                session_rows.revoke(conn, challenge.id, now)
            if verdict is Verdict.WRONG:
                state = after_failure(user.throttle, now, core.settings.throttle)
                users.save_throttle(conn, user.id, state)
            history.record(
                conn,
                history_event(user, "", origin, "second_factor", False, method, verdict.value),
                now,
            )
            return verdict, exhausted

    async def reauthenticate(
        self,
        user_id: int,
        password: str,
        code: str,
        origin: Origin,
        then: Callable[[Connection, Method], T],
    ) -> T:
        """Password plus a current code before a 2FA change; `then` runs in the same
        transaction that spends the code, so the change and the spend land together."""
        core = self.core
        async with self._password_confirmed(user_id, password, origin) as user:
            method = method_of(code, core)
            reserved = await self.refuse_if_throttled(
                user, user.username, origin, "reauthentication", method
            )
            verdict, result = await self.spend_code(
                user,
                code,
                method,
                origin,
                "reauthentication",
                lambda conn: then(conn, method),
                reserved,
            )
            if verdict is Verdict.ACCEPTED:
                return result  # type: ignore[return-value]
            if verdict is Verdict.REUSED:
                raise CodeReused("That code has already been used. Wait for the next one.")
            raise InvalidCode("That code is not right.")

    async def spend_code(
        self,
        user: User,
        code: str,
        method: Method,
        origin: Origin,
        event: str,
        then: Callable[[Connection], T],
        reserved: int,
    ) -> tuple[Verdict, T | None]:
        """One code checked under the sign-in's rules, in one transaction: accepted, the
        account's failures clear and `then` runs (so what the code allows lands with its
        spend); refused, a wrong code counts and the refusal is in the history. The address
        failure `reserved` up front is withdrawn unless the code was a wrong guess."""
        core = self.core

        def _attempt(conn: Connection) -> tuple[Verdict, T | None]:
            now = core.now()
            with transaction(conn):
                verdict = check(conn, core, user.id, code, method)
                if verdict is not Verdict.WRONG:
                    throttles.forgive(conn, reserved)
                if verdict is Verdict.ACCEPTED:
                    users.save_throttle(conn, user.id, ThrottleState())
                    return verdict, then(conn)
                if verdict is Verdict.WRONG:
                    state = after_failure(user.throttle, now, core.settings.throttle)
                    users.save_throttle(conn, user.id, state)
                entry = history_event(user, "", origin, event, False, method, verdict.value)
                history.record(conn, entry, now)
                return verdict, None

        try:
            return await core.db.run(_attempt)
        except BaseException:
            await self._forgive_quietly(reserved)  # nothing checked: no guess
            raise

    @asynccontextmanager
    async def _password_confirmed(
        self, user_id: int, password: str, origin: Origin
    ) -> AsyncIterator[User]:
        """The signed-in user's password again, under the account's lock (held for whatever
        the caller checks next); a wrong one counts against the same throttles as signing in."""
        core = self.core
        user = await core.db.run(lambda conn: users.by_id(conn, user_id))
        if user is None:
            raise Unauthorized("This account no longer exists.")
        async with core.account_locks.hold(user.username):
            user = await core.db.run(lambda conn: users.by_id(conn, user_id))
            assert user is not None
            reserved = await self.refuse_if_throttled(
                user, user.username, origin, "reauthentication", "password"
            )
            if not await self.verify_password(
                user, user.username, password, origin, "reauthentication", reserved
            ):
                raise InvalidCredentials("That password is not right.")
            yield user

    async def confirm_password(self, user_id: int, password: str, origin: Origin) -> None:
        """The password alone, for a change an old session must not make by itself."""
        async with self._password_confirmed(user_id, password, origin):
            pass

    async def with_password(
        self, user_id: int, password: str, origin: Origin, then: Callable[[Connection], T]
    ) -> T:
        """The password, then `then` in one transaction under the account's lock."""
        async with self._password_confirmed(user_id, password, origin):

            def _run(conn: Connection) -> T:
                with transaction(conn):
                    return then(conn)

            return await self.core.db.run(_run)

    async def logout(self, session: Session, origin: Origin) -> None:
        core = self.core

        def _logout(conn: Connection) -> None:
            now = core.now()
            with transaction(conn):
                if session_rows.revoke(conn, session.id, now):
                    user = users.by_id(conn, session.user_id)
                    history.record(conn, history_event(user, "", origin, "logout", True, None), now)

        await core.db.run(_logout)
