"""A full disk: the database capped with PRAGMA max_page_count on the server's own connection.

On SQLite only: the cap is a SQLite PRAGMA and the real full disk a SQLite file that may not
grow. (PostgreSQL's full disk is a `53` error class, which database.storage_unavailable maps
to the same 503.)

Writes that need space get 503 `service_unavailable` with a clear message and change nothing,
reads keep working, committed data stays, and writes work again once the cap is lifted.
"""

from __future__ import annotations

import asyncio
import resource
import signal
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tfa_server.crypto import token_digest
from tfa_server.storage.database import Connection, SqliteConnection

from ..conftest import (
    FAST_HASHING,
    PASSWORD,
    RunningServer,
    bearer,
    enable_totp,
    login,
    start_server,
)
from .figures import Figures, scaled
from .test_crashes import COMMAND, FAST, SERVING, clean_env, make_users
from .test_secrets import captured_log

GROUP = "Resource exhaustion"
NO_LIMIT = 1_073_741_823


async def cap(server: RunningServer, pages: int | None = None) -> int:
    """Cap the database at `pages` (default: its current size); returns the cap in force.

    The server has one connection, on one thread: the pragma set there holds for every request.
    """

    def _cap(conn: Connection) -> int:
        size = pages or int(conn.execute("PRAGMA page_count").fetchone()[0])
        return int(conn.execute(f"PRAGMA max_page_count = {size}").fetchone()[0])

    return await server.core.db.run(_cap)


async def snapshot(server: RunningServer) -> list[str]:
    def _dump(conn: Connection) -> list[str]:
        assert isinstance(conn, SqliteConnection)
        return list(conn.raw.iterdump())

    return await server.core.db.run(_dump)


def append_only(conn: Connection) -> dict[str, set[tuple[Any, ...]]]:
    """Rows that, once committed, never change: history, audit, accounts, 2FA."""
    queries = {
        "login_history": "SELECT * FROM login_history",
        "audit_log": "SELECT * FROM audit_log",
        "users": "SELECT id, username, password_hash, is_admin FROM users",
        "totp_secrets": "SELECT user_id, secret, enabled_at FROM totp_secrets",
        "recovery_codes": "SELECT id, user_id, digest FROM recovery_codes",
    }
    return {table: {tuple(row) for row in conn.execute(query)} for table, query in queries.items()}


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "service_unavailable"
    assert "cannot store data" in body["message"]
    assert "Nothing was changed" in body["message"]
    assert response.headers["Retry-After"] == "30"


@dataclass
class Full:
    server: RunningServer
    http: httpx.AsyncClient
    admin: str
    alice: str
    bob: str
    codes: list[str]
    bob_codes: list[str]
    challenges: list[str]
    committed: dict[str, set[tuple[Any, ...]]]
    filled: int
    log: list[str]

    async def post(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return await self.http.post(path, headers=bearer(token) if token else {}, **kw)

    async def refused(self, method: str, path: str, token: str | None, body: Any) -> bool:
        """True when refused with 503 and not a row changed; False when done in full."""
        before = await snapshot(self.server)
        headers = bearer(token) if token else {}
        response = await self.http.request(method, path, headers=headers, json=body)
        if response.status_code != 503:
            assert response.status_code < 300 or response.status_code == 409, response.text
            return False
        assert_unavailable(response)
        assert await snapshot(self.server) == before, f"a refused {method} {path} left changes"
        return True


@pytest.fixture
async def full(tmp_path: Path) -> AsyncIterator[Full]:
    """Three accounts (alice with 2FA), some history, then the database capped and filled."""
    with captured_log() as log:
        server = await start_server(tmp_path)
        try:
            await server.add_user("root", PASSWORD, admin=True)
            await server.add_user("alice")
            await server.add_user("bob")
            async with server.client() as http:
                admin = (await login(http, "root"))["token"]
                alice = (await login(http, "alice"))["token"]
                _, codes = await enable_totp(http, alice, server.clock)
                alice = await _recovery_sign_in(http, "alice", codes.pop())
                bob = (await login(http, "bob"))["token"]
                _, bob_codes = await enable_totp(http, bob, server.clock)
                bob = await _recovery_sign_in(http, "bob", bob_codes.pop())
                limit = server.settings.throttle.ip_max_failures
                challenges = [(await login(http, "alice"))["token"] for _ in range(limit + 1)]
                committed = await server.core.db.run(append_only)
                await cap(server)
                filled = 0
                while True:  # sign-ins until one needs a page the cap does not allow
                    response = await http.post(
                        "/api/v1/login", json={"username": "bob", "password": PASSWORD}
                    )
                    if response.status_code != 200:
                        assert_unavailable(response)
                        break
                    filled += 1
                    assert filled < 1000, "the cap never bit"
                yield Full(
                    server,
                    http,
                    admin,
                    alice,
                    bob,
                    codes,
                    bob_codes,
                    challenges,
                    committed,
                    filled,
                    log,
                )
        finally:
            await server.app.stop()


async def _recovery_sign_in(http: httpx.AsyncClient, name: str, code: str) -> str:
    challenge = (await login(http, name))["token"]
    done = await http.post("/api/v1/login/recovery", headers=bearer(challenge), json={"code": code})
    assert done.status_code == 200, done.text
    return str(done.json()["token"])


async def test_full_disk_is_503_then_recovers(full: Full, figures: Figures) -> None:
    rounds = scaled(40, 400)
    server, http, codes = full.server, full.http, full.codes
    refused = done = 0

    # Code-spending writes first, while every page is full: refused, the code is not spent.
    recovery_code, reauth_code = codes[0], full.bob_codes[0]
    assert await full.refused(
        "POST", "/api/v1/login/recovery", full.challenges[0], {"code": recovery_code}
    )
    # Regenerating deletes the old set before it writes, so it may fit in the freed space;
    # either way it is all or nothing.
    regenerated = not await full.refused(
        "POST", "/api/v1/me/recovery-codes", full.bob, {"password": PASSWORD, "code": reauth_code}
    )
    refused += 2 - regenerated

    writes: list[tuple[str, str, str | None, Any]] = [
        ("POST", "/api/v1/login", None, {"username": "bob", "password": PASSWORD}),
        ("POST", "/api/v1/login", None, {"username": "alice", "password": PASSWORD}),
        ("POST", "/api/v1/me/totp/setup", full.bob, None),
        ("POST", "/api/v1/admin/users", full.admin, {"username": "carol", "password": PASSWORD}),
        ("PUT", "/api/v1/admin/policy", full.admin, {"force_2fa": True, "grace_period_days": 3}),
        ("POST", "/api/v1/admin/users/alice/unlock", full.admin, None),
        ("POST", "/api/v1/logout", full.bob, None),
    ]
    refused_paths: set[str] = set()
    for number in range(rounds):
        method, path, token, body = writes[number % len(writes)]
        if await full.refused(method, path, token, body):
            refused += 1
            refused_paths.add(path)
        else:
            done += 1
        # Reads keep working, and so does the server.
        for token, read in (
            (None, "/healthz"),
            (full.alice, "/api/v1/me"),
            (full.alice, "/api/v1/me/history"),
            (full.alice, "/api/v1/me/sessions"),
            (full.admin, "/api/v1/admin/users"),
            (full.admin, "/api/v1/admin/history"),
        ):
            answer = await http.get(read, headers=bearer(token) if token else {})
            assert answer.status_code == 200, (read, answer.text)
    assert "/api/v1/login" in refused_paths

    # Committed data is intact: every row from before the cap is still there.
    now = await server.core.db.run(append_only)
    for table, rows in full.committed.items():
        if table == "recovery_codes" and regenerated:
            continue  # a regeneration that fitted replaced them, as it should
        assert rows <= now[table], f"committed {table} rows lost"

    # Space returns: writes work again at once, and the refused codes were not spent.
    assert await cap(server, NO_LIMIT) >= NO_LIMIT
    spent = await full.post(
        "/api/v1/login/recovery", full.challenges[1], json={"code": recovery_code}
    )
    assert spent.status_code == 200, spent.text
    if not regenerated:
        again = await full.post(
            "/api/v1/me/recovery-codes",
            full.bob,
            json={"password": PASSWORD, "code": reauth_code},
        )
        assert again.status_code == 200, again.text
    created = await full.post(
        "/api/v1/admin/users", full.admin, json={"username": "dave", "password": PASSWORD}
    )
    assert created.status_code == 201, created.text
    check = await server.core.db.run(
        lambda conn: conn.execute("PRAGMA integrity_check").fetchone()[0]
    )
    assert check == "ok"
    log = "\n".join(full.log)
    assert log.count("storage unavailable") >= refused
    assert "Traceback" not in log
    figures.record(
        GROUP,
        "Full disk: database capped at its size (PRAGMA max_page_count); sign-ins, recovery"
        " codes, regenerating codes, 2FA setup, logout, account creation, policy and unlock"
        " keep coming, with six kinds of read after each; then the cap lifted",
        rounds,
        f"{refused + 1} writes refused with 503 service_unavailable and Retry-After, each"
        f" leaving the database unchanged; {done} fitted in the remaining space; all"
        f" {rounds * 6} reads answered 200; no committed row lost; a refused recovery code"
        f" still valid afterwards; regenerating codes {'fitted' if regenerated else 'refused'}"
        " (all or nothing); writes work again at once when space returns",
    )


async def test_read_that_is_due_a_session_touch_still_works(full: Full, figures: Figures) -> None:
    """A session's last-seen time is written once a minute: a full disk must not turn the
    read it rides on into a 503."""
    full.server.clock.advance(full.server.settings.sessions.touch_interval + 1)
    me = await full.http.get("/api/v1/me", headers=bearer(full.alice))
    assert me.status_code == 200, me.text
    figures.record(
        GROUP,
        "Full disk: a read that is due its once-a-minute session touch",
        1,
        "answered 200 (the touch rewrites a row in place and needs no new page)",
    )


@pytest.mark.finding("F19")
async def test_refused_sign_ins_do_not_lock_out_the_address(full: Full, figures: Figures) -> None:
    """A sign-in refused for want of space is no failed guess, even with a wrong password: the
    server could not record it, so it must not count it either. Wrong passwords, so that each
    would count if the 503 did not stop it: more of them than the per-address limit, then space
    returns and the same address signs in (429 if they had counted)."""
    limit = full.server.settings.throttle.ip_max_failures
    wrong = {"username": "bob", "password": "not the password"}
    for _ in range(limit + 1):
        assert_unavailable(await full.post("/api/v1/login", json=wrong))
    await cap(full.server, NO_LIMIT)
    for name in ("alice", "bob"):  # another account, and the one the guesses named
        signed = await full.post("/api/v1/login", json={"username": name, "password": PASSWORD})
        assert signed.status_code == 200, signed.text
    figures.record(
        GROUP,
        "Full disk: more sign-ins with a wrong password refused with 503 than the per-address"
        " failure limit, then space returns",
        limit + 1,
        "all refused with 503; none counted as a failed guess: the next sign-ins from the same"
        " address, to another account and to the one guessed at, are answered, not 429",
    )


async def test_refused_codes_do_not_lock_out_the_address(full: Full, figures: Figures) -> None:
    """The same for the code step: refusals are not wrong codes."""
    for challenge in full.challenges[1:]:
        assert_unavailable(
            await full.post("/api/v1/login/recovery", challenge, json={"code": full.codes[0]})
        )
    await cap(full.server, NO_LIMIT)
    first = await login(full.http, "alice")
    done = await full.post("/api/v1/login/recovery", first["token"], json={"code": full.codes[0]})
    assert done.status_code == 200, done.text
    figures.record(
        GROUP,
        "Full disk: more recovery-code steps refused with 503 than the per-address failure"
        " limit, then space returns",
        len(full.challenges) - 1,
        "all refused with 503; the next code step from the same address is answered, not 429",
        fixed="each refused code step counted as a failed guess against the address, locking"
        " it out for 10 min → auth.py withdraws the failure when the transaction raises",
    )


# --- the real thing: the operating system refuses to grow the files ---------------------------


# An ignored signal stays ignored across exec: writes past the limit then fail with EFBIG
# instead of killing the server with SIGXFSZ. `exec` keeps the pid, so prlimit reaches it.
IGNORE_SIGXFSZ = ["/bin/sh", "-c", 'trap "" XFSZ; exec "$@"', "sh"]


async def test_os_write_errors_are_503_and_recover(tmp_path: Path, figures: Figures) -> None:
    """`tfa-server serve` as a subprocess whose files may not grow (RLIMIT_FSIZE, set from
    outside with prlimit): SQLite's writes fail in the middle of a commit, as on a full disk."""
    rounds = scaled(20, 200)
    db = tmp_path / "tfa.db"
    await make_users(db, {"erin": PASSWORD}, FAST_HASHING)
    lines: list[str] = []
    process = await asyncio.create_subprocess_exec(
        *IGNORE_SIGXFSZ,
        *COMMAND,
        "--db",
        str(db),
        "--port",
        "0",
        *FAST,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=clean_env(tmp_path),
    )

    async def _collect() -> None:
        assert process.stderr is not None
        async for raw in process.stderr:
            lines.append(raw.decode(errors="replace"))

    collector = asyncio.create_task(_collect())
    try:
        async with asyncio.timeout(30):
            while not (found := SERVING.search("".join(lines))):
                assert process.returncode is None, "".join(lines)
                await asyncio.sleep(0.02)
        url = f"http://127.0.0.1:{found.group(1)}"
        body = {"username": "erin", "password": PASSWORD}
        tokens: list[str] = []
        async with httpx.AsyncClient(base_url=url, timeout=15.0) as http:
            for _ in range(3):
                signed = await http.post("/api/v1/login", json=body)
                assert signed.status_code == 200, signed.text
                tokens.append(signed.json()["token"])
            files = [db, db.with_name(db.name + "-wal")]
            limit = max(path.stat().st_size for path in files) + 4096
            resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
            refused = 0
            for _ in range(rounds):
                signed = await http.post("/api/v1/login", json=body)
                if signed.status_code == 503:
                    assert_unavailable(signed)
                    refused += 1
                else:
                    assert signed.status_code == 200, signed.text
                    tokens.append(signed.json()["token"])
                me = await http.get("/api/v1/me", headers=bearer(tokens[0]))
                assert me.status_code == 200, me.text
            assert refused > 0, "the file size limit never bit"
            resource.prlimit(
                process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
            )
            signed = await http.post("/api/v1/login", json=body)
            assert signed.status_code == 200, signed.text
            tokens.append(signed.json()["token"])
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            assert await process.wait() == 0
        await collector
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        collector.cancel()
    log = "".join(lines)
    assert "Traceback" not in log
    assert log.count("storage unavailable") == refused
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {row[0] for row in conn.execute("SELECT token_digest FROM sessions")}
    finally:
        conn.close()
    assert {token_digest(token) for token in tokens} <= stored, "an answered sign-in was lost"
    figures.record(
        GROUP,
        "Full disk for real: `tfa-server serve` whose files may not grow (RLIMIT_FSIZE set"
        " with prlimit), so SQLite's WAL writes fail mid-commit; sign-ins and reads, then the"
        " limit lifted and the server stopped and reopened",
        rounds,
        f"{refused} sign-ins refused with 503, {rounds - refused} fitted, every read answered,"
        " writes work again when the limit goes, every answered sign-in is in the reopened"
        " database, integrity_check ok",
    )
