"""What every service needs: settings, storage, keys, hashing, the clock and account locks."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar, cast

from tfa_server.clock import Clock
from tfa_server.config import Settings
from tfa_server.crypto import ServerKeys
from tfa_server.errors import ServiceUnavailable
from tfa_server.passwords import Passwords
from tfa_server.storage import throttles
from tfa_server.storage.database import Connection, Database, transaction

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request came from, as the history records it. A relying service's call
    comes from the end user's address (as the service saw it) through the service."""

    ip: str
    client: str
    service: str | None = None
    service_ip: str | None = None


class AccountLocks:
    """One request at a time per account name, across every instance sharing the database.

    Checking the throttle, verifying and recording the result happen under it, so parallel
    guesses against one account are evaluated one at a time and cannot overrun the limit,
    wherever they arrive. The lock is a lease row in the database (taken by one atomic upsert,
    given back when done, taken over only once it ran out because its holder died): a password
    is hashed under it, which must not hold a transaction open. Within one process an asyncio
    lock queues the requests first, so only one of them asks the database at a time; the
    process's own lease can be taken again (one that a failed release left behind).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        # This process, in words an operator reading account_leases recognises; not a secret.
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[Lease]:
        async with self.hold_with(name, _nothing) as (lease, _):
            yield lease

    @asynccontextmanager
    async def hold_with(
        self, name: str, first: Callable[[Connection], T]
    ) -> AsyncIterator[tuple[Lease, T]]:
        """The lease, with `first` in the transaction that takes it: one trip to the database
        where a sign-in would otherwise make two (and `Lease.last` saves the trip back)."""
        lock = self._locks.setdefault(name, asyncio.Lock())
        self._users[name] = self._users.get(name, 0) + 1
        try:
            async with lock:
                lease = Lease(self._db, name, self._holder)
                value = await self._acquire(name, first)
                try:
                    yield lease, value
                finally:
                    if not lease.returned:
                        await self._db.run(
                            lambda conn: throttles.release_lease(conn, name, self._holder)
                        )
        finally:
            self._users[name] -= 1
            if self._users[name] == 0:
                del self._users[name]
                del self._locks[name]

    async def _acquire(self, name: str, first: Callable[[Connection], T]) -> T:
        """Poll with a growing pause: another instance holds it for one hash at most."""
        pause = LEASE_FIRST_PAUSE
        deadline = time.monotonic() + LEASE_WAIT
        while True:
            now = time.time()  # leases outlive no process: wall time, not the policy clock

            def _take(conn: Connection, now: float = now) -> tuple[bool, T | None]:
                def take() -> bool:
                    return throttles.acquire_lease(
                        conn, name, self._holder, now, now + LEASE_SECONDS
                    )

                if first is _nothing:  # the upsert alone is atomic: no transaction around it
                    return take(), None
                with transaction(conn):
                    return (True, first(conn)) if take() else (False, None)

            taken, value = await self._db.run(_take)
            if taken:
                return cast(T, value)
            if time.monotonic() > deadline:
                raise ServiceUnavailable(
                    "Another request for this account is taking too long. Try again shortly.",
                    headers=[("Retry-After", "5")],
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, LEASE_LAST_PAUSE)


class Lease:
    """An account's lease while held: `last` gives it back in the holder's final write."""

    def __init__(self, db: Database, name: str, holder: str) -> None:
        self._db = db
        self._name = name
        self._holder = holder
        self.returned = False

    async def last(self, work: Callable[[Connection], T]) -> T:
        """`work`, then the lease given back, in one transaction. Should it fail, nothing of it
        was written and the lease is still held (and given back on the way out as usual)."""

        def _run(conn: Connection) -> T:
            with transaction(conn):
                result = work(conn)
                throttles.release_lease(conn, self._name, self._holder)
                return result

        result = await self._db.run(_run)
        self.returned = True
        return result


def _nothing(conn: Connection) -> None:
    return None


# A lease outlives its holder (a process killed while holding it) by this much at most; a
# request holds it for one password hash and a few writes. A waiter waits longer than that,
# so an account a dead instance held is free again within LEASE_SECONDS.
LEASE_SECONDS = 10.0
LEASE_WAIT = LEASE_SECONDS + 5.0
LEASE_FIRST_PAUSE = 0.002
LEASE_LAST_PAUSE = 0.05


@dataclass(slots=True)
class Core:
    settings: Settings
    db: Database
    keys: ServerKeys
    passwords: Passwords
    clock: Clock
    account_locks: AccountLocks = field(init=False)

    def __post_init__(self) -> None:
        self.account_locks = AccountLocks(self.db)

    def now(self) -> float:
        return self.clock.now()
