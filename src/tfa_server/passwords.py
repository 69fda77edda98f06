"""Argon2id password hashing on a thread pool, so hashing never stalls the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from tfa_protocol.types import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, SHORT_PASSWORD
from tfa_server.config import PasswordHashing

# How much lower than the rest of the server the hashing threads run (Linux gives each thread
# its own nice value). Hashing keeps every core busy under a sign-in rush; at the same priority
# the event loop waits behind it for its share of the CPU, so every other request (a /me, a
# code check) waits too. Lowered, hashing still gets all the CPU the loop leaves idle.
HASHING_NICENESS = 10


def _lower_priority() -> None:
    """A hashing thread's initializer: below the event loop, where the system allows it."""
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: no such call here
        thread = threading.get_native_id()
        now = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, now + HASHING_NICENESS))


class Passwords:
    def __init__(self, cost: PasswordHashing, workers: int | None = None) -> None:
        self._hasher = PasswordHasher(
            time_cost=cost.time_cost,
            memory_cost=cost.memory_kib,
            parallelism=cost.parallelism,
            type=Type.ID,
        )
        self._pool = ThreadPoolExecutor(
            max_workers=workers or os.cpu_count() or 2,
            thread_name_prefix="argon2",
            initializer=_lower_priority,
        )
        # Verifying against this when the user does not exist makes an unknown name take as
        # long as a wrong password, so timing does not reveal which accounts exist.
        self._dummy_hash = self._hasher.hash("tfa-no-such-user")

    def hash_sync(self, password: str) -> str:
        return self._hasher.hash(password)

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self.hash_sync, password
        )

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """Constant work whether or not the account exists (argon2 compares in constant time)."""
        target = stored_hash or self._dummy_hash
        ok = await asyncio.get_running_loop().run_in_executor(
            self._pool, self._verify_sync, target, password
        )
        return ok and stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when the hash was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True

    def _verify_sync(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def password_problem(password: str) -> str | None:
    """Why a new password is unacceptable, or None. Length only: NIST SP 800-63B 5.1.1.2."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return SHORT_PASSWORD
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"Passwords may have at most {MAX_PASSWORD_LENGTH} characters."
    return None
