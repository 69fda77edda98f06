"""Typed errors of the API client: one class per server error code, plus transport trouble.

Every message is text for a person. None ever holds a password, a code, a secret or a token.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import ClassVar

DEFAULT_RETRY_AFTER = 30
_MAX_MESSAGE = 500


class ApiError(Exception):
    """Base of every error the client raises. `status` is 0 when no HTTP answer arrived."""

    default_code: ClassVar[str] = "error"
    default_status: ClassVar[int] = 0

    code: str
    message: str
    status: int

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = self.default_code if code is None else code
        self.status = self.default_status if status is None else status

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r}, status={self.status})"


class InvalidRequest(ApiError):
    """400 `invalid_request`, and any other 4xx this client has no class for (405, 413, ...)."""

    default_code, default_status = "invalid_request", 400


class Unauthorized(ApiError):
    """401 `unauthorized`: not signed in, or the session ended (expired, revoked)."""

    default_code, default_status = "unauthorized", 401


class InvalidCredentials(ApiError):
    default_code, default_status = "invalid_credentials", 401


class InvalidCode(ApiError):
    default_code, default_status = "invalid_code", 401


class CodeReused(ApiError):
    default_code, default_status = "code_reused", 401


class ChallengeExpired(ApiError):
    """401 `challenge_expired`: the password step must be done again."""

    default_code, default_status = "challenge_expired", 401


class Forbidden(ApiError):
    default_code, default_status = "forbidden", 403


class EnrollmentRequired(ApiError):
    """403 `enrollment_required`: this session may only set up 2FA until it is connected."""

    default_code, default_status = "enrollment_required", 403


class AccountDisabled(ApiError):
    """403 `account_disabled`: an administrator disabled the account (after the right password)."""

    default_code, default_status = "account_disabled", 403


class PasswordChangeRequired(ApiError):
    """403 `password_change_required`: this session may only change a temporary password."""

    default_code, default_status = "password_change_required", 403


# Answers about the session itself, after which the app leaves the screen for another (sign
# in, the 2FA set-up, a new password), wherever the call was made.
LEAVING = (Unauthorized, EnrollmentRequired, PasswordChangeRequired)


class PasswordRequired(ApiError):
    """403 `password_required`: this session signed in too long ago; send the password."""

    default_code, default_status = "password_required", 403


class NotFound(ApiError):
    default_code, default_status = "not_found", 404


class PolicyRequires2fa(ApiError):
    """409 `policy_requires_2fa`: the message is the server's warning, to show as it is."""

    default_code, default_status = "policy_requires_2fa", 409


class Conflict(ApiError):
    default_code, default_status = "conflict", 409


class TooManyAttempts(ApiError):
    """429: `retry_after` seconds come from the Retry-After header."""

    default_code, default_status = "too_many_attempts", 429

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        retry_after: int = DEFAULT_RETRY_AFTER,
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, retry_after={self.retry_after})"


class ServerError(ApiError):
    """5xx: the server failed; the message carries its request id when it gave one."""

    default_code, default_status = "server_error", 500


class Unreachable(ApiError):
    """No HTTP answer at all: refused, timed out, name not found, connection dropped."""

    default_code, default_status = "unreachable", 0


class ProtocolError(ApiError):
    """An answer that is not the documented JSON shape (not a tfa server, or a newer one)."""

    default_code, default_status = "bad_response", 0


# What msgspec's ValidationError says, read back into words. Only the path (field names of the
# protocol types and list indices) and fixed words reach the message: a text this table does not
# know, or a path of another form, is said in general terms, so no value the server sent (an
# unknown enum value, say, which msgspec quotes) can be repeated.
_VALIDATION = re.compile(r"(?P<problem>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.DOTALL)
_PATH = re.compile(r"(?:\.[A-Za-z_]\w*|\[\d+\])*")
_MISSING = re.compile(r"Object missing required field `(?P<field>[A-Za-z_]\w*)`")
_EXPECTED = re.compile(r"Expected `(?P<kinds>[a-z |]+)`(?:, got `[a-z]+`)?")
_KINDS = {
    "str": "text",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "datetime": "a time (RFC 3339)",
    "object": "an object",
    "array": "a list",
    "null": "null",
}
_PROBLEMS = (
    (re.compile(r"Expected `datetime` with a timezone component"), "has no time zone"),
    (re.compile(r"Invalid RFC3339 encoded datetime"), "is not an RFC 3339 time"),
    (re.compile(r"Invalid (?:enum )?value "), "has a value this client does not know"),
    (re.compile(r"Expected `int` [<>]=|Integer value out of range"), "is out of range"),
    (re.compile(r"Expected `str` (?:matching regex|of length)"), "is not of the expected form"),
)


def answer_error(validation: str) -> ProtocolError | None:
    """The error for a 2xx answer of the wrong shape, from the text of msgspec's
    ValidationError: the field's path and the problem in words, never the value. None when
    the answer as a whole is not a JSON object (then it is not a tfa server at all)."""
    found = _VALIDATION.fullmatch(validation)
    problem, path = (found["problem"], found["path"] or "") if found else ("", "")
    if not _PATH.fullmatch(path):
        path = ""
    words = "is not what this client expects"
    if missing := _MISSING.fullmatch(problem):
        path, words = f"{path}.{missing['field']}", "is missing"
    elif (expected := _EXPECTED.fullmatch(problem)) and all(
        kind in _KINDS for kind in expected["kinds"].split(" | ")
    ):
        if not path and expected["kinds"] == "object":
            return None
        words = "should be " + " or ".join(_KINDS[k] for k in expected["kinds"].split(" | "))
    else:
        words = next((said for shape, said in _PROBLEMS if shape.match(problem)), words)
    where = f"`{path.removeprefix('.')}`" if path else "the answer"
    return ProtocolError(
        f"The server's answer is not one this client understands: {where} {words}."
    )


_BY_CODE: dict[str, type[ApiError]] = {
    cls.default_code: cls
    for cls in (
        InvalidRequest,
        Unauthorized,
        InvalidCredentials,
        InvalidCode,
        CodeReused,
        ChallengeExpired,
        Forbidden,
        EnrollmentRequired,
        AccountDisabled,
        PasswordChangeRequired,
        PasswordRequired,
        NotFound,
        PolicyRequires2fa,
        Conflict,
        TooManyAttempts,
    )
}
_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    429: TooManyAttempts,
}


def clean_text(text: str, limit: int = _MAX_MESSAGE) -> str:
    """Server text made safe to show: no control characters (terminal escapes), bounded length."""
    kept = "".join(
        " " if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") else char for char in text
    )
    kept = " ".join(kept.split())
    return kept if len(kept) <= limit else kept[: limit - 1] + "…"


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive look-up that works for httpx.Headers and plain dicts alike."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    for key, found in headers.items():
        if key.lower() == wanted:
            return found
    return None


def retry_after_seconds(headers: Mapping[str, str]) -> int:
    """RFC 9110 delta-seconds; an absent or unreadable value (e.g. an HTTP date) means 30 s."""
    raw = (header(headers, "retry-after") or "").strip()
    if raw.isascii() and raw.isdigit() and len(raw) <= 9:
        return int(raw)
    return DEFAULT_RETRY_AFTER


def _server_error(
    status: int, code: str | None, message: str | None, headers: Mapping[str, str]
) -> ServerError:
    text = message or f"The server ran into a problem (HTTP {status}). Try again later."
    request_id = header(headers, "x-request-id")
    if request_id:
        request_id = clean_text(request_id, 64)
        if request_id not in text:
            text = f"{text} (request id {request_id})"
    return ServerError(text, code=code, status=status)


def error_from_response(status: int, body: object, headers: Mapping[str, str]) -> ApiError:
    """The typed error for a non-2xx answer: by the `error` code first, then by the status.

    `body` is the decoded JSON (None when the body was not JSON).
    """
    code: str | None = None
    message: str | None = None
    if isinstance(body, Mapping):
        raw_code, raw_message = body.get("error"), body.get("message")
        if isinstance(raw_code, str) and raw_code:
            code = clean_text(raw_code, 64)
            if isinstance(raw_message, str) and raw_message.strip():
                message = clean_text(raw_message)
    if status >= 500:
        return _server_error(status, code, message, headers)
    if code is None and status == 429:
        # A proxy's rate limit in front of the server still means "wait", in whatever shape.
        seconds = retry_after_seconds(headers)
        return TooManyAttempts(
            f"Too many attempts. Try again in {seconds} seconds.",
            status=status,
            retry_after=seconds,
        )
    if code is None:
        return ProtocolError(
            f"The server's answer (HTTP {status}) is not one this client understands."
            " Is this the address of a tfa server?",
            status=status,
        )
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if cls is None:
        cls = InvalidRequest if 400 <= status < 500 else ProtocolError
    text = message or f"The server refused the request ({code}, HTTP {status})."
    if cls is TooManyAttempts:
        return TooManyAttempts(
            text, code=code, status=status, retry_after=retry_after_seconds(headers)
        )
    return cls(text, code=code, status=status)


__all__ = [
    "LEAVING",
    "ApiError",
    "ChallengeExpired",
    "CodeReused",
    "Conflict",
    "EnrollmentRequired",
    "Forbidden",
    "InvalidCode",
    "InvalidCredentials",
    "InvalidRequest",
    "NotFound",
    "PasswordRequired",
    "PolicyRequires2fa",
    "ProtocolError",
    "ServerError",
    "TooManyAttempts",
    "Unauthorized",
    "Unreachable",
    "answer_error",
    "error_from_response",
]
