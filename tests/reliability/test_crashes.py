"""Crashes and shutdown: the real `tfa-server serve` killed with SIGKILL while clients work,
then restarted and checked against what the clients saw; SIGTERM with requests in flight.

On SQLite only: what they test is a SQLite file that a killed process was writing (its
integrity, its WAL, what reached it), read back with sqlite3 after each crash."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyotp

from tfa_server.admin import Actor, Admin
from tfa_server.app import initialise, open_core
from tfa_server.config import PasswordHashing, Settings, default_key_path
from tfa_server.crypto import ServerKeys, load_key_file, token_digest
from tfa_server.recovery import normalize

from ..conftest import FAST_HASHING
from .figures import Figures, scaled
from .test_secrets import assert_no_leaks, sqlite_text

GROUP = "Crashes and shutdown"
COMMAND = [sys.executable, "-m", "tfa_server", "serve"]
FAST = ["--argon2-memory-kib", "1024", "--argon2-time-cost", "1"]
SERVING = re.compile(r"serving on http://127\.0\.0\.1:(\d+)")
CLIENTS = 4


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TFA_")}
    env.update(HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "xdg"))
    return env


class ServerProcess:
    """`tfa-server serve` as a subprocess; every run appends to one log file."""

    def __init__(self, tmp_path: Path, db: Path, *extra: str) -> None:
        self.db = db
        self.env = clean_env(tmp_path)
        self.log = tmp_path / "server.log"
        self.args = ["--db", str(db), "--host", "127.0.0.1", "--port", "0", *extra]
        self.process: asyncio.subprocess.Process | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def proc(self) -> asyncio.subprocess.Process:
        assert self.process is not None
        return self.process

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    async def start(self) -> None:
        offset = len(self.output())
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *COMMAND,
                *self.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.env,
            )
        async with asyncio.timeout(30):
            while True:
                found = SERVING.search(self.output(), offset)
                if found:
                    self.port = int(found.group(1))
                    return
                assert self.proc.returncode is None, f"exited early:\n{self.output()[offset:]}"
                await asyncio.sleep(0.02)

    async def wait(self, seconds: float = 20.0) -> int:
        async with asyncio.timeout(seconds):
            return await self.proc.wait()

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def make_users(db: Path, names: dict[str, str], hashing: PasswordHashing) -> dict[str, int]:
    """Initialise the database and create the accounts in-process; returns their ids."""
    settings = Settings(db_path=db, key_path=default_key_path(db), passwords=hashing)
    initialise(settings)
    core = open_core(settings)
    admin = Admin(core)
    ids: dict[str, int] = {}
    try:
        for name, password in names.items():
            await admin.create_user(Actor("test", None), name, password, name == "admin")
        for name in names:
            row = await core.db.run(
                lambda conn, name=name: conn.execute(  # type: ignore[misc]
                    "SELECT id FROM users WHERE username = $1", (name,)
                ).fetchone()
            )
            ids[name] = int(row[0])
    finally:
        core.passwords.close()
        core.db.close()
    return ids


# --- the SIGKILL rounds -----------------------------------------------------------------------


class Killed(Exception):
    """The server went away under this client: its request in flight has an unknown outcome."""


@dataclass
class Client:
    """One person doing real work, and the ledger of every request they saw succeed."""

    name: str
    user_id: int
    password: str
    serial: int = 0
    totp_on: bool = False
    codes: list[str] = field(default_factory=list)  # the current set, as the server showed it
    spent: set[str] = field(default_factory=set)
    acknowledged: list[tuple[str, str]] = field(default_factory=list)  # (User-Agent, event)
    in_flight: tuple[str, str | None] | None = None  # (what, recovery code) when killed
    secrets: list[str] = field(default_factory=list)  # everything that must never leak
    done: int = 0
    worked: asyncio.Event | None = None  # set at each acknowledged request

    def next_code(self) -> str:
        return next(code for code in self.codes if code not in self.spent)

    async def call(
        self,
        http: httpx.AsyncClient,
        what: str,
        method: str,
        path: str,
        expect: int,
        *,
        token: str | None = None,
        body: dict[str, Any] | None = None,
        code: str | None = None,
        event: str | None = None,
        killed: asyncio.Event,
    ) -> dict[str, Any]:
        self.serial += 1
        agent = f"crash/{self.name}/{self.serial}"
        headers = {"User-Agent": agent}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.in_flight = (what, code)
        try:
            response = await http.request(method, path, headers=headers, json=body)
        except httpx.TransportError as exc:
            if killed.is_set():
                raise Killed from exc
            raise AssertionError(f"{self.name}: {what} failed with the server up: {exc!r}") from exc
        self.in_flight = None
        assert response.status_code == expect, (self.name, what, response.text)
        if event is not None:
            self.acknowledged.append((agent, event))
        self.done += 1
        if self.worked is not None:
            self.worked.set()
        result: dict[str, Any] = response.json() if response.content else {}
        if "token" in result:
            self.secrets.append(result["token"])
        return result

    async def run(self, base_url: str, killed: asyncio.Event) -> None:
        """Sign in, set up 2FA, use recovery codes, regenerate them, disconnect; forever."""
        async with httpx.AsyncClient(base_url=base_url, timeout=15.0) as http:
            try:
                while True:
                    await self._cycle(http, killed)
            except Killed:
                return

    async def _sign_in(self, http: httpx.AsyncClient, killed: asyncio.Event) -> str:
        first = await self.call(
            http,
            "login",
            "POST",
            "/api/v1/login",
            200,
            body={"username": self.name, "password": self.password},
            event="password",
            killed=killed,
        )
        if not self.totp_on:
            assert first["status"] == "authenticated", first
            return str(first["token"])
        assert first["status"] == "totp_required", first
        code = self.next_code()
        second = await self.call(
            http,
            "recovery",
            "POST",
            "/api/v1/login/recovery",
            200,
            token=first["token"],
            body={"code": code},
            code=code,
            event="second_factor",
            killed=killed,
        )
        self.spent.add(code)
        left = len([c for c in self.codes if c not in self.spent])
        assert second["recovery_codes_left"] == left, (self.name, second, left)
        return str(second["token"])

    async def _reauthenticated(
        self, http: httpx.AsyncClient, killed: asyncio.Event, what: str, method: str, path: str
    ) -> dict[str, Any]:
        token = await self._sign_in(http, killed)
        code = self.next_code()
        event = "recovery_codes_regenerated" if what == "regenerate" else "totp_disabled"
        result = await self.call(
            http,
            what,
            method,
            path,
            200,
            token=token,
            body={"password": self.password, "code": code},
            code=code,
            event=event,
            killed=killed,
        )
        self.spent.add(code)
        return result

    async def _cycle(self, http: httpx.AsyncClient, killed: asyncio.Event) -> None:
        if not self.totp_on:
            token = await self._sign_in(http, killed)
            setup = await self.call(
                http, "setup", "POST", "/api/v1/me/totp/setup", 200, token=token, killed=killed
            )
            secret = setup["secret"]
            self.secrets.append(secret)
            confirmed = await self.call(
                http,
                "confirm",
                "POST",
                "/api/v1/me/totp/confirm",
                200,
                token=token,
                body={"code": pyotp.TOTP(secret).now()},
                event="totp_enabled",
                killed=killed,
            )
            self.totp_on, self.codes, self.spent = True, confirmed["recovery_codes"], set()
            self.secrets.extend(self.codes)
        for _ in range(2):
            await self._sign_in(http, killed)
        fresh = await self._reauthenticated(
            http, killed, "regenerate", "POST", "/api/v1/me/recovery-codes"
        )
        self.codes, self.spent = fresh["recovery_codes"], set()
        self.secrets.extend(self.codes)
        token = await self._sign_in(http, killed)
        await self.call(
            http,
            "logout",
            "POST",
            "/api/v1/logout",
            204,
            token=token,
            event="logout",
            killed=killed,
        )
        await self._reauthenticated(http, killed, "disable", "DELETE", "/api/v1/me/totp")
        self.totp_on, self.codes, self.spent = False, [], set()

    # --- after the crash ----------------------------------------------------------------------

    def reconcile(
        self, conn: sqlite3.Connection, keys: ServerKeys, seen: set[tuple[str, str]]
    ) -> bool:
        """Check the database against the ledger; True when the 2FA state is now unknown
        (a confirm or regenerate whose answer never arrived did land), so it needs a reset."""
        for agent, event in self.acknowledged:
            assert (agent, event) in seen, f"{self.name}: acknowledged {event} ({agent}) is lost"
        totp = conn.execute(
            "SELECT 1 FROM totp_secrets WHERE user_id = ?", (self.user_id,)
        ).fetchone()
        rows = dict(
            conn.execute(
                "SELECT digest, used_at FROM recovery_codes WHERE user_id = ?", (self.user_id,)
            ).fetchall()
        )
        on = totp is not None
        # Nothing half-written: 2FA is on with a full set of codes, or off with none.
        assert len(rows) == (10 if on else 0), (self.name, on, len(rows))
        what, pending_code = self.in_flight or ("", None)
        self.in_flight = None
        if on != self.totp_on:
            # Only a request whose answer was lost may have changed the state.
            assert what in ("confirm", "disable"), (self.name, what, on, self.totp_on)
            if what == "disable":
                self.totp_on, self.codes, self.spent = False, [], set()
                return False
            assert all(used is None for used in rows.values())
            return True
        if not on:
            return False
        digests = {
            keys.recovery_code_digest(normalize(code) or "", self.user_id): code
            for code in self.codes
        }
        if set(digests) != set(rows):
            # A regenerate that landed unseen: a new set nobody knows.
            assert what == "regenerate", (self.name, what)
            assert not set(digests) & set(rows)
            assert all(used is None for used in rows.values())
            return True
        for digest, code in digests.items():
            used = rows[digest] is not None
            if code in self.spent:
                assert used, f"{self.name}: spent recovery code is usable again after the crash"
            elif code == pending_code:
                if used:
                    self.spent.add(code)
            else:
                assert not used, f"{self.name}: a code nobody used is spent"
        return False


def check_database(db: Path) -> tuple[str, set[tuple[str, str]]]:
    conn = sqlite3.connect(db)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        query = (
            "SELECT client, event FROM login_history WHERE success = 1 AND client LIKE 'crash/%'"
        )
        seen = {(row[0], row[1]) for row in conn.execute(query)}
    finally:
        conn.close()
    return integrity, seen


async def test_sigkill_during_work_loses_nothing_acknowledged(
    tmp_path: Path, figures: Figures
) -> None:
    rounds = scaled(3, 20)
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    db = tmp_path / "tfa.db"
    passwords = {"admin": f"admin-{os.urandom(8).hex()}"}
    passwords.update({f"crash{i}": f"pass-{i}-{os.urandom(8).hex()}" for i in range(CLIENTS)})
    ids = await make_users(db, passwords, FAST_HASHING)
    keys = ServerKeys(load_key_file(default_key_path(db)))
    clients = [
        Client(name, ids[name], password) for name, password in passwords.items() if name != "admin"
    ]
    server = ServerProcess(tmp_path, db, *FAST)
    worked = asyncio.Event()
    for client in clients:
        client.worked = worked
    landed_unseen = 0
    try:
        for number in range(rounds):
            await server.start()
            killed = asyncio.Event()
            before = sum(client.done for client in clients)
            worked.clear()
            tasks = [asyncio.create_task(client.run(server.url, killed)) for client in clients]
            # Some work acknowledged first (a loaded machine may take a while to start), then
            # the kill at a random moment of the work that follows.
            async with asyncio.timeout(20):
                await worked.wait()
            await asyncio.sleep(rng.uniform(0.0, 1.2))
            killed.set()
            await server.kill()
            async with asyncio.timeout(20):
                await asyncio.gather(*tasks)
            assert sum(client.done for client in clients) > before, f"round {number}: no work"

            integrity, seen = check_database(db)
            assert integrity == "ok", (seed, number, integrity)
            conn = sqlite3.connect(db)
            try:
                unknown = [client for client in clients if client.reconcile(conn, keys, seen)]
            finally:
                conn.close()
            landed_unseen += len(unknown)

            # The restarted server agrees, and resets whatever state nobody saw.
            await server.start()
            async with httpx.AsyncClient(base_url=server.url, timeout=15.0) as http:
                signed = await http.post(
                    "/api/v1/login", json={"username": "admin", "password": passwords["admin"]}
                )
                assert signed.status_code == 200, signed.text
                admin = {"Authorization": f"Bearer {signed.json()['token']}"}
                listed = await http.get("/api/v1/admin/users", headers=admin)
                states = {item["username"]: item["totp_enabled"] for item in listed.json()["items"]}
                for client in clients:
                    if client in unknown:
                        assert states[client.name], client.name
                        reset = await http.post(
                            f"/api/v1/admin/users/{client.name}/reset-2fa", headers=admin
                        )
                        assert reset.status_code == 200, reset.text
                        client.totp_on, client.codes, client.spent = False, [], set()
                    else:
                        assert states[client.name] == client.totp_on, (seed, client.name)
            server.proc.send_signal(signal.SIGTERM)
            assert await server.wait() == 0
    finally:
        await server.kill()

    acknowledged = sum(client.done for client in clients)
    log = server.output()
    assert "Traceback" not in log
    assert_no_leaks(
        sqlite_text(db),
        log,
        [*passwords.values(), *(secret for client in clients for secret in client.secrets)],
    )
    figures.record(
        GROUP,
        f"SIGKILL at a random moment while {CLIENTS} clients sign in, set up 2FA, spend and"
        " regenerate recovery codes and disconnect; restart and compare with what each"
        " client saw succeed",
        rounds,
        f"{acknowledged:,} acknowledged requests, none lost; integrity_check ok every time;"
        " 2FA never half-written; requests cut off before their answer that had landed all the"
        f" same: {landed_unseen} (allowed)",
    )


# --- SIGTERM with requests in flight ------------------------------------------------------------


async def _raw_login(port: int, body: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /api/v1/login HTTP/1.1\r\nHost: tfa\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    await writer.drain()
    return reader, writer


async def _read_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    async with asyncio.timeout(20):
        raw = await reader.read()  # until the server closes
    writer.close()
    await writer.wait_closed()
    return raw


async def test_sigterm_with_requests_in_flight_answers_all(
    tmp_path: Path, figures: Figures
) -> None:
    """Sign-ins with the production Argon2id cost take a while: SIGTERM lands mid-way."""
    rounds, in_flight = scaled(1, 5), 20
    password = f"sigterm-{os.urandom(8).hex()}"
    db = tmp_path / "tfa.db"
    ids = await make_users(db, {"sigterm": password}, PasswordHashing())
    body = json.dumps({"username": "sigterm", "password": password}).encode()
    server = ServerProcess(tmp_path, db)
    pending_at_signal = []
    tokens: list[str] = []
    try:
        for _ in range(rounds):
            await server.start()
            connections = [await _raw_login(server.port, body) for _ in range(in_flight)]
            answers = [asyncio.create_task(_read_answer(*pair)) for pair in connections]
            # The first answer shows the server has taken them all in and is hashing; the
            # rest are still in flight when the signal lands.
            await asyncio.wait(answers, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            pending_at_signal.append(sum(not answer.done() for answer in answers))
            server.proc.send_signal(signal.SIGTERM)
            results = await asyncio.gather(*answers)
            assert await server.wait() == 0, server.output()[-2000:]
            for raw in results:
                head, _, payload = raw.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200 "), raw[:200]
                length = re.search(rb"(?i)content-length: (\d+)", head)
                assert length is not None, raw
                assert int(length.group(1)) == len(payload), raw
                answer = json.loads(payload)
                assert answer["status"] == "authenticated"
                tokens.append(answer["token"])
    finally:
        await server.kill()
    assert min(pending_at_signal) >= 1, f"nothing was in flight at SIGTERM: {pending_at_signal}"

    # Every answered sign-in was committed before its answer went out.
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {
            row[0]
            for row in conn.execute(
                "SELECT token_digest FROM sessions WHERE user_id = ?", (ids["sigterm"],)
            )
        }
    finally:
        conn.close()
    assert {token_digest(token) for token in tokens} <= stored
    log = server.output()
    assert "Traceback" not in log
    assert log.count("POST /api/v1/login 200") == rounds * in_flight
    assert_no_leaks(sqlite_text(db), log, [password, *tokens])
    figures.record(
        GROUP,
        f"SIGTERM with {in_flight} sign-ins (production Argon2id cost) in flight",
        rounds * in_flight,
        f"all {rounds * in_flight} answered 200 in full ({sum(pending_at_signal)} still"
        " running when the signal landed), sessions committed, exit code 0 every time",
    )
