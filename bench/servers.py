"""Servers under measurement: each a process of its own, so the load tool measures it alone and
its memory and CPU time can be read from /proc."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from argon2 import PasswordHasher, Type

from tfa_server.app import initialise
from tfa_server.config import Settings
from tfa_server.storage import users
from tfa_server.storage.database import Connection, is_url, open_database, transaction

SERVING = re.compile(r"serving on http://127\.0\.0\.1:(\d+)")
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Process:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_mib(self) -> float:
        """Resident memory now, in MiB."""
        with open(f"/proc/{self.pid}/statm") as statm:
            return int(statm.read().split()[1]) * PAGE / 2**20

    def cpu_seconds(self) -> float:
        """User and system CPU time used so far, all threads."""
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK


def _wait_for_port(process: subprocess.Popen[bytes], log: Path, pattern: re.Pattern[str]) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if found := pattern.search(text):
            return int(found.group(1))
        if process.poll() is not None:
            raise RuntimeError(f"the server exited early:\n{text[-2000:]}")
        time.sleep(0.02)
    raise RuntimeError(f"the server did not start within 60 s:\n{log.read_text()[-2000:]}")


@contextmanager
def started(
    argv: Sequence[str],
    folder: Path,
    *,
    env: dict[str, str] | None = None,
    pattern: re.Pattern[str] = SERVING,
) -> Iterator[Process]:
    """A server process that prints its port (`pattern`), stopped and reaped afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "server.log"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TFA_")}
    environment.update(env or {})
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 our own commands
            list(argv),
            cwd=folder,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    try:
        port = _wait_for_port(process, log, pattern)
        yield Process(process, f"http://127.0.0.1:{port}", log)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def tfa_server(db: str, key: Path, folder: Path, *extra: str) -> Iterator[Process]:
    """`tfa-server serve` on loopback and a free port, with its default settings (production
    Argon2, an access log line per request, into a file) unless `extra` says otherwise. All
    load comes from one address, as from a reverse proxy: room for two load runs' worth of
    connections, since the last run's may still be closing when the next opens its own."""
    argv = [sys.executable, "-m", "tfa_server", "serve", "--host", "127.0.0.1", "--port", "0"]
    argv += ["--max-connections-per-address", "256"]
    env = {"TFA_DB": db, "TFA_KEY_FILE": str(key), "HOME": str(folder)}
    with started([*argv, *extra], folder, env=env) as server:
        yield server


def sign_in(url: str, username: str, password: str) -> str:
    """A session token for an account without 2FA."""
    answer = httpx.post(
        f"{url}/api/v1/login", json={"username": username, "password": password}, timeout=30
    )
    answer.raise_for_status()
    token = answer.json()["token"]
    assert isinstance(token, str)
    return token


PASSWORD = "bench-password-1"  # noqa: S105 a benchmark account's; every account made by `prepare`


def settings_for(db: str, key: Path) -> Settings:
    return Settings(
        db_path=None if is_url(db) else Path(db), db_url=db if is_url(db) else None, key_path=key
    )


def prepare(db: str, folder: Path, accounts: int) -> Path:
    """A new installation (schema, key file) with accounts user0, user1, ... without 2FA, all
    with PASSWORD hashed once with the production parameters; the key file's path."""
    folder.mkdir(parents=True, exist_ok=True)
    key = folder / "tfa.key"
    settings = settings_for(db, key)
    initialise(settings)
    password_hash = PasswordHasher(
        time_cost=settings.passwords.time_cost,
        memory_cost=settings.passwords.memory_kib,
        parallelism=settings.passwords.parallelism,
        type=Type.ID,
    ).hash(PASSWORD)
    database = open_database(settings.database)
    database.open_sync()
    try:

        def _create(conn: Connection) -> None:
            with transaction(conn):
                for number in range(accounts):
                    users.create(conn, f"user{number}", password_hash, False, time.time())

        database.run_sync(_create)
    finally:
        database.close()
    return key
