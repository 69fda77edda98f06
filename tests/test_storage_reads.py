"""SQLite's reads for every request run on a connection of their own: they see every committed
write at once and never queue behind a write in progress (B2 of bench/)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tfa_server.storage.database import Connection, SqliteDatabase, transaction

pytestmark = pytest.mark.sqlite_only


@pytest.fixture
async def database(tmp_path: Path) -> SqliteDatabase:
    db = SqliteDatabase(tmp_path / "tfa.db")
    await db.open()
    yield db  # type: ignore[misc]
    db.close()


def _count(conn: Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM users").fetchone()[0])


async def test_a_read_does_not_wait_behind_a_write_in_progress(database: SqliteDatabase) -> None:
    inside, leave = threading.Event(), threading.Event()

    def _slow_write(conn: Connection) -> None:
        with transaction(conn):
            conn.execute(
                "INSERT INTO users (username, password_hash, created_at) VALUES ($1, $2, $3)",
                ("ann", "x", time.time()),
            )
            inside.set()
            leave.wait(10)

    writing = asyncio.ensure_future(database.run(_slow_write))
    await asyncio.to_thread(inside.wait, 10)
    try:
        started = time.monotonic()
        seen = await asyncio.wait_for(database.read(_count), 5)
        assert time.monotonic() - started < 1.0  # not the 10 s the write could still take
    finally:
        leave.set()
    assert seen == 0  # the write was not committed yet
    await writing
    assert await database.read(_count) == 1  # committed: the very next read sees it


async def test_the_reading_connection_cannot_write(database: SqliteDatabase) -> None:
    def _write(conn: Connection) -> None:
        conn.execute("DELETE FROM users")

    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await database.read(_write)
