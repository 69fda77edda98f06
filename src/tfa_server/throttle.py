"""Throttling arithmetic: per account, per unknown name and per client address.

The state itself lives in the database (storage/users.py, storage/throttles.py), so every
instance sharing it counts the same failures."""

from __future__ import annotations

from dataclasses import dataclass

from tfa_server.config import ThrottleRules


@dataclass(frozen=True, slots=True)
class ThrottleState:
    failures: int = 0
    locked_until: float | None = None
    last_failure_at: float | None = None

    def retry_after(self, now: float) -> float | None:
        if self.locked_until is not None and self.locked_until > now:
            return self.locked_until - now
        return None

    def current_failures(self, now: float, rules: ThrottleRules) -> int:
        """The count still remembered: a quiet day forgets it, for any name."""
        if self.last_failure_at is None or now - self.last_failure_at >= rules.failure_memory:
            return 0
        return self.failures


def after_failure(state: ThrottleState, now: float, rules: ThrottleRules) -> ThrottleState:
    """The 5th consecutive failure locks for 30 s; each further one doubles it, up to 15 min.

    Consecutive within `failure_memory`: older failures are forgotten the same way for real
    accounts and unknown names, so the count's age tells nothing about which names exist.
    """
    failures = state.current_failures(now, rules) + 1
    over = failures - rules.account_free_failures
    if over < 0:
        return ThrottleState(failures, state.locked_until, now)
    lock = min(rules.account_base_lock * 2.0**over, rules.account_max_lock)
    return ThrottleState(failures, now + lock, now)


def address_retry_after(failures: list[float], now: float, rules: ThrottleRules) -> float | None:
    """At most N failed attempts per client address within a sliding window: the wait until
    enough of `failures` (the window's, oldest first) leave it to drop below the limit."""
    recent = [at for at in failures if at > now - rules.ip_window]
    if len(recent) < rules.ip_max_failures:
        return None
    return recent[len(recent) - rules.ip_max_failures] + rules.ip_window - now
