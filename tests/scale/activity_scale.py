"""How fast the activity and users-list answers stay with a large database (issue 15).

Fills a temporary database with `--history` login_history rows spread over 90 days (many
accounts and addresses, a realistic share of refused attempts, throttled refusals counted
into rows) and `--accounts` accounts by direct SQL, written at schema version 4 so that the
server's own upgrade to version 5 backfills the activity rollup, as it would for a real
database. Then it starts the real server on 127.0.0.1 and times requests over HTTP (median
of `--repeat`), growing the accounts to each size of `--accounts` in turn.

    python -m tests.scale.activity_scale                      # 10^6 rows; 10^4 and 10^5 accounts
    python -m tests.scale.activity_scale --history 2000 --accounts 50,200 --repeat 2

`make stress` runs it at full size; tests/test_activity.py runs it tiny so it cannot rot.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from argon2 import PasswordHasher, Type

from tfa_server.app import initialise
from tfa_server.crypto import ServerKeys, create_key_file, load_key_file
from tfa_server.storage.database import sqlite_statements
from tfa_server.storage.schema import MIGRATIONS

from ..conftest import FAST_HASHING, PASSWORD, FakeClock, RunningServer, make_settings, start_server

T = TypeVar("T")
DAY = 86_400.0
HEAVY = "user0000000"  # the administrator, and the account with the most history of its own

# (event, success, method, reason, weight): the mix of a busy server's history.
EVENTS = [
    ("password", 1, "password", None, 50),
    ("password", 1, "password", "totp_required", 12),
    ("second_factor", 1, "totp", None, 11),
    ("second_factor", 1, "recovery_code", None, 1),
    ("logout", 1, None, None, 8),
    ("password", 0, "password", "bad_password", 9),
    ("password", 0, "password", "unknown_user", 3),
    ("second_factor", 0, "totp", "bad_code", 2),
    ("password", 0, "password", "throttled", 2),
    ("verify", 1, "totp", None, 1),
    ("verify", 0, "totp", "bad_code", 1),
]


@dataclass
class Figures:
    history: int
    build_seconds: float = 0.0
    backfill_seconds: float = 0.0
    rollup_rows: int = 0
    # (accounts, what, median ms, slowest ms)
    timings: list[tuple[int, str, float, float]] = field(default_factory=list)

    def table(self) -> str:
        lines = [
            f"history rows: {self.history:,}; filled in {self.build_seconds:.1f} s; schema 4 -> 5"
            f" upgrade (rollup backfill) {self.backfill_seconds:.1f} s, {self.rollup_rows:,}"
            " rollup rows",
            f"{'accounts':>9}  {'request':<58} {'median ms':>9} {'max ms':>7}",
        ]
        lines += [
            f"{accounts:>9,}  {what:<58} {median:>9.1f} {slowest:>7.1f}"
            for accounts, what, median, slowest in self.timings
        ]
        return "\n".join(lines)


def _v4(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    # A throw-away build: no journal, no syncing (the server opens it with its own settings).
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")
    for number, script in enumerate(MIGRATIONS[:4]):
        for statement in sqlite_statements(script):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number + 1}")
    return conn


def _names(start: int, stop: int) -> Iterator[str]:
    return (f"user{number:07d}" for number in range(start, stop))


def add_accounts(conn: sqlite3.Connection, start: int, stop: int, password_hash: str) -> None:
    """Accounts `start` to `stop`: every 50th an administrator, every 3rd with 2FA, every
    400th locked until far ahead, every 300th disabled; ids follow the names' order."""
    now = time.time()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO users (id, username, password_hash, is_admin, created_at, failed_attempts,"
        " locked_until, last_failure_at, disabled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            (
                number + 1,
                name,
                password_hash,
                int(number % 50 == 0),
                now - 100 * DAY,
                5 if number % 400 == 7 else 0,
                now + DAY if number % 400 == 7 else None,
                now if number % 400 == 7 else None,
                now - DAY if number % 300 == 11 else None,
            )
            for number, name in zip(range(start, stop), _names(start, stop), strict=True)
        ),
    )
    conn.executemany(
        "INSERT INTO totp_secrets (user_id, secret, enabled_at, last_step) VALUES (?, x'00', ?, 0)",
        ((number + 1, now - 50 * DAY) for number in range(start, stop) if number % 3 == 1),
    )
    conn.executemany(
        "INSERT INTO recovery_codes (user_id, digest, created_at, used_at) VALUES (?, ?, ?, ?)",
        (
            (number + 1, f"d{number}-{code}", now - 50 * DAY, now if code < 2 else None)
            for number in range(start, stop)
            if number % 3 == 1
            for code in range(10)
        ),
    )
    conn.execute("COMMIT")


def add_history(conn: sqlite3.Connection, rows: int, accounts: int, seed: int = 15) -> None:
    """`rows` rows over the last 90 days, oldest first; a tenth from names that are no
    account; the heavy account has a share of its own; 5,000 addresses, a few of them noisy."""
    rng = random.Random(seed)
    now = time.time()
    kinds = [event[:4] for event in EVENTS]
    weights = [event[4] for event in EVENTS]
    addresses = [f"10.{n // 250 % 250}.{n % 250}.{n % 7 + 1}" for n in range(5000)]
    times = sorted(now - rng.random() * 90 * DAY for _ in range(rows))

    def row(at: float) -> tuple[Any, ...]:
        event, success, method, reason = rng.choices(kinds, weights)[0]
        pick = rng.random()
        if pick < 0.1 or reason == "unknown_user":
            user_id, name = None, f"nobody{rng.randrange(20_000)}"
            if reason is None or success:
                event, success, method, reason = "password", 0, "password", "unknown_user"
        elif pick < 0.15:
            user_id, name = 1, HEAVY
        else:
            number = rng.randrange(accounts)
            user_id, name = number + 1, f"user{number:07d}"
        ip = addresses[int(rng.paretovariate(1.2)) % len(addresses)]
        count = rng.randrange(1, 30) if reason == "throttled" else 1
        return (user_id, name, at, event, success, method, reason, ip, "tfa-tui/1.0", count)

    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO login_history (user_id, username, at, event, success, method, reason, ip,"
        " client, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (row(at) for at in times),
    )
    conn.execute("COMMIT")


class ServerThread:
    """The server on a loop of its own, so the timed client shares nothing with it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=600)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@contextmanager
def running(folder: Path) -> Iterator[RunningServer]:
    runner = ServerThread()
    server = runner.run(start_server(folder, FakeClock(time.time())))
    try:
        yield server
    finally:
        runner.run(server.app.stop())
        runner.close()


def _median_ms(http: httpx.Client, path: str, token: str, repeat: int) -> tuple[float, float]:
    took: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    http.get(path, headers=headers).raise_for_status()  # warm: the first read fills the cache
    for _ in range(repeat):
        started = time.perf_counter()
        response = http.get(path, headers=headers)
        took.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return statistics.median(took), max(took)


def _timed(server: RunningServer, accounts: int, repeat: int, figures: Figures) -> None:
    middle = f"user{accounts // 2:07d}"
    requests = [
        ("/api/v1/me/activity?days=30", "me"),
        ("/api/v1/admin/activity?days=90", "admin"),
        (f"/api/v1/admin/activity?days=90&username={HEAVY}", "admin"),
        ("/api/v1/admin/users?limit=50", "admin"),
        (f"/api/v1/admin/users?limit=50&after={middle}", "admin"),
        (f"/api/v1/admin/users?limit=50&q={accounts - 1:07d}", "admin"),  # one match, at the end
        ("/api/v1/admin/users?limit=50&q=77", "admin"),  # many matches
        ("/api/v1/admin/users?limit=50&locked=true", "admin"),  # one in 400
        ("/api/v1/admin/users?limit=50&two_factor=false&admin=true", "admin"),
    ]
    with httpx.Client(base_url=server.base_url, timeout=60) as http:
        login = {"username": HEAVY, "password": PASSWORD}
        answer = http.post("/api/v1/login", json=login)
        answer.raise_for_status()
        token = answer.json()["token"]
        for path, _who in requests:
            median, slowest = _median_ms(http, path, token, repeat)
            figures.timings.append((accounts, path.removeprefix("/api/v1"), median, slowest))


def measure(history: int, accounts: list[int], repeat: int, folder: Path) -> Figures:
    """Build, upgrade, serve and time; accounts grow through the sizes in `accounts`."""
    figures = Figures(history)
    settings = make_settings(folder)
    hasher = PasswordHasher(
        time_cost=FAST_HASHING.time_cost,
        memory_cost=FAST_HASHING.memory_kib,
        parallelism=FAST_HASHING.parallelism,
        type=Type.ID,
    )
    password_hash = hasher.hash(PASSWORD)
    sizes = sorted(accounts)
    started = time.perf_counter()
    with closing(_v4(settings.db_path)) as conn:
        add_accounts(conn, 0, sizes[0], password_hash)
        add_history(conn, history, sizes[0])
    figures.build_seconds = time.perf_counter() - started
    create_key_file(settings.key_path)
    started = time.perf_counter()
    initialise(settings)  # opens the database: the upgrade to version 5 backfills the rollup
    figures.backfill_seconds = time.perf_counter() - started
    with closing(sqlite3.connect(settings.db_path, isolation_level=None)) as conn:
        # The seeded secrets are placeholders no key opens: the key is the database's by
        # declaration here, as `tfa-server init` declares it for a new database.
        fingerprint = ServerKeys(load_key_file(settings.key_path)).fingerprint
        conn.execute("UPDATE server_key SET fingerprint = ?", (fingerprint,))
    with closing(sqlite3.connect(settings.db_path)) as conn:
        figures.rollup_rows = conn.execute("SELECT COUNT(*) FROM activity").fetchone()[0]
    have = sizes[0]
    for size in sizes:
        if size > have:
            with closing(sqlite3.connect(settings.db_path, isolation_level=None)) as conn:
                add_accounts(conn, have, size, password_hash)
            have = size
        with running(folder) as server:
            _timed(server, size, repeat, figures)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument(
        "--accounts",
        default="10000,100000",
        type=lambda text: [int(part) for part in text.split(",")],
    )
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tfa-scale-") as folder:
        print(measure(args.history, args.accounts, args.repeat, Path(folder)).table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
