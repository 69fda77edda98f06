"""Typed results of the API: frozen values read from the server's JSON, checked field by field.

Every time is a timezone-aware `datetime` in UTC. A missing or mistyped field raises
`ProtocolError` naming the field (never its value, which could be a secret). Fields the
server adds later are ignored, so a newer server does not break this client.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Self, TypeVar, get_args

from tfa_tui.api.errors import ProtocolError

SignInStatus = Literal["authenticated", "totp_required", "enrollment_required"]
_SIGN_IN_STATUSES: tuple[str, ...] = get_args(SignInStatus)

T = TypeVar("T")


def _bad(where: str, problem: str) -> ProtocolError:
    return ProtocolError(
        f"The server's answer is not one this client understands: `{where}` {problem}."
    )


class _Fields:
    """Typed reads from one JSON object; `where` is its path in the answer, for messages."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, Mapping):
            raise _bad(where or "the answer", "is not an object")
        self._data: Mapping[str, Any] = data
        self._where = where

    def _path(self, key: str) -> str:
        return f"{self._where}.{key}" if self._where else key

    def _get(self, key: str, kind: type[Any], label: str, optional: bool) -> Any:
        if key not in self._data:
            raise _bad(self._path(key), "is missing")
        value = self._data[key]
        if value is None and optional:
            return None
        # bool is an int in Python, never in JSON.
        if isinstance(value, bool) and kind is int:
            raise _bad(self._path(key), f"should be {label}")
        if not isinstance(value, kind):
            raise _bad(self._path(key), f"should be {label}")
        return value

    def text(self, key: str) -> str:
        value: str = self._get(key, str, "text", False)
        return value

    def opt_text(self, key: str) -> str | None:
        value: str | None = self._get(key, str, "text or null", True)
        return value

    def number(self, key: str) -> int:
        value: int = self._get(key, int, "a whole number", False)
        return value

    def opt_number(self, key: str) -> int | None:
        value: int | None = self._get(key, int, "a whole number or null", True)
        return value

    def flag(self, key: str) -> bool:
        value: bool = self._get(key, bool, "true or false", False)
        return value

    def time(self, key: str) -> datetime:
        moment = self.opt_time(key)
        if moment is None:
            raise _bad(self._path(key), "should be a time")
        return moment

    def opt_time(self, key: str) -> datetime | None:
        raw: str | None = self._get(key, str, "a time (RFC 3339) or null", True)
        if raw is None:
            return None
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise _bad(self._path(key), "is not an RFC 3339 time") from None
        if moment.tzinfo is None:
            raise _bad(self._path(key), "has no time zone")
        return moment.astimezone(UTC)

    def mapping(self, key: str) -> Mapping[str, Any]:
        value: Mapping[str, Any] = self._get(key, Mapping, "an object", False)
        return value

    def opt_mapping(self, key: str) -> Mapping[str, Any] | None:
        value: Mapping[str, Any] | None = self._get(key, Mapping, "an object or null", True)
        return value

    def array(self, key: str) -> list[Any]:
        value: list[Any] = self._get(key, list, "a list", False)
        return value

    def strings(self, key: str) -> list[str]:
        values = self.array(key)
        if not all(isinstance(value, str) for value in values):
            raise _bad(self._path(key), "should hold only text")
        return list(values)

    def nested(self, key: str) -> str:
        """The path of a nested value, for the nested value's own reader."""
        return self._path(key)


def _items(reader: _Fields, key: str, parse: Callable[..., T]) -> tuple[T, ...]:
    where = reader.nested(key)
    return tuple(
        parse(item, where=f"{where}[{index}]") for index, item in enumerate(reader.array(key))
    )


@dataclass(frozen=True, slots=True)
class LoginInfo:
    at: datetime
    ip: str | None
    client: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "") -> Self:
        read = _Fields(data, where)
        return cls(at=read.time("at"), ip=read.opt_text("ip"), client=read.opt_text("client"))


def _login_info(read: _Fields, key: str) -> LoginInfo | None:
    raw = read.opt_mapping(key)
    return None if raw is None else LoginInfo.from_json(raw, where=read.nested(key))


@dataclass(frozen=True, slots=True)
class PolicySummary:
    force_2fa: bool
    grace_period_days: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "") -> Self:
        read = _Fields(data, where)
        return cls(
            force_2fa=read.flag("force_2fa"), grace_period_days=read.number("grace_period_days")
        )


@dataclass(frozen=True, slots=True)
class Me:
    """The signed-in user. `last_login` is the sign-in before this session."""

    username: str
    is_admin: bool
    totp_enabled: bool
    totp_enabled_at: datetime | None
    recovery_codes_left: int
    policy: PolicySummary
    enrollment_deadline: datetime | None
    last_login: LoginInfo | None
    failed_attempts_since_last_login: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "") -> Self:
        read = _Fields(data, where)
        return cls(
            username=read.text("username"),
            is_admin=read.flag("is_admin"),
            totp_enabled=read.flag("totp_enabled"),
            totp_enabled_at=read.opt_time("totp_enabled_at"),
            recovery_codes_left=read.number("recovery_codes_left"),
            policy=PolicySummary.from_json(read.mapping("policy"), where=read.nested("policy")),
            enrollment_deadline=read.opt_time("enrollment_deadline"),
            last_login=_login_info(read, "last_login"),
            failed_attempts_since_last_login=read.number("failed_attempts_since_last_login"),
        )


@dataclass(frozen=True, slots=True)
class SignInResult:
    """`token` is the challenge (totp_required), enrollment or full session token.

    Before the second factor the server names only the account: `user` is then None.
    """

    status: SignInStatus
    token: str = field(repr=False)
    expires_at: datetime
    username: str
    user: Me | None
    recovery_codes_left: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "") -> Self:
        read = _Fields(data, where)
        status = read.text("status")
        if status not in _SIGN_IN_STATUSES:
            raise _bad(read.nested("status"), "is not a known sign-in status")
        left = read.opt_number("recovery_codes_left") if "recovery_codes_left" in data else None
        account = _Fields(read.mapping("user"), read.nested("user"))
        user = (
            None
            if status == "totp_required"
            else Me.from_json(read.mapping("user"), where=read.nested("user"))
        )
        return cls(
            status=status,  # type: ignore[arg-type]  # checked against SignInStatus just above
            token=read.text("token"),
            expires_at=read.time("expires_at"),
            username=account.text("username"),
            user=user,
            recovery_codes_left=left,
        )


@dataclass(frozen=True, slots=True)
class TotpSetup:
    """A pending secret; the URI holds the secret too, so neither appears in repr."""

    secret: str = field(repr=False)
    otpauth_uri: str = field(repr=False)
    issuer: str
    account: str
    algorithm: str
    digits: int
    period: int

    @property
    def grouped_secret(self) -> str:
        """The key for manual entry in groups of four: `ABCD EFGH ...`."""
        return " ".join(self.secret[start : start + 4] for start in range(0, len(self.secret), 4))

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "") -> Self:
        read = _Fields(data, where)
        return cls(
            secret=read.text("secret"),
            otpauth_uri=read.text("otpauth_uri"),
            issuer=read.text("issuer"),
            account=read.text("account"),
            algorithm=read.text("algorithm"),
            digits=read.number("digits"),
            period=read.number("period"),
        )


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One sign-in event. `username` is set in the administrators' history only."""

    id: int
    at: datetime
    event: str
    success: bool
    method: str | None
    reason: str | None
    ip: str
    client: str
    username: str | None = None
    count: int = 1  # refusals while throttled are counted into one entry a minute

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "") -> Self:
        read = _Fields(data, where)
        return cls(
            id=read.number("id"),
            at=read.time("at"),
            event=read.text("event"),
            success=read.flag("success"),
            method=read.opt_text("method"),
            reason=read.opt_text("reason"),
            ip=read.text("ip"),
            client=read.text("client"),
            username=read.opt_text("username") if "username" in data else None,
            count=read.number("count") if "count" in data else 1,
        )


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Newest first; pass `next_before` as `before` for the next (older) page, None at the end."""

    items: tuple[HistoryEntry, ...]
    next_before: int | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "") -> Self:
        read = _Fields(data, where)
        return cls(
            items=_items(read, "items", HistoryEntry.from_json),
            next_before=read.opt_number("next_before"),
        )


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: int
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str
    client: str
    current: bool

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "") -> Self:
        read = _Fields(data, where)
        return cls(
            id=read.number("id"),
            created_at=read.time("created_at"),
            last_seen_at=read.time("last_seen_at"),
            expires_at=read.time("expires_at"),
            ip=read.text("ip"),
            client=read.text("client"),
            current=read.flag("current"),
        )


@dataclass(frozen=True, slots=True)
class Policy:
    force_2fa: bool
    grace_period_days: int
    forced_since: datetime | None
    updated_at: datetime | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "") -> Self:
        read = _Fields(data, where)
        return cls(
            force_2fa=read.flag("force_2fa"),
            grace_period_days=read.number("grace_period_days"),
            forced_since=read.opt_time("forced_since"),
            updated_at=read.opt_time("updated_at"),
        )


@dataclass(frozen=True, slots=True)
class AdminUser:
    """An account as administrators see it; `locked_until` is None unless throttled now."""

    username: str
    is_admin: bool
    totp_enabled: bool
    totp_enabled_at: datetime | None
    created_at: datetime
    last_login: LoginInfo | None
    failed_attempts: int
    locked_until: datetime | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "") -> Self:
        read = _Fields(data, where)
        return cls(
            username=read.text("username"),
            is_admin=read.flag("is_admin"),
            totp_enabled=read.flag("totp_enabled"),
            totp_enabled_at=read.opt_time("totp_enabled_at"),
            created_at=read.time("created_at"),
            last_login=_login_info(read, "last_login"),
            failed_attempts=read.number("failed_attempts"),
            locked_until=read.opt_time("locked_until"),
        )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any] = field(hash=False)
    ip: str | None
    client: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "") -> Self:
        read = _Fields(data, where)
        return cls(
            id=read.number("id"),
            at=read.time("at"),
            actor=read.text("actor"),
            action=read.text("action"),
            target=read.opt_text("target"),
            detail=dict(read.mapping("detail")),
            ip=read.opt_text("ip"),
            client=read.opt_text("client"),
        )


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: tuple[AuditEntry, ...]
    next_before: int | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "") -> Self:
        read = _Fields(data, where)
        return cls(
            items=_items(read, "items", AuditEntry.from_json),
            next_before=read.opt_number("next_before"),
        )


@dataclass(frozen=True, slots=True)
class DisconnectResult:
    """`logged_out` is true when the policy forced the disconnect to end every session."""

    logged_out: bool

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "") -> Self:
        return cls(logged_out=_Fields(data, where).flag("logged_out"))


__all__ = [
    "AdminUser",
    "AuditEntry",
    "AuditPage",
    "DisconnectResult",
    "HistoryEntry",
    "HistoryPage",
    "LoginInfo",
    "Me",
    "Policy",
    "PolicySummary",
    "SessionInfo",
    "SignInResult",
    "SignInStatus",
    "TotpSetup",
]
