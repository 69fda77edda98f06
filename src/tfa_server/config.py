"""Server settings: every value has a default, a CLI flag and a `TFA_*` environment variable."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tfa_protocol.types import Algorithm


@dataclass(frozen=True, slots=True)
class PasswordHashing:
    """Argon2id cost. Defaults are OWASP's minimum for Argon2id: m=19 MiB, t=2, p=1."""

    memory_kib: int = 19 * 1024
    time_cost: int = 2
    parallelism: int = 1


@dataclass(frozen=True, slots=True)
class TotpRules:
    """RFC 6238 parameters; the defaults are the ones Google Authenticator assumes."""

    algorithm: Algorithm = "SHA1"
    digits: int = 6
    period: int = 30
    secret_bytes: int = 20  # 160 bits, RFC 4226 section 4 recommendation
    window: int = 1  # accepted steps either side of now


@dataclass(frozen=True, slots=True)
class ThrottleRules:
    account_free_failures: int = 5
    account_base_lock: float = 30.0
    account_max_lock: float = 15 * 60.0
    challenge_attempts: int = 5
    ip_max_failures: int = 30
    ip_window: float = 10 * 60.0
    # Failures older than this are forgotten, for real accounts and unknown names alike, so
    # a count that outlives a day cannot tell the two apart.
    failure_memory: float = 24 * 3600.0
    # Refusals while throttled are counted into one history row per address, name and
    # minute, so a flood writes a bounded amount.
    refusal_bucket: float = 60.0


@dataclass(frozen=True, slots=True)
class SessionRules:
    absolute_lifetime: float = 12 * 3600.0
    idle_timeout: float = 60 * 60.0
    challenge_lifetime: float = 5 * 60.0
    # Active sessions (and, separately, open challenges) a user may hold; the oldest goes.
    max_per_user: int = 50
    # Connecting an authenticator needs the password again unless the session signed in
    # with it this recently, so a stolen token cannot enroll the thief's phone.
    fresh_sign_in: float = 5 * 60.0
    # Writing last-seen on every request would cost a synced write per call; a minute is
    # fine-grained enough for an hour-long idle timeout.
    touch_interval: float = 60.0


@dataclass(frozen=True, slots=True)
class Retention:
    """Days kept; 0 keeps everything. A year of sign-in history answers "was that me?" for
    every season and meets audit rules that ask for twelve months (PCI DSS 10.5.1), while
    addresses and client names older than that serve no one. Administrators' actions are few
    and are the evidence when misuse comes to light late, so they are kept twice as long."""

    history_days: int = 365
    audit_days: int = 730


@dataclass(frozen=True, slots=True)
class Settings:
    # The SQLite file, or None with a postgresql:// URL in db_url instead.
    db_path: Path | None
    key_path: Path
    db_url: str | None = None
    issuer: str = "tfa"
    passwords: PasswordHashing = field(default_factory=PasswordHashing)
    totp: TotpRules = field(default_factory=TotpRules)
    throttle: ThrottleRules = field(default_factory=ThrottleRules)
    sessions: SessionRules = field(default_factory=SessionRules)
    recovery_code_count: int = 10
    retention: Retention = field(default_factory=Retention)
    # Where people reach this server, for the messages that tell them to set up 2FA.
    public_url: str = ""

    @property
    def database(self) -> str | Path:
        """What to open: the URL when there is one, else the file."""
        if self.db_url is not None:
            return self.db_url
        assert self.db_path is not None
        return self.db_path

    @property
    def database_name(self) -> str:
        """The database as messages name it: the file, or the URL without its password."""
        from tfa_server.storage.database import redacted

        return redacted(self.db_url) if self.db_url is not None else str(self.db_path)


def default_key_path(db_path: Path) -> Path:
    """The key lives beside the database but in its own file, so a database dump lacks it."""
    return db_path.with_name(db_path.name + ".key")
