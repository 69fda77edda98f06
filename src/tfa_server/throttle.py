"""Throttling arithmetic: per account, per unknown name and per client address."""

from __future__ import annotations

from collections import OrderedDict, deque
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


class NameThrottle:
    """Throttle state for names that match no account.

    Without it an unknown name would never lock while a real one does after five tries,
    which would tell an attacker which accounts exist. Bounded, oldest forgotten first.
    """

    def __init__(self, rules: ThrottleRules, capacity: int = 10_000) -> None:
        self._rules = rules
        self._capacity = capacity
        self._states: OrderedDict[str, ThrottleState] = OrderedDict()

    def get(self, name: str) -> ThrottleState:
        return self._states.get(name, ThrottleState())

    def fail(self, name: str, now: float) -> ThrottleState:
        state = after_failure(self.get(name), now, self._rules)
        self._states[name] = state
        self._states.move_to_end(name)
        while len(self._states) > self._capacity:
            self._states.popitem(last=False)
        return state


class AddressThrottle:
    """At most N failed attempts per client address within a sliding window."""

    def __init__(self, rules: ThrottleRules, capacity: int = 100_000) -> None:
        self._rules = rules
        self._capacity = capacity
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str, now: float) -> deque[float] | None:
        times = self._failures.get(address)
        if times is None:
            return None
        horizon = now - self._rules.ip_window
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[address]
            return None
        return times

    def retry_after(self, address: str, now: float) -> float | None:
        times = self._recent(address, now)
        if times is None or len(times) < self._rules.ip_max_failures:
            return None
        # Free again when enough old failures leave the window to drop below the limit.
        return times[len(times) - self._rules.ip_max_failures] + self._rules.ip_window - now

    def forgive(self, address: str, at: float) -> None:
        """Withdraw a failure counted up front for an attempt that then succeeded."""
        times = self._failures.get(address)
        if times is not None and at in times:
            times.remove(at)

    def fail(self, address: str, now: float) -> None:
        times = self._recent(address, now)
        if times is None:
            times = self._failures[address] = deque()
        times.append(now)
        self._failures.move_to_end(address)
        while len(self._failures) > self._capacity:
            self._failures.popitem(last=False)
