"""Issuing and resolving bearer tokens: challenge, enrollment and full sessions."""

from __future__ import annotations

from dataclasses import dataclass, replace

from tfa_server.core import Core, Origin
from tfa_server.crypto import new_token, token_digest
from tfa_server.errors import EnrollmentRequired, PasswordChangeRequired, Unauthorized
from tfa_server.storage import history, users
from tfa_server.storage import sessions as rows
from tfa_server.storage.database import Connection, transaction
from tfa_server.storage.policy import Policy
from tfa_server.storage.sessions import PreviousLogin, Session, SessionKind
from tfa_server.storage.users import User


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    session_id: int
    expires_at: float


def issue(
    conn: Connection, core: Core, user: User, kind: SessionKind, origin: Origin
) -> IssuedToken:
    """Create a session inside the caller's transaction.

    A person's session (not a challenge, nor one that may only change a temporary password)
    counts as a sign-in: it snapshots the previous one for /me and resets the failure count.
    """
    now = core.now()
    rules = core.settings.sessions
    token = new_token()
    previous = None
    if kind in ("challenge", "password_change"):
        # Steps of a sign-in, not yet a sign-in: short-lived, and the last one stays as it was.
        expires_at = now + rules.challenge_lifetime
    else:
        expires_at = now + rules.absolute_lifetime
        previous = PreviousLogin(
            user.last_login_at,
            user.last_login_ip,
            user.last_login_client,
            history.failures_since(conn, user.id, user.last_login_at),
        )
        users.record_login(conn, user.id, now, origin.ip, origin.client)
    session_id = rows.insert(
        conn,
        user_id=user.id,
        digest=token_digest(token),
        kind=kind,
        now=now,
        expires_at=expires_at,
        ip=origin.ip,
        client=origin.client,
        previous=previous,
    )
    _enforce_cap(conn, core, user, challenges=kind == "challenge", origin=origin)
    return IssuedToken(token, session_id, expires_at)


def _enforce_cap(
    conn: Connection, core: Core, user: User, *, challenges: bool, origin: Origin
) -> None:
    """At most `max_per_user` sessions (and as many open challenges): the oldest ends, and a
    person's ended session is in their history, so nobody wonders where it went."""
    now = core.now()
    rules = core.settings.sessions
    ended = rows.beyond_newest(
        conn,
        user.id,
        challenges=challenges,
        keep=rules.max_per_user,
        now=now,
        idle_timeout=rules.idle_timeout,
    )
    for session_id in ended:
        rows.revoke(conn, session_id, now)
        if not challenges:
            history.record(conn, _event(user, "session_revoked", "session_limit", origin), now)


def _event(user: User, event: str, reason: str, origin: Origin) -> history.HistoryEvent:
    """A session ended or held by a rule, not by a sign-in step: a success with its reason."""
    return history.HistoryEvent(
        user.id, user.username, event, True, None, reason, origin.ip, origin.client
    )


def bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 128:
        raise Unauthorized("Sign in first: this needs a session token (Authorization: Bearer).")
    return token


def is_live(session: Session, now: float, idle_timeout: float) -> bool:
    if session.revoked_at is not None or session.expires_at <= now:
        return False
    return session.kind == "challenge" or session.last_seen_at + idle_timeout > now


# What each kind of session may do, least first: a route names the least it accepts.
RANK: dict[SessionKind, int] = {"password_change": 0, "enrollment": 1, "full": 2}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is behind a request's token, as read with its session: the user and the policy
    as they were then, so a handler that needs no more than these reads nothing else."""

    session: Session
    user: User
    policy: Policy


async def resolve(
    core: Core, authorization: str | None, origin: Origin, *, least: SessionKind
) -> Caller:
    """The live person's session behind a bearer token; challenges are not sessions. One
    statement on one trip to the database thread: this runs before every signed-in request."""
    digest = token_digest(bearer_token(authorization))
    now = core.now()
    rules = core.settings.sessions

    def _load(conn: Connection) -> Caller | None:
        found = rows.caller(conn, digest)
        if found is None:
            return None
        session, user, current = found
        if session.kind == "challenge" or not is_live(session, now, rules.idle_timeout):
            return None
        return Caller(session, user, current)

    def _update(conn: Connection, found: Caller, restrict: bool, touch: bool) -> Caller:
        session = found.session
        if restrict:
            session = _restrict(conn, session, now, origin)
        if touch:
            rows.touch(conn, session.id, now, origin.ip, origin.client)
        return replace(found, session=session)

    found = await core.db.read(_load)
    if found is None:
        raise Unauthorized("Your session has ended. Sign in again.")
    # Writes are rare (a session's activity once a touch interval, the policy's restriction
    # once): only then a trip to the writing connection.
    restrict = found.session.kind == "full" and _must_enroll(found.policy, found.user, now)
    touch = now - found.session.last_seen_at >= rules.touch_interval
    if restrict or touch:
        read = found
        found = await core.db.run(lambda conn: _update(conn, read, restrict, touch))
    kind = found.session.kind
    if RANK[kind] >= RANK[least]:
        return found
    if kind == "password_change":
        raise PasswordChangeRequired(
            "Choose a new password first: your administrator set a temporary one."
        )
    raise EnrollmentRequired(
        "Your administrator requires two-factor authentication: set it up first."
    )


def _must_enroll(current: Policy, user: User, now: float) -> bool:
    """Forced 2FA, the grace period over, and this user still without it."""
    deadline = current.enrollment_deadline()
    return deadline is not None and deadline <= now and not user.totp_enabled


def _restrict(conn: Connection, session: Session, now: float, origin: Origin) -> Session:
    """A full session that outlived the grace period becomes an enrollment session, as if it
    had signed in now: administrators included, nothing but setting up 2FA until it is on."""
    with transaction(conn):
        if rows.restrict_to_enrollment(conn, session.id):
            user = users.by_id(conn, session.user_id)
            if user is not None:
                entry = _event(user, "session_restricted", "policy_requires_2fa", origin)
                history.record(conn, entry, now)
    return replace(session, kind="enrollment")


async def find_challenge(core: Core, authorization: str | None) -> Session:
    """The second-factor challenge behind a token, live or not; the caller judges liveness."""
    digest = token_digest(bearer_token(authorization))
    session = await core.db.run(lambda conn: rows.by_digest(conn, digest))
    if session is None or session.kind != "challenge":
        raise Unauthorized("This is not a sign-in in progress. Sign in with your password.")
    return session
