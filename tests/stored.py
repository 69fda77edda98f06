"""What a database holds, on either backend, for the tests that look for secrets in it: every
row of every table through the server's own connection, and on SQLite the file's bytes too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tfa_server.config import Settings
from tfa_server.storage.database import Connection, SqliteDatabase

T = TypeVar("T")


def on_file(db: Path, work: Callable[[Connection], T]) -> T:
    """`work` on a SQLite file no server has open, through the server's own storage layer."""
    database = SqliteDatabase(db)
    database.open_sync()
    try:
        return database.run_sync(work)
    finally:
        database.close()


def tables(conn: Connection) -> list[str]:
    if conn.dialect.sqlite:
        query = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    else:
        query = (
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name"
        )
    return [str(row[0]) for row in conn.execute(query)]


def stored(conn: Connection) -> tuple[str, bytes]:
    """(text, data): each row of each table as a line of text, values as str() gives them;
    and every value's bytes run together (text as UTF-8, blobs as stored)."""
    lines: list[str] = []
    data: list[bytes] = []
    for table in tables(conn):
        for row in conn.execute(f"SELECT * FROM {table}"):  # noqa: S608 names from the catalogue
            values = [row[index] for index in range(len(row.keys()))]
            lines.append(f"{table}: " + "\t".join(str(value) for value in values))
            for value in values:
                if isinstance(value, bytes):
                    data.append(value)
                elif value is not None:
                    data.append(str(value).encode())
    return "\n".join(lines), b"\n".join(data)


def sqlite_file_bytes(settings: Settings) -> bytes:
    """The SQLite file with its WAL and shared memory as they lie on disk (pages not yet
    vacuumed, old row versions); nothing on PostgreSQL, whose files are the server's."""
    if settings.db_path is None:
        return b""
    db: Path = settings.db_path
    return b"".join(
        path.read_bytes()
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"))
        if path.exists()
    )
