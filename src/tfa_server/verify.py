"""The verify API: programs that guard another door (sshd and sudo through the PAM module, or
any service) ask whether a user's code is right, under the same rules as tfa's own sign-in.

A service key opens these calls and nothing else. The end user's address, as the service saw
it, is the address that history records and the per-address limit counts; the service's own
name and address go beside it.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import time
import uuid
from dataclasses import dataclass
from ipaddress import ip_address

from tfa_protocol import types as wire
from tfa_server.auth import (
    DISABLED,
    USERNAME,
    SignIn,
    canonical_username,
    code_refusal,
    history_event,
)
from tfa_server.core import LEASE_SECONDS, Core, Origin
from tfa_server.crypto import token_digest
from tfa_server.errors import (
    AccountDisabled,
    EnrollmentRequired,
    InvalidCredentials,
    InvalidRequest,
    PasswordChangeRequired,
    TooManyAttempts,
    TotpNotEnabled,
    Unauthorized,
    UnknownUser,
)
from tfa_server.second_factor import Method, Verdict, check, method_of
from tfa_server.storage import history, policy, throttles, users
from tfa_server.storage import second_factor as factor_rows
from tfa_server.storage import services as service_rows
from tfa_server.storage.database import Connection, transaction
from tfa_server.storage.services import ServiceRow
from tfa_server.storage.users import User
from tfa_server.throttle import ThrottleState, address_retry_after, after_failure

# Writing last-used on every call would cost a synced write per code check.
_TOUCH_INTERVAL = 60.0


def new_service_key() -> str:
    """256 random bits behind a prefix that secret scanners can be taught to spot."""
    return wire.SERVICE_KEY_PREFIX + secrets.token_urlsafe(32)


def _service_key(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if (
        scheme.lower() != "bearer"
        or not token.startswith(wire.SERVICE_KEY_PREFIX)
        or len(token) > 128
    ):
        raise Unauthorized("This needs a service key (Authorization: Bearer tfasvc_...).")
    return token


async def resolve_service(core: Core, authorization: str | None, peer: str) -> ServiceRow:
    """The registered service behind a key; a revoked key is refused at once."""
    digest = token_digest(_service_key(authorization))
    now = core.now()

    def _load(conn: Connection) -> ServiceRow | None:
        row = service_rows.by_digest(conn, digest)
        stale = row is not None and (
            row.last_used_at is None
            or now - row.last_used_at >= _TOUCH_INTERVAL
            or row.last_used_ip != peer
        )
        if row is not None and stale:
            service_rows.touch(conn, row.id, now, peer)
        return row

    row = await core.db.run(_load)
    if row is None:
        raise Unauthorized("This service key is not valid (revoked, or never issued).")
    return row


def end_user_origin(service: ServiceRow, remote_ip: str | None, peer: str, agent: str) -> Origin:
    """History and the per-address limit see the end user's address; without one, the
    service's own (so a service that sends none shares one budget among its users)."""
    if remote_ip is not None:
        try:
            remote_ip = str(ip_address(remote_ip))
        except ValueError:
            raise InvalidRequest("'remote_ip' must be an IP address.") from None
    return Origin(remote_ip or peer, agent, service=service.name, service_ip=peer)


def _unknown(username: str) -> UnknownUser:
    return UnknownUser(f"There is no tfa account '{username[:64]}'.")


def _without_2fa(deadline: float | None, now: float) -> str:
    """Why a code cannot be checked for an account without 2FA: the policy's deadline has
    passed (enrollment_required) or not (totp_not_enabled)."""
    return "enrollment_required" if deadline is not None and deadline <= now else "totp_not_enabled"


def _days(seconds: float) -> int:
    return max(1, math.ceil(seconds / 86400))


@dataclass(frozen=True, slots=True)
class _Checked:
    """What one code check in one transaction came to, raised or answered by the caller
    once the transaction committed (so the history it wrote stays)."""

    verdict: Verdict | None = None  # the code's, when it was checked
    left: int | None = None  # recovery codes left, when accepted
    refusal: str | None = None  # "account_disabled", "enrollment_required", "totp_not_enabled"
    wait: float | None = None  # throttled: seconds to wait


class Verify:
    def __init__(self, core: Core, sign_in: SignIn) -> None:
        self.core = core
        self.sign_in = sign_in
        # The code-only check's own lease holder: never this process's sign-ins' (whose
        # lease, if they hold it, must stop it), and gone again in the same transaction.
        self._holder = f"{socket.gethostname()}:{os.getpid()}:verify:{uuid.uuid4().hex[:8]}"

    def _setup_hint(self) -> str:
        url = self.core.settings.public_url
        return f"tfa --server {url}" if url else "tfa"

    async def _user(self, username: str) -> User:
        name = canonical_username(username)
        user = None
        if USERNAME.fullmatch(name):
            user = await self.core.db.run(lambda conn: users.by_name(conn, name))
        if user is None:
            raise _unknown(username)
        return user

    async def _record(self, user: User, origin: Origin, event: str, ok: bool, **kw: str) -> None:
        entry = history_event(user, "", origin, event, ok, kw.get("method"), kw.get("reason"))
        now = self.core.now()
        await self.core.db.run(lambda conn: history.record(conn, entry, now))

    async def start(self, username: str, origin: Origin) -> wire.VerifyStart:
        """What the service should do next for this user."""
        user = await self._user(username)
        event = "verify_start"
        if user.disabled_at is not None:
            await self._record(user, origin, event, False, reason="account_disabled")
            return wire.Deny("account_disabled", DISABLED)
        if user.totp_enabled:
            await self._record(user, origin, event, True, reason="totp_required")
            return wire.AskForCode()
        deadline = await self.core.db.run(lambda conn: policy.load(conn).enrollment_deadline())
        now = self.core.now()
        hint = self._setup_hint()
        if deadline is None:
            await self._record(user, origin, event, True, reason="not_required")
            return wire.Allow(
                "Two-factor authentication is not set up for this account. Set it up from any"
                f" terminal: {hint}"
            )
        if deadline > now:
            days = _days(deadline - now)
            await self._record(user, origin, event, True, reason="grace_period")
            return wire.Allow(
                f"Your administrator requires two-factor authentication in {days}"
                f" day{'s' if days != 1 else ''}. Set it up now from any terminal: {hint}"
            )
        await self._record(user, origin, event, False, reason="enrollment_required")
        return wire.Deny("enrollment_required", self._enroll_message())

    def _enroll_message(self) -> str:
        return (
            "Your administrator requires two-factor authentication, and it is not set up for"
            f" this account. Set it up from any terminal: {self._setup_hint()}"
            " and then sign in here again."
        )

    async def verify(
        self, username: str, code: str, password: str | None, origin: Origin
    ) -> wire.Verified:
        """The code (and the password, when given) under the sign-in's rules: its throttles,
        one step either side, every code spent once wherever it was used."""
        if password is None:
            name = canonical_username(username)
            if not USERNAME.fullmatch(name):
                raise _unknown(username)
            checked = await self.core.db.run(
                lambda conn: self._code_at_once(conn, name, code, origin)
            )
            if checked is not None:
                return self._answer(checked, username, method_of(code, self.core))
        core = self.core
        user = await self._user(username)
        async with core.account_locks.hold(user.username):
            user = await self._user(user.username)
            if user.disabled_at is not None:
                await self._record(user, origin, "verify", False, reason="account_disabled")
                raise AccountDisabled(DISABLED)
            if password is not None:
                reserved = await self.sign_in.refuse_if_throttled(
                    user, user.username, origin, "verify", "password"
                )
                if not await self.sign_in.verify_password(
                    user, user.username, password, origin, "verify", reserved
                ):
                    raise InvalidCredentials("Wrong username or password.")
                if user.password_change_required:
                    # A temporary password opens nothing before it is replaced, here neither.
                    await self._record(
                        user, origin, "verify", False, reason="password_change_required"
                    )
                    raise PasswordChangeRequired(
                        "Your administrator set a temporary password. Choose a new one from"
                        f" any terminal: {self._setup_hint()} and then sign in here again."
                    )
            if not user.totp_enabled:
                await self._refuse_without_2fa(user, origin)
            method = method_of(code, core)
            reserved = await self.sign_in.refuse_if_throttled(
                user, user.username, origin, "verify", method
            )

            def _allowed(conn: Connection) -> int:
                entry = history_event(user, "", origin, "verify", True, method)
                history.record(conn, entry, core.now())
                return factor_rows.recovery_codes_left(conn, user.id)

            verdict, left = await self.sign_in.spend_code(
                user, code, method, origin, "verify", _allowed, reserved
            )
        if verdict is Verdict.ACCEPTED:
            assert left is not None
            return wire.Verified("allow", method, left)
        raise code_refusal(verdict, method)

    def _code_at_once(
        self, conn: Connection, name: str, code: str, origin: Origin
    ) -> _Checked | None:
        """A code without a password, all in one write transaction: what the slow path does
        in four (lease, throttle gate, spend, lease back) under the account's lease, here
        under the database's write lock, which serialises every check of every instance the
        same way. None, having written nothing, when another request holds the account's
        lease (a sign-in hashing a password read its throttle state and will write it):
        the caller then queues for the lease like every other request.

        The same rules in the same order: disabled, no 2FA, throttled (account or address),
        then the code; a wrong code counts against the account and the address, a reused one
        against neither, a right one clears the account's failures."""
        core = self.core
        rules = core.settings.throttle
        with transaction(conn):
            user = users.by_name(conn, name)
            if user is None:
                return _Checked(refusal="unknown_user")
            wall = time.time()  # leases outlive no process: wall time, not the policy clock
            if not throttles.acquire_lease(
                conn, user.username, self._holder, wall, wall + LEASE_SECONDS
            ):
                return None
            throttles.release_lease(conn, user.username, self._holder)
            now = core.now()

            def record(ok: bool, method: str | None, reason: str | None = None) -> None:
                entry = history_event(user, "", origin, "verify", ok, method, reason)
                history.record(conn, entry, now)

            if user.disabled_at is not None:
                record(False, None, "account_disabled")
                return _Checked(refusal="account_disabled")
            if not user.totp_enabled:
                reason = _without_2fa(policy.load(conn).enrollment_deadline(), now)
                record(False, None, reason)
                return _Checked(refusal=reason)
            method: Method = method_of(code, core)
            recent = throttles.address_failures(conn, origin.ip, now - rules.ip_window)
            waits = [
                wait
                for wait in (
                    user.throttle.retry_after(now),
                    address_retry_after(recent, now, rules),
                )
                if wait is not None
            ]
            if waits:
                entry = history_event(
                    user, user.username, origin, "verify", False, method, "throttled"
                )
                history.record_refusal(conn, entry, now, rules.refusal_bucket)
                return _Checked(wait=max(waits))
            verdict = check(conn, core, user.id, code, method)
            if verdict is Verdict.ACCEPTED:
                users.save_throttle(conn, user.id, ThrottleState())
                record(True, method)
                left = factor_rows.recovery_codes_left(conn, user.id)
                return _Checked(verdict=verdict, left=left)
            if verdict is Verdict.WRONG:
                throttles.add_address_failure(conn, origin.ip, now)
                users.save_throttle(conn, user.id, after_failure(user.throttle, now, rules))
            record(False, method, verdict.value)
            return _Checked(verdict=verdict)

    def _answer(self, checked: _Checked, username: str, method: Method) -> wire.Verified:
        if checked.refusal == "unknown_user":
            raise _unknown(username)
        if checked.refusal == "account_disabled":
            raise AccountDisabled(DISABLED)
        if checked.refusal is not None:  # enrollment_required, totp_not_enabled
            raise self._without_2fa_error(checked.refusal)
        if checked.wait is not None:
            raise TooManyAttempts(checked.wait)
        assert checked.verdict is not None
        if checked.verdict is Verdict.ACCEPTED:
            assert checked.left is not None
            return wire.Verified("allow", method, checked.left)
        raise code_refusal(checked.verdict, method)

    def _without_2fa_error(self, reason: str) -> EnrollmentRequired | TotpNotEnabled:
        """The refusal of a code for an account without 2FA, for `_without_2fa`'s reason."""
        if reason == "enrollment_required":
            return EnrollmentRequired(self._enroll_message())
        return TotpNotEnabled(
            "Two-factor authentication is not set up for this account, so there is no code to"
            f" check. Set it up from any terminal: {self._setup_hint()}"
        )

    async def _refuse_without_2fa(self, user: User, origin: Origin) -> None:
        deadline = await self.core.db.run(lambda conn: policy.load(conn).enrollment_deadline())
        reason = _without_2fa(deadline, self.core.now())
        await self._record(user, origin, "verify", False, reason=reason)
        raise self._without_2fa_error(reason)
