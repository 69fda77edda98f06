"""The server key against its database: the check every start makes, and `rotate-key`.

The database keeps the key's generation and check value (storage/server_key.py). A server
whose key file does not match refuses to start, and one whose key is replaced while it runs
refuses to seal or check anything more with it (second_factor.require_current_key).

A rotation stages the new key beside the old one (`<key>.new`, written and synced before the
database changes), re-keys the database in one transaction (each TOTP secret decrypted and
encrypted again; each recovery-code digest MACed again under the new key; the old recovery
MAC key sealed under the new one for the codes made under it), then moves the files: the old
key to `<key>.retired-<generation>`, the new one into place. Killed before the commit, the
database is as it was and a second run starts again with a fresh key; killed after it, the
database's check value is the staged key's, which tells the second run to finish the files
(and `serve` to say so). Nothing needs the retired key file after that except a backup taken
before the rotation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag

from tfa_server.config import Settings
from tfa_server.crypto import (
    KeyFileError,
    ServerKeys,
    create_key_file,
    key_fingerprint,
    load_key_file,
)
from tfa_server.storage import audit, server_key
from tfa_server.storage.database import Connection, open_database, transaction

BATCH = 1000
ACTION = "server_key_rotated"


def staged_path(key_path: Path) -> Path:
    return key_path.with_name(key_path.name + ".new")


def retired_path(key_path: Path, generation: int) -> Path:
    return key_path.with_name(f"{key_path.name}.retired-{generation}")


def check_key(conn: Connection, keys: ServerKeys, key_path: Path, database: str) -> None:
    """Refuse a key file that is not the database's, saying what to do. The first key to
    open a database (one from before the check value existed, or a new one) is recorded,
    once it has been seen to open a stored secret."""
    state = server_key.state(conn)
    if state.fingerprint == keys.fingerprint:
        return
    if state.fingerprint is None:
        with transaction(conn):
            if _opens_a_secret(conn, keys) and server_key.claim(conn, keys.fingerprint):
                return
        raise KeyFileError(
            f"key file {key_path} does not open the 2FA secrets stored in {database}; give"
            " the key file this database was made with"
        )
    staged = staged_path(key_path)
    if _fingerprint_of(staged) == state.fingerprint:
        raise KeyFileError(
            f"'tfa-server rotate-key' re-keyed {database} but did not finish replacing"
            f" {key_path} with {staged}: run 'tfa-server rotate-key' again to finish"
        )
    retired = retired_path(key_path, state.generation)
    if _fingerprint_of(retired) == state.fingerprint:
        raise KeyFileError(
            f"key file {key_path} is newer than {database}, which is from before a key"
            f" rotation (a backup?): its key is {retired}; give that with --key-file"
        )
    raise KeyFileError(
        f"key file {key_path} is not the key of {database} (key generation"
        f" {state.generation}); after a rotation every instance needs the new key file, and a"
        " backup from before one needs the key file of its time"
    )


def _opens_a_secret(conn: Connection, keys: ServerKeys) -> bool:
    for table in ("totp_secrets", "pending_totp_secrets"):
        row = conn.execute(f"SELECT user_id, secret FROM {table} LIMIT 1").fetchone()  # noqa: S608 fixed names
        if row is not None:
            try:
                keys.decrypt_secret(bytes(row[1]), int(row[0]))
            except (InvalidTag, ValueError):  # ValueError: too short to be sealed at all
                return False
            return True
    return True


def _fingerprint_of(path: Path) -> str | None:
    try:
        return key_fingerprint(load_key_file(path))
    except KeyFileError:
        return None


@dataclass(frozen=True, slots=True)
class Rotation:
    generation: int
    # What was re-keyed (the audit entry's detail); None when this run only finished the
    # files of a run that had re-keyed the database.
    counts: dict[str, int] | None
    retired_file: Path


def rotate(settings: Settings, now: float, actor: str) -> Rotation:
    """Re-key the database under a new key file; see the module's docstring for the steps.
    Every instance must be stopped first: one still running holds the old key (it refuses
    to use it once the database has moved on, and answers 503 until restarted)."""
    old = ServerKeys(load_key_file(settings.key_path))
    staged = staged_path(settings.key_path)
    database = open_database(settings.database)
    try:
        database.open_sync()
        state = database.run_sync(server_key.state)
        if state.fingerprint not in (None, old.fingerprint) and (
            _fingerprint_of(staged) == state.fingerprint
        ):
            # The database was re-keyed by a run that stopped before moving the files.
            return Rotation(
                state.generation, None, _swap_files(settings.key_path, staged, state.generation - 1)
            )
        database.run_sync(
            lambda conn: check_key(conn, old, settings.key_path, settings.database_name)
        )
        # Not in the database yet, so never used: a key left by a run that stopped before
        # its commit is replaced, which also covers one cut short while being written.
        staged.unlink(missing_ok=True)
        create_key_file(staged)
        _sync_directory(staged.parent)
        new = ServerKeys(load_key_file(staged))
        counts = database.run_sync(lambda conn: _rekey(conn, old, new, now, actor))
        generation = counts["generation"]
        return Rotation(generation, counts, _swap_files(settings.key_path, staged, generation - 1))
    finally:
        database.close()


def _rekey(
    conn: Connection, old: ServerKeys, new: ServerKeys, now: float, actor: str
) -> dict[str, int]:
    with transaction(conn):
        state = server_key.state(conn)
        if state.fingerprint != old.fingerprint:
            raise KeyFileError("another rotation changed the database meanwhile; nothing was done")
        secrets = _reseal_secrets(conn, "totp_secrets", old, new)
        pending = _reseal_secrets(conn, "pending_totp_secrets", old, new)
        codes = 0
        for rows in _batches(conn, "recovery_codes", "id", "digest"):
            conn.executemany(
                "UPDATE recovery_codes SET digest = $1 WHERE id = $2",
                [(new.rewrap(digest), code_id) for code_id, digest in rows],
            )
            codes += len(rows)
        for generation, sealed in server_key.retired(conn, 0):
            server_key.put_retired(conn, generation, old.reseal(sealed, generation, new), now)
        server_key.put_retired(conn, state.generation, new.seal_retired(old, state.generation), now)
        generation = state.generation + 1
        server_key.advance(conn, generation, new.fingerprint, now)
        server_key.forget_unused(conn)
        kept = len(server_key.retired(conn, 0))
        detail = {
            "generation": generation,
            "totp_secrets": secrets,
            "pending_setups": pending,
            "recovery_codes": codes,
            "retired_mac_keys_kept": kept,
        }
        audit.record(conn, audit.AuditEntry(actor, ACTION, None, detail, None, None), now)
    return detail


def _reseal_secrets(conn: Connection, table: str, old: ServerKeys, new: ServerKeys) -> int:
    count = 0
    for rows in _batches(conn, table, "user_id", "secret"):
        sealed = []
        for user_id, blob in rows:
            try:
                secret = old.decrypt_secret(bytes(blob), user_id)
            except InvalidTag:
                raise KeyFileError(
                    f"the 2FA secret of account id {user_id} ({table}) does not open with the"
                    " current key; nothing was changed"
                ) from None
            sealed.append((new.encrypt_secret(secret, user_id), user_id))
        conn.executemany(f"UPDATE {table} SET secret = $1 WHERE user_id = $2", sealed)  # noqa: S608 fixed names
        count += len(rows)
    return count


def _batches(
    conn: Connection, table: str, key: str, column: str
) -> Iterator[list[tuple[int, Any]]]:
    """(key, column) pairs in key order, BATCH at a time (keyset: no OFFSET rescans)."""
    last = -1
    while True:
        rows = conn.execute(
            f"SELECT {key}, {column} FROM {table} WHERE {key} > $1 ORDER BY {key} LIMIT {BATCH}",  # noqa: S608 fixed names
            (last,),
        ).fetchall()
        if not rows:
            return
        yield [(int(row[0]), row[1]) for row in rows]
        last = int(rows[-1][0])


def _swap_files(key_path: Path, staged: Path, old_generation: int) -> Path:
    """Old key aside (a hard link, so the key path is never missing), new key into place;
    returns where the old key went."""
    retired = retired_path(key_path, old_generation)
    if not retired.exists():
        os.link(key_path, retired)
    os.replace(staged, key_path)
    _sync_directory(key_path.parent)
    return retired


def _sync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
