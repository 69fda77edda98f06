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


def rfc3339(timestamp: float | None) -> str | None:
    """RFC 3339 UTC with a `Z`, to the second: what the API promises for every time."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(int(timestamp), tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
