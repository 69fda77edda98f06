"""Every request body, query, response body and error body of /api/v1 as a msgspec Struct.

The server decodes requests into these and encodes its answers from them, the OpenAPI
document takes its schemas from them, and the client decodes answers into them.

Requests forbid unknown fields (a typo must not pass unnoticed). Answers do not: a client
ignores what a newer server adds, while the document still holds this server's answers to
exactly their fields (`additionalProperties: false`, added where the document is written).
Times are timezone-aware datetimes in UTC, written as RFC 3339 with `Z` and whole seconds.
`Meta(extra={"refusal": ...})` holds the words for a value of the wrong form, where the
generic words ("'x' is shorter than 8 characters") would not help a person.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
USERNAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # what clients may send: any case
# No 0/O, 1/I/L: nothing to misread on paper.
RECOVERY_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
RECOVERY_CODE_PATTERN = "^[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}$"

Algorithm = Literal["SHA1", "SHA256", "SHA512"]
Time = Annotated[datetime, Meta(tz=True, description="RFC 3339, UTC")]
Count = Annotated[int, Meta(ge=0)]
Id = Annotated[int, Meta(ge=1)]
Password = Annotated[str, Meta(max_length=MAX_PASSWORD_LENGTH)]
USERNAME_RULE = (
    "Usernames are 1 to 64 characters: letters, digits, '.', '_' and '-',"
    " starting with a letter or digit."
)
SHORT_PASSWORD = f"Passwords need at least {MIN_PASSWORD_LENGTH} characters."
Code = Annotated[str, Meta(max_length=64, description="6-digit TOTP code or a recovery code")]
NewPassword = Annotated[
    str,
    Meta(
        min_length=MIN_PASSWORD_LENGTH,
        max_length=MAX_PASSWORD_LENGTH,
        description="8 to 1024 characters, any kind (no composition rules)",
        extra={"refusal": SHORT_PASSWORD},
    ),
]


class Request(msgspec.Struct, forbid_unknown_fields=True):
    """A request body or query: unknown fields are an error."""


class Answer(msgspec.Struct):
    """A response body. `_secret` fields never show in repr, so a log line cannot leak them."""

    _secret: ClassVar[frozenset[str]] = frozenset()

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return [
            (name, "<hidden>" if name in self._secret else getattr(self, name))
            for name in self.__struct_fields__
        ]

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.__rich_repr__())
        return f"{type(self).__name__}({fields})"


# Errors and health


class Error(Answer):
    error: Annotated[str, Meta(description="Machine-readable code")]
    message: Annotated[str, Meta(description="Text for a person")]


class Health(Answer):
    status: Literal["ok"]


class Ready(Answer):
    status: Literal["ready"]


# Requests


class LoginRequest(Request):
    username: Annotated[str, Meta(max_length=256)]
    password: Password


class CodeRequest(Request):
    code: Code


class TotpSetupRequest(Request):
    password: Password | UnsetType = UNSET


class DisableTotpRequest(Request):
    password: Password
    code: Code
    acknowledge_forced_policy: bool | UnsetType = UNSET


class PasswordAndCode(Request):
    password: Password
    code: Code


class PolicyRequest(Request):
    force_2fa: bool
    grace_period_days: Annotated[int, Meta(ge=0, le=365)]


class CreateUserRequest(Request):
    username: Annotated[
        str,
        Meta(
            max_length=64,
            pattern=USERNAME_PATTERN,
            description="Case-insensitive; stored in lower case.",
            extra={"refusal": USERNAME_RULE},
        ),
    ]
    password: NewPassword
    is_admin: bool = False


class ChangePasswordRequest(Request):
    current_password: Password
    new_password: NewPassword
    code: (
        Annotated[
            Code,
            Meta(
                description="Required when the account has 2FA, except in a password_change"
                " session (the second factor follows the change there)"
            ),
        ]
        | UnsetType
    ) = UNSET


class ResetPasswordRequest(Request):
    password: NewPassword
    temporary: Annotated[
        bool, Meta(description="The user must choose a new password at the next sign-in")
    ] = True


class UpdateUserRequest(Request):
    is_admin: bool


# Queries: absent is UNSET, so the document shows no null where a query string has none.

Limit = Annotated[int, Meta(ge=1, le=200, description="Page size, 1 to 200 (default 50).")]
Before = Annotated[
    int, Meta(ge=1, le=2**62, description="Return entries older than this id (keyset paging).")
]
Success = Annotated[bool, Meta(description="Only successful (true) or failed (false).")]


class AuditQuery(Request):
    limit: Limit = 50
    before: Before | UnsetType = UNSET


class HistoryQuery(AuditQuery):
    success: Success | UnsetType = UNSET
    service: (
        Annotated[str, Meta(max_length=64, description="Only what this relying service asked.")]
        | UnsetType
    ) = UNSET


class AdminHistoryQuery(HistoryQuery):
    username: Annotated[str, Meta(max_length=256, description="Only this (attempted) name.")] | (
        UnsetType
    ) = UNSET


Days = Annotated[
    int,
    Meta(ge=1, le=90, description="How many days back, today included: 1 to 90 (default 30)."),
]
UtcOffset = Annotated[
    int,
    Meta(
        ge=-840,
        le=840,
        multiple_of=15,
        description="The reader's time zone as minutes east of UTC, so days start at their"
        " midnight (default 0, UTC); a multiple of 15.",
    ),
]


class ActivityQuery(Request):
    days: Days = 30
    utc_offset: UtcOffset = 0


class AdminActivityQuery(ActivityQuery):
    username: (
        Annotated[
            str,
            Meta(
                max_length=256,
                description="Only this existing account's sign-ins (404 when there is none);"
                " the lists then count its refused attempts alone.",
            ),
        ]
        | UnsetType
    ) = UNSET


UserQuery = Annotated[
    str,
    Meta(max_length=64, description="Only names containing this text (case-insensitive)."),
]
UserAfter = Annotated[
    str,
    Meta(max_length=256, description="Return names after this one (keyset paging by name)."),
]


class UserListQuery(Request):
    """Accounts in name order, a page at a time, narrowed on the server."""

    q: UserQuery | UnsetType = UNSET
    limit: Limit = 50
    after: UserAfter | UnsetType = UNSET
    admin: Annotated[bool, Meta(description="Only administrators (true) or only others.")] | (
        UnsetType
    ) = UNSET
    two_factor: (
        Annotated[
            bool, Meta(description="Only accounts with 2FA (true) or only those without (false).")
        ]
        | UnsetType
    ) = UNSET
    locked: (
        Annotated[
            bool, Meta(description="Only accounts locked by failed attempts now (true) or not.")
        ]
        | UnsetType
    ) = UNSET
    disabled: Annotated[
        bool, Meta(description="Only disabled accounts (true) or only enabled.")
    ] | (UnsetType) = UNSET


# Answers


class LoginInfo(Answer):
    at: Time
    ip: str | None
    client: str | None


class PolicyBrief(Answer):
    force_2fa: bool
    grace_period_days: Count


class Me(Answer):
    username: str
    is_admin: bool
    password_change_required: bool
    totp_enabled: bool
    totp_enabled_at: Time | None
    recovery_codes_left: Count
    policy: PolicyBrief
    enrollment_deadline: Time | None
    last_login: LoginInfo | None
    failed_attempts_since_last_login: Count


class Challenged(Answer):
    """Who is signing in, before the second factor: the name only."""

    username: str


class _SignIn(Answer, tag_field="status"):
    _secret = frozenset({"token"})
    token: Annotated[str, Meta(description="Bearer token (challenge, enrollment or full)")]
    expires_at: Time


class Authenticated(_SignIn, tag="authenticated"):
    """Signed in: a full session."""

    user: Me
    recovery_codes_left: Count | UnsetType = UNSET


class TotpRequired(_SignIn, tag="totp_required"):
    """The password was right; the token is a challenge for the second factor."""

    user: Challenged


class EnrollmentRequired(_SignIn, tag="enrollment_required"):
    """2FA is forced and not set up: a session that can only set it up."""

    user: Me


class PasswordChangeRequired(_SignIn, tag="password_change_required"):
    """An administrator set a temporary password: the token opens only GET /me, POST
    /me/password (the temporary password is the current one) and logout; the change's
    answer continues the sign-in."""

    user: Challenged


SignInResult = Authenticated | TotpRequired | EnrollmentRequired | PasswordChangeRequired


class TotpSetup(Answer):
    """A pending secret; the URI holds the secret too, so neither shows in repr."""

    _secret = frozenset({"secret", "otpauth_uri"})
    secret: Annotated[str, Meta(pattern="^[A-Z2-7]+$")]
    otpauth_uri: Annotated[str, Meta(pattern="^otpauth://totp/")]
    issuer: str
    account: str
    algorithm: Algorithm
    digits: int
    period: int


class RecoveryCodes(Answer):
    recovery_codes: list[Annotated[str, Meta(pattern=RECOVERY_CODE_PATTERN)]]


class TotpDisabled(Answer):
    totp_enabled: Literal[False]
    logged_out: bool


Event = Annotated[
    str,
    Meta(
        description="password, second_factor, reauthentication, totp_enabled, totp_disabled,"
        " recovery_codes_regenerated, logout, forced_sign_out, session_revoked,"
        " session_restricted, totp_reset_by_admin, verify_start, verify, password_changed,"
        " password_reset_by_admin, account_disabled, account_enabled, account_deleted,"
        " admin_granted, admin_revoked"
    ),
]
Reason = Annotated[
    str | None,
    Meta(
        description="bad_password, unknown_user, bad_code, code_reused, throttled,"
        " expired_challenge, enrollment_required, totp_required, policy_requires_2fa,"
        " session_limit, not_required, grace_period, totp_not_enabled, account_disabled,"
        " password_change_required, temporary"
    ),
]


class HistoryItem(Answer):
    id: int
    at: Time
    event: Event
    success: bool
    method: Annotated[str | None, Meta(description="password, totp or recovery_code")]
    reason: Reason
    ip: str
    client: Annotated[str, Meta(description="The request's User-Agent")]
    service: Annotated[
        str | None,
        Meta(description="The relying service that asked (verify API), e.g. sshd on a host"),
    ]
    service_ip: Annotated[
        str | None, Meta(description="The service's own address; `ip` is the end user's")
    ]
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
    account_deleted: Annotated[
        bool,
        Meta(
            description="The account this row belonged to was deleted since; a new account"
            " with the same name does not see it"
        ),
    ]


NextBefore = Annotated[int | None, Meta(description="Pass as `before` for the next page")]


class HistoryPage(Answer):
    items: list[HistoryItem]
    next_before: NextBefore


class AdminHistoryPage(Answer):
    items: list[AdminHistoryItem]
    next_before: NextBefore


class Session(Answer):
    id: int
    created_at: Time
    last_seen_at: Time
    expires_at: Time
    ip: str
    client: str
    kind: Literal["password_change", "enrollment", "full"]
    current: bool


class SessionList(Answer):
    items: list[Session]


class Policy(Answer):
    force_2fa: bool
    grace_period_days: Count
    forced_since: Time | None
    updated_at: Time | None


class AdminUser(Answer):
    username: str
    is_admin: bool
    totp_enabled: bool
    totp_enabled_at: Time | None
    created_at: Time
    last_login: LoginInfo | None
    failed_attempts: Count
    locked_until: Time | None
    disabled_at: Annotated[
        Time | None, Meta(description="Set while the account is disabled: no sign-in, no session")
    ]
    password_change_required: bool
    recovery_codes_left: Count


class UserList(Answer):
    items: list[AdminUser]
    next_after: Annotated[
        str | None, Meta(description="Pass as `after` for the next page; null on the last")
    ]


class DayActivity(Answer):
    day: Annotated[date, Meta(description="The day, in the reader's time zone (utc_offset)")]
    succeeded: Annotated[Count, Meta(description="Sign-ins completed (every factor passed)")]
    failed: Annotated[
        Count, Meta(description="Refused attempts: wrong password or code, throttled, denied")
    ]


class LastFailure(Answer):
    """The newest refused attempt (of any day, not only those of the range)."""

    at: Time
    ip: str
    event: Event
    reason: Reason


class Activity(Answer):
    """Sign-in activity per day, oldest first, every day of the range present (zeros too)."""

    days: list[DayActivity]
    last_failure: LastFailure | None


class FailureCount(Answer):
    name: Annotated[str, Meta(description="An address, or an attempted account name")]
    failed: Count
    last_at: Time
    known_user: Annotated[
        bool, Meta(description="For accounts: whether the name is an existing account")
    ] = False


class FailureLeaders(Answer):
    """The five addresses and the five names with the most refused attempts, most first."""

    addresses: list[FailureCount]
    accounts: list[FailureCount]


class AdminActivity(Activity):
    last_24_hours: FailureLeaders
    last_7_days: FailureLeaders


class AuditItem(Answer):
    id: int
    at: Time
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]
    ip: str | None
    client: str | None


class AuditPage(Answer):
    items: list[AuditItem]
    next_before: NextBefore


# Relying services (sshd through the PAM module, or any program) and the verify API

SERVICE_KEY_PREFIX = "tfasvc_"
SERVICE_NAME_RULE = USERNAME_RULE.replace("Usernames", "Service names")
ServiceName = Annotated[
    str,
    Meta(
        max_length=64,
        pattern=USERNAME_PATTERN,
        description="Case-insensitive; stored in lower case.",
        extra={"refusal": SERVICE_NAME_RULE},
    ),
]
UserName = Annotated[str, Meta(max_length=256)]
IpAddress = Annotated[
    str,
    Meta(
        max_length=64,
        description="The end user's address as the service saw it (an IP address); the"
        " per-address limit applies to it",
        extra_json_schema={"anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]},
    ),
]


class CreateServiceRequest(Request):
    name: ServiceName
    description: Annotated[str, Meta(max_length=256)] = ""


class Service(Answer):
    name: str
    description: str
    created_at: Time
    created_by: str
    last_used_at: Time | None
    last_used_ip: str | None


class NewService(Service):
    """The key is shown here once; the server keeps only its hash."""

    _secret = frozenset({"key"})
    key: Annotated[
        str,
        Meta(
            pattern=f"^{SERVICE_KEY_PREFIX}[A-Za-z0-9_-]{{43}}$",
            description="Bearer key for the verify API; shown only in this answer",
        ),
    ]


class ServiceList(Answer):
    items: list[Service]


class VerifyStartRequest(Request):
    username: UserName
    remote_ip: IpAddress | UnsetType = UNSET


class _Next(Answer, tag_field="next"):
    pass


class AskForCode(_Next, tag="code"):
    """The user has 2FA: ask for a code (or a recovery code) and call /verify."""


class Allow(_Next, tag="allow"):
    """No 2FA, and the policy allows that now; show the message."""

    message: str


class Deny(_Next, tag="deny"):
    """Refuse, and show the message: it says how to set up 2FA."""

    reason: Literal["enrollment_required", "account_disabled"]
    message: str


VerifyStart = AskForCode | Allow | Deny


class VerifyRequest(Request):
    username: UserName
    code: Code
    remote_ip: IpAddress | UnsetType = UNSET
    password: (
        Annotated[
            Password,
            Meta(
                description="Checked too when given: for a service with no first factor of its own"
            ),
        ]
        | UnsetType
    ) = UNSET


class Verified(Answer):
    result: Literal["allow"]
    method: Literal["totp", "recovery_code"]
    recovery_codes_left: Count
