"""`tfa-server` with a postgresql:// URL: init, migrate, copy both ways, and the refusals."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tfa_server.app import initialise
from tfa_server.config import Settings, default_key_path
from tfa_server.demo_accounts import seed_demo_accounts
from tfa_server.storage import schema, schema_postgres
from tfa_server.storage.database import sqlite_statements

from . import postgres
from .conftest import (
    FakeClock,
    RunningServer,
    bearer,
    login,
    start_server,
    totp_code,
    user_with_2fa,
)
from .test_cli import FAST, assert_error, env, run

__all__ = ["env"]  # a fixture, used by name

COUNTS = re.compile(r"(\d+) (\w+)")


@pytest.fixture
def url() -> Iterator[str]:
    with postgres.server().database() as database:
        yield database


def test_a_url_needs_the_key_file_named(env: dict[str, str], url: str) -> None:
    assert_error(run(env, "init", "--db", url), 1, "--key-file", "TFA_KEY_FILE")


def test_init_creates_the_schema_once_and_guards_the_key(
    env: dict[str, str], url: str, tmp_path: Path
) -> None:
    key = tmp_path / "tfa.key"
    first = run(env, "init", "--db", url, "--key-file", str(key))
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("initialised: database postgresql://")
    assert key.stat().st_mode & 0o777 == 0o600
    again = run(env, "init", "--db", url, "--key-file", str(key))
    assert again.stdout.startswith("already initialised")
    added = run(
        env,
        "user",
        "add",
        "ann",
        "--password-stdin",
        "--db",
        url,
        "--key-file",
        str(key),
        *FAST,
        stdin="correct horse battery",
    )
    assert added.returncode == 0, added.stderr
    other = tmp_path / "other.key"
    assert_error(
        run(env, "init", "--db", url, "--key-file", str(other)), 1, "holds accounts", str(other)
    )
    assert not other.exists()


def test_other_schemes_and_unreachable_servers_are_one_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    key = ["--key-file", str(tmp_path / "k")]
    assert_error(run(env, "init", "--db", "mysql://db/tfa", *key), 1, "unsupported", "'mysql'")
    assert not (tmp_path / "mysql:").exists()
    port = postgres.free_port()
    refused = run(env, "init", "--db", f"postgresql://tfa:s3cret@127.0.0.1:{port}/tfa", *key)
    assert_error(refused, 1, "cannot connect to postgresql://tfa:***@127.0.0.1", "refused")
    assert "s3cret" not in refused.stderr


def _at_version(url: str, version: int) -> None:
    """A database left at an older schema version, as an older tfa-server left it."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE tfa_schema (version integer NOT NULL)")
        for script in schema_postgres.MIGRATIONS[:version]:
            conn.execute(script.encode())
        conn.execute(f"INSERT INTO tfa_schema VALUES ({version})".encode())  # noqa: S608 a number


def test_migrate_says_what_it_did(
    env: dict[str, str], url: str, tmp_path: Path, backend: str
) -> None:
    key = tmp_path / "tfa.key"
    if backend == "postgresql":
        _at_version(url, 3)
        database = url
        key.write_bytes(bytes(32))
        key.chmod(0o600)
    else:
        path = tmp_path / "old.db"
        import sqlite3

        conn = sqlite3.connect(path, isolation_level=None)
        for script in schema.MIGRATIONS[:3]:
            for statement in sqlite_statements(script):
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 3")
        conn.close()
        database = str(path)
        key = default_key_path(path)
        key.write_bytes(bytes(32))
        key.chmod(0o600)
    first = run(env, "migrate", "--db", database, "--key-file", str(key))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().endswith(f"schema version 3 -> {schema.LATEST}")
    again = run(env, "migrate", "--db", database, "--key-file", str(key))
    assert again.stdout.strip().endswith(f"is at schema version {schema.LATEST}; nothing to do")


def test_serve_refuses_a_newer_schema(env: dict[str, str], url: str, tmp_path: Path) -> None:
    key = tmp_path / "tfa.key"
    initialise(Settings(db_path=None, db_url=url, key_path=key))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE tfa_schema SET version = version + 1")
    newer = run(env, "serve", "--db", url, "--key-file", str(key), "--port", "0")
    assert_error(newer, 1, f"version {schema.LATEST + 1} is newer")


# --- copy -----------------------------------------------------------------------------------


async def _demo_installation(folder: Path, clock: FakeClock) -> tuple[Path, dict[str, Any]]:
    """The demo's accounts, and carol with 2FA, recovery codes, sessions and a service."""
    server = await start_server(folder, clock)
    try:
        secrets = await seed_demo_accounts(server.core)
        async with server.client() as client:
            secret, codes, _ = await user_with_2fa(server, client, "carol")
            carol = await login(client, "carol")
            spent = await client.post(
                "/api/v1/login/recovery", headers=bearer(carol["token"]), json={"code": codes[0]}
            )
            assert spent.status_code == 200, spent.text
            admin = (await login(client, "admin", "admin-demo"))["token"]
            await client.put(
                "/api/v1/admin/policy",
                headers=bearer(admin),
                json={"force_2fa": True, "grace_period_days": 7},
            )
            service = await client.post(
                "/api/v1/admin/services", headers=bearer(admin), json={"name": "sshd-web1"}
            )
            assert service.status_code == 201, service.text
    finally:
        await server.app.stop()
    assert server.settings.db_path is not None
    return server.settings.db_path, {"alice": secrets["alice"], "carol": secret, "codes": codes}


def _counts(stdout: str) -> dict[str, int]:
    return {table: int(number) for number, table in COUNTS.findall(stdout.split(":", 2)[-1])}


async def _signs_in(server: RunningServer, known: dict[str, Any], code: str, newcomer: str) -> None:
    async with server.client() as client:
        server.clock.advance(30)
        first = await login(client, "alice", "alice-demo")
        second = await client.post(
            "/api/v1/login/totp",
            headers=bearer(first["token"]),
            json={"code": totp_code(known["alice"], server.clock)},
        )
        assert second.status_code == 200, second.text
        carol = await login(client, "carol")
        recovered = await client.post(
            "/api/v1/login/recovery", headers=bearer(carol["token"]), json={"code": code}
        )
        assert recovered.status_code == 200, recovered.text
        spent = await client.post(
            "/api/v1/login/recovery",
            headers=bearer((await login(client, "carol"))["token"]),
            json={"code": known["codes"][0]},
        )
        assert spent.json()["error"] == "code_reused"  # spent before the copy, or on the way
        admin = (await login(client, "admin", "admin-demo"))["token"]
        policy = (await client.get("/api/v1/admin/policy", headers=bearer(admin))).json()
        assert (policy["force_2fa"], policy["grace_period_days"]) == (True, 7)
        history = await client.get(
            "/api/v1/admin/history", headers=bearer(admin), params={"username": "alice"}
        )
        reasons = [item["reason"] for item in history.json()["items"]]
        assert reasons.count("bad_password") == 2  # the demo's seeded failures came along
        created = await client.post(
            "/api/v1/admin/users",
            headers=bearer(admin),
            json={"username": newcomer, "password": "another good password"},
        )
        assert created.status_code == 201, created.text  # new ids follow the copied ones


async def test_copy_to_postgresql_and_back(env: dict[str, str], url: str, tmp_path: Path) -> None:
    """The demo installation to PostgreSQL: the same counts, then signing in there with a
    TOTP code and a recovery code; then back to a new SQLite file, and the same again."""
    clock = FakeClock()
    source, known = await _demo_installation(tmp_path / "sqlite", clock)
    codes = known["codes"]
    # Rotated before the copy: the key's generation and the retired recovery MAC key go too.
    assert run(env, "rotate-key", "--db", str(source)).returncode == 0
    copied = run(env, "copy", "--from", str(source), "--to", url)
    assert copied.returncode == 0, copied.stderr
    counts = _counts(copied.stdout)
    assert counts["users"] == 4
    assert counts["login_history"] > 4
    assert counts["audit_log"] > 4
    assert counts["recovery_codes"] == 20
    assert counts["services"] == 1
    assert counts["retired_recovery_keys"] == 1
    assert "same --key-file" in copied.stderr

    on_postgres = tmp_path / "postgres"
    on_postgres.mkdir()
    shutil.copy2(default_key_path(source), on_postgres / "tfa.key")
    server = await start_server(on_postgres, clock, db_url=url)
    try:
        await _signs_in(server, known, codes[1], "dave")
    finally:
        await server.app.stop()

    refused = run(env, "copy", "--from", str(source), "--to", url)
    assert_error(refused, 1, "is not empty", "users")

    back = tmp_path / "back" / "tfa.db"
    back.parent.mkdir()
    returned = run(env, "copy", "--from", url, "--to", str(back))
    assert returned.returncode == 0, returned.stderr
    assert _counts(returned.stdout)["users"] == 5
    assert back.stat().st_mode & 0o777 == 0o600
    shutil.copy2(default_key_path(source), default_key_path(back))
    server = await start_server(back.parent, clock)
    try:
        known["codes"] = [codes[1]]  # spent on PostgreSQL: still spent here
        await _signs_in(server, known, codes[2], "erin")
    finally:
        await server.app.stop()
