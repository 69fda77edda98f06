"""Plain words for the UI: what went wrong, what the history's codes mean, times."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from tfa_tui.api.errors import ApiError, TooManyAttempts, Unreachable

# What the server writes into a sign-in history entry, in words. A value this client has no
# words for is shown as it is: a newer server may add some.
EVENTS = {
    "password": "Password",
    "second_factor": "Second factor",
    "reauthentication": "Confirm identity",
    "totp_enabled": "2FA connected",
    "totp_disabled": "2FA disconnected",
    "recovery_codes_regenerated": "New recovery codes",
    "logout": "Signed out",
    "forced_sign_out": "Signed out (policy)",
    "session_revoked": "Session revoked",
    "session_restricted": "Held to 2FA setup",
    "totp_reset_by_admin": "2FA reset by admin",
    # A relying service (sshd through the PAM module, say) asked: what next, then the code.
    "verify_start": "Service sign-in",
    "verify": "Service code",
    # The account's lifecycle: the person's own change, and what administrators did to it.
    "password_changed": "Password changed",
    "password_reset_by_admin": "Password set by admin",
    "account_disabled": "Disabled by admin",
    "account_enabled": "Enabled by admin",
    "account_deleted": "Deleted by admin",
    "admin_granted": "Made administrator",
    "admin_revoked": "Admin rights removed",
}
METHODS = {"password": "password", "totp": "app code", "recovery_code": "recovery code"}
# Every reason the server documents (the `reason` of HistoryItem in its OpenAPI document).
REASONS = {
    "bad_password": "wrong password",
    "unknown_user": "no such user",
    "bad_code": "wrong code",
    "code_reused": "code already used",
    # The account's name or the address it came from: either way, refused without a check.
    "throttled": "locked out",
    "expired_challenge": "sign-in expired",
    "enrollment_required": "2FA setup needed",
    "totp_required": "second factor needed",
    "policy_requires_2fa": "2FA required by policy",
    "session_limit": "too many sessions: the oldest ended",
    # A service's sign-in let through without a code, and a code sent for an account that
    # has no 2FA to check it against.
    "not_required": "2FA not required",
    "grace_period": "no 2FA yet: grace period",
    "totp_not_enabled": "2FA not set up",
    "account_disabled": "account disabled",
    "password_change_required": "new password needed",
    "temporary": "temporary password",
}


def origin(client: str, service: str | None) -> str:
    """Who asked: the relying service by name (its program's User-Agent would say less), or
    the client program of a sign-in to tfa itself."""
    return f"{service} (service)" if service else client


def reason(code: str | None) -> str:
    """A history entry's reason in words; an unknown code as itself."""
    return REASONS.get(code, code) if code else "-"


def utc_now() -> datetime:
    """This computer's clock, which the server's times (deadlines, locks) are compared with. In
    use both keep the right time; tests put the server's fake clock here."""
    return datetime.now(UTC)


def seconds_left(until: datetime) -> int:
    """Whole seconds until `until`, rounded up ("1 s left" until it is over); 0 after."""
    return max(0, math.ceil((until - utc_now()).total_seconds()))


def describe(error: BaseException) -> str:
    if isinstance(error, TooManyAttempts):
        return f"Too many failed attempts. Try again in {error.retry_after} seconds."
    if isinstance(error, Unreachable):
        return error.message
    if isinstance(error, ApiError):
        return error.message
    return "Something unexpected went wrong. Please try again."


def local_time(moment: datetime | None, *, with_seconds: bool = False) -> str:
    if moment is None:
        return "-"
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")


def local_date(moment: datetime) -> str:
    """The day alone, where a table has no room for the time (the audit log has it)."""
    return moment.astimezone().strftime("%Y-%m-%d")
