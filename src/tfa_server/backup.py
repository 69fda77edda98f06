"""`tfa-server backup`: a consistent copy of a SQLite database while `serve` runs.

SQLite's online backup API, in one step: the copy is one read transaction, one moment of the
database. The server's database is in WAL mode, where a reader blocks no writer, so sign-ins go
on meanwhile (copied in small steps instead, every write from another process would restart
the copy, and under steady load it might never finish). The copy is written under a temporary
name beside the destination, checked, and renamed into place: a backup interrupted half-way
never looks like a finished one."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path


class BackupError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class BackupDone:
    path: Path
    size: int
    accounts: int


def backup_sqlite(source: Path, destination: Path) -> BackupDone:
    """Copy `source` to `destination` (which must not exist), mode 0600, and check the copy."""
    if destination.exists():
        raise BackupError(f"{destination} already exists; choose a new name")
    if not destination.parent.is_dir():
        raise BackupError(f"directory {destination.parent} does not exist")
    partial = destination.with_name(f".{destination.name}.partial")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()  # what an interrupted run left
    # Created empty with the right mode before SQLite opens it: never readable by others.
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        reader = sqlite3.connect(source, timeout=30.0)
        try:
            if not reader.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'users'"
            ).fetchone():
                raise BackupError(f"{source} is not a tfa database")
            copy = sqlite3.connect(partial)
            try:
                reader.backup(copy)  # every page in one step: one read transaction
                # One file, no -wal beside it: what is restored is this file alone.
                copy.execute("PRAGMA journal_mode = DELETE")
                problems = copy.execute("PRAGMA integrity_check").fetchall()
                if problems != [("ok",)]:
                    raise BackupError(f"the copy failed its integrity check: {problems[0][0]}")
                accounts = int(copy.execute("SELECT COUNT(*) FROM users").fetchone()[0])
            finally:
                copy.close()
        finally:
            reader.close()
        with open(partial, "rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, destination)
        directory = os.open(destination.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        raise
    return BackupDone(destination, destination.stat().st_size, accounts)
