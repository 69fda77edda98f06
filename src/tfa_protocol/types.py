"""Every request body, response body and error body of /api/v1 as a msgspec Struct.

Times are timezone-aware datetimes in UTC, which msgspec writes as RFC 3339 with `Z`; the
server gives them whole seconds. Structs forbid unknown fields, as the API does in requests.

For the server's request decoding (the rest of issue 12), two promises of the API are not
msgspec's: JSON Schema counts 7.0 as an integer, which strict msgspec refuses (and lax mode
would also take "true" for a bool); and a lone surrogate (\\ud800) is refused naming its
field, where msgspec's JSON decoder refuses the whole body. Hence: the stdlib's json.loads,
then integral floats made ints and surrogates checked per field, then msgspec.convert(strict).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
USERNAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # what clients may send: any case
# No 0/O, 1/I/L: nothing to misread on paper.
RECOVERY_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
RECOVERY_CODE_PATTERN = "^[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}$"

Time = Annotated[datetime, Meta(tz=True, description="RFC 3339, UTC")]
Count = Annotated[int, Meta(ge=0)]
Id = Annotated[int, Meta(ge=1)]
Password = Annotated[str, Meta(max_length=MAX_PASSWORD_LENGTH)]
Code = Annotated[str, Meta(max_length=64, description="6-digit TOTP code or a recovery code")]


class Strict(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=False):
    """The base of every wire type: unknown fields are an error, in requests and answers."""


# Errors and health


class Error(Strict):
    error: Annotated[str, Meta(description="Machine-readable code")]
    message: Annotated[str, Meta(description="Text for a person")]


class Health(Strict):
    status: Literal["ok"]


# Requests


class LoginRequest(Strict):
    username: Annotated[str, Meta(max_length=256)]
    password: Password


class CodeRequest(Strict):
    code: Code


class TotpSetupRequest(Strict):
    password: Password | msgspec.UnsetType = msgspec.UNSET


class DisableTotpRequest(Strict):
    password: Password
    code: Code
    acknowledge_forced_policy: bool | msgspec.UnsetType = msgspec.UNSET


class PasswordAndCode(Strict):
    password: Password
    code: Code


class PolicyRequest(Strict):
    force_2fa: bool
    grace_period_days: Annotated[int, Meta(ge=0, le=365)]


class CreateUserRequest(Strict):
    username: Annotated[
        str,
        Meta(
            max_length=64,
            pattern=USERNAME_PATTERN,
            description="Case-insensitive; stored in lower case.",
        ),
    ]
    password: Annotated[str, Meta(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)]
    is_admin: bool = False


# Answers


class LoginInfo(Strict):
    at: Time
    ip: str | None
    client: str | None


class PolicyBrief(Strict):
    force_2fa: bool
    grace_period_days: Count


class Me(Strict):
    username: str
    is_admin: bool
    totp_enabled: bool
    totp_enabled_at: Time | None
    recovery_codes_left: Count
    policy: PolicyBrief
    enrollment_deadline: Time | None
    last_login: LoginInfo | None
    failed_attempts_since_last_login: Count


class Challenged(Strict):
    """Who is signing in, before the second factor: the name only."""

    username: str


class _SignIn(Strict, tag_field="status"):
    token: Annotated[str, Meta(description="Bearer token (challenge, enrollment or full)")]
    expires_at: Time


class Authenticated(_SignIn, tag="authenticated"):
    """Signed in: a full session."""

    user: Me
    recovery_codes_left: Count | msgspec.UnsetType = msgspec.UNSET


class TotpRequired(_SignIn, tag="totp_required"):
    """The password was right; the token is a challenge for the second factor."""

    user: Challenged


class EnrollmentRequired(_SignIn, tag="enrollment_required"):
    """2FA is forced and not set up: a session that can only set it up."""

    user: Me


SignInResult = Authenticated | TotpRequired | EnrollmentRequired


class TotpSetup(Strict):
    secret: Annotated[str, Meta(pattern="^[A-Z2-7]+$")]
    otpauth_uri: Annotated[str, Meta(pattern="^otpauth://totp/")]
    issuer: str
    account: str
    algorithm: Literal["SHA1", "SHA256", "SHA512"]
    digits: int
    period: int


class RecoveryCodes(Strict):
    recovery_codes: list[Annotated[str, Meta(pattern=RECOVERY_CODE_PATTERN)]]


class TotpDisabled(Strict):
    totp_enabled: Literal[False]
    logged_out: bool


Event = Annotated[
    str,
    Meta(
        description="password, second_factor, reauthentication, totp_enabled, totp_disabled,"
        " recovery_codes_regenerated, logout, forced_sign_out, session_revoked,"
        " session_restricted, totp_reset_by_admin"
    ),
]
Reason = Annotated[
    str,
    Meta(
        description="bad_password, unknown_user, bad_code, code_reused, throttled,"
        " expired_challenge, enrollment_required, totp_required, policy_requires_2fa,"
        " session_limit"
    ),
]


class HistoryItem(Strict):
    id: int
    at: Time
    event: Event
    success: bool
    method: Annotated[str, Meta(description="password, totp or recovery_code")] | None
    reason: Reason | None
    ip: str
    client: Annotated[str, Meta(description="The request's User-Agent")]
    count: Annotated[
        int,
        Meta(
            ge=1,
            description="How many attempts this row stands for: refusals while throttled are"
            " counted into one row per address, account and minute",
        ),
    ]


class AdminHistoryItem(HistoryItem):
    username: Annotated[
        str,
        Meta(
            description="Attempted name; throttled refusals of names that match no account"
            " share the name '(unknown names)'"
        ),
    ]
    known_user: bool


NextBefore = Annotated[int, Meta(description="Pass as `before` for the next page")] | None


class HistoryPage(Strict):
    items: list[HistoryItem]
    next_before: NextBefore


class AdminHistoryPage(Strict):
    items: list[AdminHistoryItem]
    next_before: NextBefore


class Session(Strict):
    id: int
    created_at: Time
    last_seen_at: Time
    expires_at: Time
    ip: str
    client: str
    kind: Literal["enrollment", "full"]
    current: bool


class SessionList(Strict):
    items: list[Session]


class Policy(Strict):
    force_2fa: bool
    grace_period_days: Count
    forced_since: Time | None
    updated_at: Time | None


class AdminUser(Strict):
    username: str
    is_admin: bool
    totp_enabled: bool
    totp_enabled_at: Time | None
    created_at: Time
    last_login: LoginInfo | None
    failed_attempts: Count
    locked_until: Time | None


class UserList(Strict):
    items: list[AdminUser]


class AuditItem(Strict):
    id: int
    at: Time
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]
    ip: str | None
    client: str | None


class AuditPage(Strict):
    items: list[AuditItem]
    next_before: NextBefore
