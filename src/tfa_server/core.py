"""What every service needs: settings, storage, keys, hashing, the clock and throttles."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from tfa_server.clock import Clock
from tfa_server.config import Settings
from tfa_server.crypto import ServerKeys
from tfa_server.passwords import Passwords
from tfa_server.storage.database import Database
from tfa_server.throttle import AddressThrottle, NameThrottle


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request came from, as the history records it. A relying service's call
    comes from the end user's address (as the service saw it) through the service."""

    ip: str
    client: str
    service: str | None = None
    service_ip: str | None = None


class AccountLocks:
    """One asyncio lock per account name.

    Checking the throttle, verifying and recording the result happen under it, so parallel
    guesses against one account are evaluated one at a time and cannot overrun the limit.
    """

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(name, asyncio.Lock())
        self._users[name] = self._users.get(name, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[name] -= 1
            if self._users[name] == 0:
                del self._users[name]
                del self._locks[name]


@dataclass(slots=True)
class Core:
    settings: Settings
    db: Database
    keys: ServerKeys
    passwords: Passwords
    clock: Clock
    names: NameThrottle = field(init=False)
    addresses: AddressThrottle = field(init=False)
    account_locks: AccountLocks = field(default_factory=AccountLocks)

    def __post_init__(self) -> None:
        self.names = NameThrottle(self.settings.throttle)
        self.addresses = AddressThrottle(self.settings.throttle)

    def now(self) -> float:
        return self.clock.now()
