"""`tfa-server rotate-key`: a new server key, every TOTP secret re-encrypted under it in one
transaction, recovery codes that keep working, the old key file destroyable afterwards, an
interrupted run that leaves the database whole and finishes when run again, and servers that
refuse a key that is not the database's."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import stat
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from tfa_server import keys as rotation
from tfa_server.app import initialise, open_core
from tfa_server.config import Settings
from tfa_server.crypto import KeyFileError, ServerKeys, key_fingerprint, load_key_file
from tfa_server.storage import audit, server_key
from tfa_server.storage.database import Connection

from .conftest import (
    PASSWORD,
    FakeClock,
    RunningServer,
    assert_error,
    bearer,
    login,
    make_settings,
    sign_in_with_totp,
    start_server,
    totp_code,
    user_with_2fa,
)
from .stored import on_file
from .test_cli import COMMAND, env, run

__all__ = ["env"]  # a fixture, used by name


def rotate_key(environment: dict[str, str], settings: Settings) -> subprocess.CompletedProcess[str]:
    where = str(settings.db_url or settings.db_path)
    return run(environment, "rotate-key", "--db", where, "--key-file", str(settings.key_path))


async def _recover(http: httpx.AsyncClient, name: str, code: str) -> httpx.Response:
    first = await login(http, name)
    assert first["status"] == "totp_required"
    return await http.post(
        "/api/v1/login/recovery", headers=bearer(first["token"]), json={"code": code}
    )


async def _state(server: RunningServer) -> dict[str, Any]:
    def _read(conn: Connection) -> dict[str, Any]:
        return {
            "key": server_key.state(conn),
            "retired": [generation for generation, _ in server_key.retired(conn, 0)],
            "audit": list(audit.page(conn, limit=5, before=None)),
        }

    result: dict[str, Any] = await server.core.db.read(_read)
    return result


async def _alice_with_2fa(folder: Path, clock: FakeClock) -> tuple[Settings, str, list[str]]:
    """An installation in `folder` where alice has TOTP and recovery codes, its server
    stopped: (settings, her TOTP secret, her codes)."""
    server = await start_server(folder, clock)
    try:
        async with server.client() as http:
            secret, codes, _ = await user_with_2fa(server, http)
    finally:
        await server.app.stop()
    return server.settings, secret, codes


async def _alice_signs_in(
    folder: Path, clock: FakeClock, secret: str, code: str | None = None
) -> server_key.KeyState:
    """A server on `folder` again: alice signs in with her app, and with the recovery code
    `code` when given; returns the key's state it saw."""
    again = await start_server(folder, clock)
    try:
        async with again.client() as http:
            assert (await sign_in_with_totp(http, "alice", secret, clock))["status"] == (
                "authenticated"
            )
            if code is not None:
                assert (await _recover(http, "alice", code)).status_code == 200
        state: server_key.KeyState = (await _state(again))["key"]
    finally:
        await again.app.stop()
    return state


async def test_rotation_then_sign_ins_with_the_old_key_destroyed(
    env: dict[str, str], tmp_path: Path, database_url: str | None
) -> None:
    """Alice (TOTP, recovery codes, one spent), Bob (a setup begun, not confirmed) and Carol
    (no 2FA): after the rotation, with the old key file gone, each carries on as before."""
    clock = FakeClock()
    server = await start_server(tmp_path, clock, db_url=database_url)
    try:
        async with server.client() as http:
            secret, codes, _ = await user_with_2fa(server, http)
            assert (await _recover(http, "alice", codes[0])).status_code == 200
            await server.add_user("bob")
            bob = (await login(http, "bob"))["token"]
            setup = await http.post("/api/v1/me/totp/setup", headers=bearer(bob))
            assert setup.status_code == 200, setup.text
            bob_secret = setup.json()["secret"]
            await server.add_user("carol")
    finally:
        await server.app.stop()
    old_key = server.settings.key_path.read_bytes()

    rotated = rotate_key(env, server.settings)

    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stderr == ""
    said = rotated.stdout
    assert "to generation 2: 1 2FA secret(s) and 1 unfinished setup(s) re-encrypted" in said
    assert f"{len(codes)} recovery code(s) re-keyed" in said
    retired = rotation.retired_path(server.settings.key_path, 1)
    assert str(retired) in said
    assert "shred" in said
    new_key = server.settings.key_path.read_bytes()
    assert len(new_key) == 32
    assert new_key != old_key
    assert retired.read_bytes() == old_key
    for path in (server.settings.key_path, retired):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not rotation.staged_path(server.settings.key_path).exists()
    # Not one sealed secret or stored digest is what it was.
    retired.unlink()  # the old key destroyed, as the command's output invites

    again = await start_server(tmp_path, clock, db_url=database_url)
    try:
        async with again.client() as http:
            signed = await sign_in_with_totp(http, "alice", secret, clock)
            assert signed["status"] == "authenticated"
            recovered = await _recover(http, "alice", codes[1])
            assert recovered.status_code == 200, recovered.text
            assert recovered.json()["recovery_codes_left"] == len(codes) - 2
            assert_error(await _recover(http, "alice", codes[0]), 401, "code_reused")
            wrong = codes[2][:-1] + ("A" if codes[2][-1] != "A" else "B")
            assert_error(await _recover(http, "alice", wrong), 401, "invalid_code")
            # Bob's setup, begun under the old key, is confirmed under the new one.
            bob = (await login(http, "bob"))["token"]
            confirmed = await http.post(
                "/api/v1/me/totp/confirm",
                headers=bearer(bob),
                json={"code": totp_code(bob_secret, clock)},
            )
            assert confirmed.status_code == 200, confirmed.text
            clock.advance(30)
            bob_codes = confirmed.json()["recovery_codes"]
            assert (await _recover(http, "bob", bob_codes[0])).status_code == 200
            assert (await sign_in_with_totp(http, "bob", bob_secret, clock))["status"] == (
                "authenticated"
            )
            assert (await login(http, "carol"))["status"] == "authenticated"
            assert (await http.get("/readyz")).status_code == 200
        state = await _state(again)
    finally:
        await again.app.stop()
    assert state["key"].generation == 2
    assert state["key"].fingerprint == key_fingerprint(new_key)
    assert state["retired"] == [1]  # alice's codes were made under generation 1
    entry = state["audit"][0]
    assert (entry["action"], entry["actor"]) == ("server_key_rotated", "cli:tfa-tester")
    assert json.loads(entry["detail"]) == {
        "generation": 2,
        "totp_secrets": 1,
        "pending_setups": 1,
        "recovery_codes": len(codes),
        "retired_mac_keys_kept": 1,
    }


async def test_codes_survive_two_rotations_and_retired_keys_go_when_unused(
    env: dict[str, str], tmp_path: Path
) -> None:
    """A code made two keys ago is checked through both retired MAC keys; once no code made
    under a retired key remains, the next rotation forgets it."""
    clock = FakeClock()
    settings, secret, codes = await _alice_with_2fa(tmp_path, clock)
    for _ in range(2):
        assert rotate_key(env, settings).returncode == 0
    again = await start_server(tmp_path, clock)
    try:
        assert (await _state(again))["retired"] == [1, 2]
        async with again.client() as http:
            assert (await _recover(http, "alice", codes[3])).status_code == 200
            token = (await sign_in_with_totp(http, "alice", secret, clock))["token"]
            fresh = await http.post(
                "/api/v1/me/recovery-codes",
                headers=bearer(token),
                json={"password": PASSWORD, "code": totp_code(secret, clock)},
            )
            assert fresh.status_code == 200, fresh.text
            new_codes = fresh.json()["recovery_codes"]
    finally:
        await again.app.stop()
    rotated = rotate_key(env, settings)
    assert rotated.returncode == 0, rotated.stderr
    last = await start_server(tmp_path, clock)
    try:
        state = await _state(last)
        assert state["key"].generation == 4
        assert state["retired"] == [3]  # 1 and 2 served only codes that were replaced
        async with last.client() as http:
            assert (await _recover(http, "alice", new_codes[0])).status_code == 200
            assert_error(await _recover(http, "alice", codes[4]), 401, "invalid_code")
    finally:
        await last.app.stop()


async def test_a_server_left_running_with_the_old_key_refuses_key_work(
    env: dict[str, str], tmp_path: Path, database_url: str | None
) -> None:
    """The README says to stop every server first. One that was not answers 503 to what
    needs the key (and /readyz says so) instead of sealing under a retired key or counting a
    right code as a wrong guess; a restart with the new key mends it."""
    clock = FakeClock()
    server = await start_server(tmp_path, clock, db_url=database_url)
    try:
        async with server.client() as http:
            secret, codes, token = await user_with_2fa(server, http)
            await server.add_user("bob")
            rotated = await asyncio.to_thread(rotate_key, env, server.settings)
            assert rotated.returncode == 0, rotated.stderr
            ready = await http.get("/readyz")
            assert (
                "restarted with the new key file"
                in assert_error(ready, 503, "service_unavailable")["message"]
            )
            first = await login(http, "alice")
            by_app = await http.post(
                "/api/v1/login/totp",
                headers=bearer(first["token"]),
                json={"code": totp_code(secret, clock)},
            )
            assert_error(by_app, 503, "service_unavailable")
            by_code = await http.post(
                "/api/v1/login/recovery",
                headers=bearer(first["token"]),
                json={"code": codes[0]},
            )
            assert_error(by_code, 503, "service_unavailable")
            bob = (await login(http, "bob"))["token"]
            setup = await http.post("/api/v1/me/totp/setup", headers=bearer(bob))
            assert_error(setup, 503, "service_unavailable")
            regenerate = await http.post(
                "/api/v1/me/recovery-codes",
                headers=bearer(token),
                json={"password": PASSWORD, "code": totp_code(secret, clock)},
            )
            assert_error(regenerate, 503, "service_unavailable")
    finally:
        await server.app.stop()
    again = await start_server(tmp_path, clock, db_url=database_url)
    try:
        async with again.client() as http:
            assert (await sign_in_with_totp(http, "alice", secret, clock))["status"] == (
                "authenticated"
            )
            assert (await _recover(http, "alice", codes[0])).status_code == 200
            bob = (await login(http, "bob"))["token"]
            assert (
                await http.post("/api/v1/me/totp/setup", headers=bearer(bob))
            ).status_code == 200
            me = await http.get("/api/v1/me", headers=bearer(bob))
            assert me.json()["failed_attempts_since_last_login"] == 0
    finally:
        await again.app.stop()


async def test_serve_refuses_a_key_that_is_not_the_databases(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Checked at start, so a wrong key file is one line then, not a failure at each sign-in;
    a database from before the check value existed takes the first key that opens its
    secrets, and no other."""
    settings, _, _ = await _alice_with_2fa(tmp_path, FakeClock())
    assert settings.db_path is not None
    stranger = tmp_path / "other.key"
    stranger.write_bytes(secrets.token_bytes(32))
    stranger.chmod(0o600)
    served = run(env, "serve", "--db", str(settings.db_path), "--key-file", str(stranger))
    assert served.returncode == 1
    assert served.stderr.count("\n") == 1
    assert "is not the key of" in served.stderr

    def _forget(conn: Connection) -> None:
        with conn.transaction():
            conn.execute("UPDATE server_key SET fingerprint = NULL")

    on_file(settings.db_path, _forget)
    with pytest.raises(KeyFileError, match="does not open the 2FA secrets"):
        open_core(Settings(db_path=settings.db_path, key_path=stranger))
    core = open_core(settings)
    try:
        state = core.db.run_sync(server_key.state)
        assert state.fingerprint == core.keys.fingerprint
    finally:
        core.db.close()
        core.passwords.close()
    with pytest.raises(KeyFileError, match="is not the key of"):
        open_core(Settings(db_path=settings.db_path, key_path=stranger))


async def test_a_backup_from_before_a_rotation_names_the_key_it_needs(
    env: dict[str, str], tmp_path: Path
) -> None:
    clock = FakeClock()
    settings, secret, codes = await _alice_with_2fa(tmp_path, clock)
    assert settings.db_path is not None
    copy = tmp_path / "before-rotation.db"
    assert run(env, "backup", "--db", str(settings.db_path), str(copy)).returncode == 0
    assert rotate_key(env, settings).returncode == 0
    settings.db_path.unlink()  # restored as the README says: the copy where the database was
    for leftover in ("-wal", "-shm"):
        settings.db_path.with_name(settings.db_path.name + leftover).unlink(missing_ok=True)
    copy.rename(settings.db_path)
    served = run(env, "serve", "--db", str(settings.db_path), "--port", "0")
    assert served.returncode == 1
    retired = rotation.retired_path(settings.key_path, 1)
    assert f"from before a key rotation (a backup?): its key is {retired}" in served.stderr
    retired.replace(settings.key_path)
    assert (await _alice_signs_in(tmp_path, clock, secret, codes[0])).generation == 1


def _seed(db: Path, key: Path, accounts: int) -> None:
    """Many accounts with a TOTP secret and ten recovery codes each, written directly: the
    rotation then takes long enough to be killed in the middle of its transaction."""
    keys = ServerKeys(load_key_file(key))

    def _write(conn: Connection) -> None:
        with conn.transaction():
            start = int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM users").fetchone()[0]) + 1
            ids = range(start, start + accounts)
            conn.executemany(
                "INSERT INTO users (id, username, password_hash, created_at)"
                " VALUES ($1, $2, 'x', 0)",
                [(user_id, f"bulk{user_id}") for user_id in ids],
            )
            conn.executemany(
                "INSERT INTO totp_secrets (user_id, secret, enabled_at, last_step)"
                " VALUES ($1, $2, 0, 0)",
                [(user_id, keys.encrypt_secret(pyotp.random_base32(), user_id)) for user_id in ids],
            )
            conn.executemany(
                "INSERT INTO recovery_codes (user_id, digest, created_at) VALUES ($1, $2, 0)",
                [(user_id, secrets.token_hex(32)) for user_id in ids for _ in range(10)],
            )

    on_file(db, _write)


def _sealed(db: Path) -> dict[str, Any]:

    def _read(conn: Connection) -> dict[str, Any]:
        return {
            "generation": server_key.state(conn).generation,
            "secrets": conn.execute("SELECT user_id, secret FROM totp_secrets").fetchall(),
            "digests": conn.execute("SELECT id, digest FROM recovery_codes").fetchall(),
            "audit": conn.execute(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'server_key_rotated'"
            ).fetchone()[0],
        }

    return on_file(db, _read)


async def test_killed_in_the_middle_the_database_is_whole_and_a_second_run_finishes(
    env: dict[str, str], tmp_path: Path
) -> None:
    clock = FakeClock()
    settings, secret, codes = await _alice_with_2fa(tmp_path, clock)
    assert settings.db_path is not None
    _seed(settings.db_path, settings.key_path, 8_000)
    before = _sealed(settings.db_path)
    old_key = settings.key_path.read_bytes()
    staged = rotation.staged_path(settings.key_path)

    where = ["--db", str(settings.db_path), "--key-file", str(settings.key_path)]
    started = await asyncio.create_subprocess_exec(
        *COMMAND,
        "rotate-key",
        *where,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(6000):  # up to 30 s for the staged key: the transaction begins next
        if staged.exists() or started.returncode is not None:
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.2)  # into the re-keying transaction
    started.send_signal(signal.SIGKILL)
    await asyncio.wait_for(started.wait(), 30)
    assert started.returncode == -signal.SIGKILL, "the rotation ended before it could be killed"

    # All as it was: the same key file, the same sealed secrets and digests, no audit entry.
    assert settings.key_path.read_bytes() == old_key
    assert _sealed(settings.db_path) == before
    # A server may start on it meanwhile, with the old key; a stale staged key is harmless.
    assert (await _alice_signs_in(tmp_path, clock, secret)).generation == 1

    second = run(env, "rotate-key", *where)
    assert second.returncode == 0, second.stderr
    assert "to generation 2: 8001 2FA secret(s)" in second.stdout
    after = _sealed(settings.db_path)
    assert (after["generation"], after["audit"]) == (2, 1)
    assert not set(after["secrets"]) & set(before["secrets"])
    assert not set(after["digests"]) & set(before["digests"])
    assert rotation.retired_path(settings.key_path, 1).read_bytes() == old_key

    assert (await _alice_signs_in(tmp_path, clock, secret, codes[0])).generation == 2


async def test_killed_after_the_commit_serve_says_so_and_a_second_run_moves_the_files(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window between the database's commit and the new key file taking the old one's
    place: the process dies as it is about to replace the file (os.replace, outside the
    project, stands in for the kill)."""
    clock = FakeClock()
    settings, secret, codes = await _alice_with_2fa(tmp_path, clock)
    old_key = settings.key_path.read_bytes()

    def killed(*args: Any) -> None:
        raise SystemExit(137)

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(SystemExit):
        rotation.rotate(settings, clock.now(), "cli:test")
    monkeypatch.undo()
    staged = rotation.staged_path(settings.key_path)
    assert settings.key_path.read_bytes() == old_key
    assert staged.exists()

    served = run(env, "serve", "--db", str(settings.db_path), "--port", "0")
    assert served.returncode == 1
    assert "run 'tfa-server rotate-key' again to finish" in served.stderr

    finished = rotate_key(env, settings)
    assert finished.returncode == 0, finished.stderr
    assert "finished an interrupted rotation" in finished.stdout
    assert settings.key_path.read_bytes() != old_key
    assert not staged.exists()
    assert rotation.retired_path(settings.key_path, 1).read_bytes() == old_key
    assert (await _alice_signs_in(tmp_path, clock, secret, codes[0])).generation == 2


def test_rotate_key_refusals_are_one_line(env: dict[str, str], tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    missing = run(env, "rotate-key", "--db", str(settings.db_path))
    assert missing.returncode == 1
    assert "tfa-server init" in missing.stderr
    initialise(settings)
    core = open_core(settings)
    core.db.close()
    core.passwords.close()
    stranger = tmp_path / "other.key"
    stranger.write_bytes(os.urandom(32))
    refused = run(env, "rotate-key", "--db", str(settings.db_path), "--key-file", str(stranger))
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1
    assert "is not the key of" in refused.stderr
    assert stranger.with_name("other.key.new").exists() is False
