"""Errors the API reports; each maps to one status and one machine-readable code."""

from __future__ import annotations


class ApiError(Exception):
    status = 400
    code = "invalid_request"

    def __init__(self, message: str, *, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or []


class InvalidRequest(ApiError):
    status, code = 400, "invalid_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class InvalidCredentials(ApiError):
    status, code = 401, "invalid_credentials"


class InvalidCode(ApiError):
    status, code = 401, "invalid_code"


class CodeReused(ApiError):
    status, code = 401, "code_reused"


class ChallengeExpired(ApiError):
    status, code = 401, "challenge_expired"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class EnrollmentRequired(ApiError):
    status, code = 403, "enrollment_required"


class AccountDisabled(ApiError):
    """Only after the right password: a wrong one gets the usual invalid_credentials."""

    status, code = 403, "account_disabled"


class PasswordChangeRequired(ApiError):
    """A session from a temporary password opens nothing but the change (and /me, logout)."""

    status, code = 403, "password_change_required"


class PasswordRequired(ApiError):
    """The session signed in too long ago for this: send the password with the request."""

    status, code = 403, "password_required"


class NotFound(ApiError):
    status, code = 404, "not_found"


class UnknownUser(ApiError):
    """Only the verify API says so: relying services are trusted callers, strangers are not."""

    status, code = 404, "unknown_user"


class TotpNotEnabled(ApiError):
    status, code = 409, "totp_not_enabled"


class PolicyRequires2fa(ApiError):
    status, code = 409, "policy_requires_2fa"


class Conflict(ApiError):
    status, code = 409, "conflict"


class TooManyAttempts(ApiError):
    status, code = 429, "too_many_attempts"

    def __init__(self, retry_after: float, message: str | None = None) -> None:
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(
            message or f"Too many failed attempts. Try again in {self.retry_after} seconds.",
            headers=[("Retry-After", str(self.retry_after))],
        )


class ServiceUnavailable(ApiError):
    status, code = 503, "service_unavailable"


class ServerKeyReplaced(ServiceUnavailable):
    """This process holds a key that `tfa-server rotate-key` has since replaced: it must seal
    nothing more under it, nor count a code it can no longer check as a wrong one."""

    def __init__(self) -> None:
        super().__init__(
            "This server is running with a key that has been replaced. Nothing was changed;"
            " try again in a moment.",
            headers=[("Retry-After", "30")],
        )
