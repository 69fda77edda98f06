"""Time as a dependency, so TOTP windows, throttling and expiry are testable."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


def utc(timestamp: float) -> datetime:
    """To the second, in UTC: the wire writes it as RFC 3339 with a `Z`, as the API promises."""
    return datetime.fromtimestamp(int(timestamp), tz=UTC)


def maybe_utc(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else utc(timestamp)


def rfc3339(timestamp: float | None) -> str | None:
    """A time as the wire writes it: `2026-11-30T20:53:17Z`."""
    return None if timestamp is None else utc(timestamp).strftime("%Y-%m-%dT%H:%M:%SZ")
