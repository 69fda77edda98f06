"""Secrets stay secret: after a realistic run, neither the database (every row of every table
on either backend; on SQLite also the file's raw pages and WAL) nor the server's log output
holds a TOTP secret, recovery code, session token or password."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tfa_server.recovery import format_code

from .. import stored
from ..conftest import FakeClock, RunningServer, bearer, start_server, totp_code
from .figures import Figures, on_backend, scaled

GROUP = "Secrets stay secret"
CLIENT_SIDE = ("httpx", "httpcore")  # the tests' own HTTP client, not the server
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # what `serve` configures


def _forms(secret: str) -> set[str]:
    """The ways a secret could show up: as given, without or with dashes, in either case."""
    bare = secret.replace("-", "")
    forms = {secret, bare, format_code(bare)}
    return forms | {form.lower() for form in forms} | {form.upper() for form in forms}


async def database_text(server: RunningServer) -> tuple[bytes, str]:
    """What the database holds, while the server still runs: every value's bytes (and on
    SQLite the file, its WAL and shared memory as they lie on disk), then every row as text."""
    dump, values = await server.core.db.run(stored.stored)
    return values + stored.sqlite_file_bytes(server.settings), dump


def sqlite_text(db: Path) -> tuple[bytes, str]:
    """The same for a SQLite file no server has open (the process tests'): its raw bytes
    with WAL and shared memory, then a plain SQL dump."""
    raw = b"".join(
        path.read_bytes()
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"))
        if path.exists()
    )
    conn = sqlite3.connect(db)
    try:
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    return raw, dump


def leaks(raw: bytes, dump: str, log: str, secrets: Iterable[str]) -> list[str]:
    found = []
    for secret in set(secrets):
        for form in _forms(secret):
            for where, text in (("database dump", dump), ("log", log)):
                if form in text:
                    found.append(f"{secret!r} in the {where}")
            if form.encode() in raw:
                found.append(f"{secret!r} in the database's bytes")
    return found


def assert_no_leaks(database: tuple[bytes, str], log: str, secrets: Iterable[str]) -> int:
    """Fails listing every secret found; returns how many distinct secrets were looked for."""
    wanted = [secret for secret in set(secrets) if secret]
    assert len(wanted) > 0
    found = leaks(*database, log, wanted)
    assert not found, "\n".join(sorted(set(found)))
    return len(wanted)


@contextmanager
def captured_log() -> Iterator[list[str]]:
    """What the server logs (DEBUG and up, tracebacks included), formatted as `serve` does."""
    lines: list[str] = []
    formatter = logging.Formatter(LOG_FORMAT)

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if not record.name.startswith(CLIENT_SIDE):
                lines.append(formatter.format(record))

    root = logging.getLogger()
    handler, level = Keep(logging.DEBUG), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


class Person:
    def __init__(self, http: httpx.AsyncClient, clock: FakeClock, name: str, password: str):
        self.http, self.clock, self.name, self.password = http, clock, name, password
        self.secret = ""
        self.codes: list[str] = []
        self.seen: list[str] = [password]

    async def post(self, path: str, expect: int, token: str | None = None, **kw: Any) -> Any:
        headers = bearer(token) if token else {}
        response = await self.http.post(path, headers=headers, **kw)
        assert response.status_code == expect, (path, response.text)
        body = response.json() if response.content else {}
        if isinstance(body, dict) and "token" in body:
            self.seen.append(body["token"])
        return body

    async def password_step(self, password: str | None = None) -> Any:
        return await self.post(
            "/api/v1/login",
            200,
            json={"username": self.name, "password": password or self.password},
        )

    def code(self) -> str:
        self.clock.advance(30)  # a fresh step: codes are single-use
        return totp_code(self.secret, self.clock)

    async def enable(self, token: str) -> None:
        setup = await self.post("/api/v1/me/totp/setup", 200, token)
        self.secret = setup["secret"]
        self.seen.append(self.secret)
        confirmed = await self.post(
            "/api/v1/me/totp/confirm", 200, token, json={"code": self.code()}
        )
        self.codes = confirmed["recovery_codes"]
        self.seen.extend(self.codes)

    async def sign_in(self, recovery: bool = False) -> str:
        challenge = (await self.password_step())["token"]
        if recovery:
            code = self.codes.pop()
            done = await self.post("/api/v1/login/recovery", 200, challenge, json={"code": code})
        else:
            done = await self.post("/api/v1/login/totp", 200, challenge, json={"code": self.code()})
        return str(done["token"])


async def test_no_secret_in_database_or_log(
    tmp_path: Path, database_url: str | None, figures: Figures
) -> None:
    people_count = scaled(3, 12)
    with captured_log() as lines:
        server = await start_server(tmp_path, db_url=database_url)
        try:
            admin_password = "root-secret-password-4711"
            await server.add_user("root", admin_password, admin=True)
            async with server.client() as http:
                root = Person(http, server.clock, "root", admin_password)
                admin = (await root.password_step())["token"]
                people = []
                for number in range(people_count):
                    person = Person(http, server.clock, f"person{number}", f"pw-{number}-Zq9!xv")
                    await person.post(
                        "/api/v1/admin/users",
                        201,
                        admin,
                        json={"username": person.name, "password": person.password},
                    )
                    people.append(person)
                for person in people:
                    first = (await person.password_step())["token"]
                    await person.enable(first)
                    await person.post("/api/v1/logout", 204, first)
                    # Wrong guesses are secrets too: a mistyped password is nearly the real one.
                    typo = person.password + "x"
                    person.seen.append(typo)
                    await person.post(
                        "/api/v1/login",
                        401,
                        json={"username": person.name, "password": typo},
                    )
                    token = await person.sign_in()
                    wrong_code = person.codes[-1][::-1]
                    person.seen.append(wrong_code)
                    challenge = (await person.password_step())["token"]
                    await person.post(
                        "/api/v1/login/recovery", 401, challenge, json={"code": wrong_code}
                    )
                    await person.post(
                        "/api/v1/login/recovery",
                        200,
                        challenge,
                        json={"code": person.codes.pop()},
                    )
                    # A body that fails validation still carries the password.
                    await person.post(
                        "/api/v1/login",
                        400,
                        json={"username": person.name, "password": person.password, "x": 1},
                    )
                    fresh = await person.post(
                        "/api/v1/me/recovery-codes",
                        200,
                        token,
                        json={"password": person.password, "code": person.code()},
                    )
                    person.codes = fresh["recovery_codes"]
                    person.seen.extend(person.codes)
                    token = await person.sign_in(recovery=True)
                    for path in ("/api/v1/me", "/api/v1/me/history", "/api/v1/me/sessions"):
                        assert (await http.get(path, headers=bearer(token))).status_code == 200
                    await person.post("/api/v1/logout", 204, token)
                # Disconnect and start over (a setup left pending), and an admin reset.
                half = people[0]
                token = await half.sign_in()
                gone = await http.request(
                    "DELETE",
                    "/api/v1/me/totp",
                    headers=bearer(token),
                    json={"password": half.password, "code": half.code()},
                )
                assert gone.status_code == 200, gone.text
                pending = await half.post("/api/v1/me/totp/setup", 200, token)
                half.seen.append(pending["secret"])
                reset = people[-1]
                await reset.post(f"/api/v1/admin/users/{reset.name}/reset-2fa", 200, admin)
                # The lifecycle: a temporary password set by the administrator, replaced at
                # the next sign-in, then changed again by its owner with a code.
                temporary, chosen, changed = "tmp-Qx7-secret", "chosen-Wk3-secret", "again-J9v"
                reset.seen.extend([temporary, chosen, changed])
                await reset.post(
                    f"/api/v1/admin/users/{reset.name}/password",
                    200,
                    admin,
                    json={"password": temporary},
                )
                restricted = (await reset.password_step(temporary))["token"]
                done = await reset.post(
                    "/api/v1/me/password",
                    200,
                    restricted,
                    json={"current_password": temporary, "new_password": chosen},
                )
                await reset.post(
                    "/api/v1/me/password",
                    204,
                    done["token"],
                    json={"current_password": chosen, "new_password": changed},
                )
                await root.post("/api/v1/logout", 204, admin)
            database = await database_text(server)
        finally:
            await server.app.stop()
    log = "\n".join(lines)
    assert "POST /api/v1/login/recovery 200" in log, "the access log was not captured"
    secrets = [secret for person in [root, *people] for secret in person.seen]
    looked_for = assert_no_leaks(database, log, secrets)
    figures.record(
        GROUP,
        f"{people_count} people and an administrator: accounts created over the API, 2FA set up,"
        " sign-ins with codes and recovery codes, wrong guesses, regenerated codes, a pending"
        " setup, disconnect, admin resets of 2FA and of the password, password changes; then"
        " the database (every row of every table; on SQLite the raw file and WAL too) and"
        " the DEBUG log searched for every secret" + on_backend(database_url),
        looked_for,
        f"none of {looked_for} secrets (TOTP secrets in base32, recovery codes, session tokens,"
        " passwords, wrong guesses) found in the database or in"
        f" {len(lines)} log lines",
    )


# What a hostile or broken client might put on the wire, with secrets inside: a query string,
# bad header lines, bad request lines, bytes that are neither ASCII nor UTF-8.
HOSTILE_REQUESTS = (
    b"GET /x?password=hunter2secret HTTP/1.1\r\nHost: t\r\nX-Api-Key hdrsecret\r\n\r\n",
    b"GET /x?token=linesecret HTTP/1.1 extra\r\nHost: t\r\n\r\n",
    b"GET /a spacesecret HTTP/1.1\r\nHost: t\r\n\r\n",
    b"G\xffT /\xfe?code=bytesecret HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer nul\x00nulsecret\r\n\r\n",
    b"GET / HTTP/1.1\r\n foldsecret\r\nHost: t\r\n\r\n",
    b"GET /?k=versionsecret HTTP/9.9\r\nHost: t\r\n\r\n",
    b"POST /?k=lengthsecret HTTP/1.1\r\nHost: t\r\nContent-Length: x1\r\n\r\n",
)
HOSTILE_SECRETS = (
    "hunter2secret",
    "hdrsecret",
    "linesecret",
    "spacesecret",
    "bytesecret",
    "nulsecret",
    "foldsecret",
    "versionsecret",
    "lengthsecret",
)


def record_text(record: logging.LogRecord) -> str:
    """Everything a handler could write for a record: message, raw args, traceback."""
    formatted = logging.Formatter(LOG_FORMAT).format(record)
    return "\n".join((formatted, str(record.msg), repr(record.args)))


@pytest.mark.finding("F11")
async def test_no_request_bytes_in_the_log_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, figures: Figures
) -> None:
    caplog.set_level(logging.DEBUG)
    server = await start_server(tmp_path)
    try:
        for raw in HOSTILE_REQUESTS:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.app.port)
            writer.write(raw)
            writer.write_eof()  # nothing more is coming: the server closes without lingering
            async with asyncio.timeout(5):
                answer = await reader.read()  # an error response, then the server closes
            writer.close()
            await writer.wait_closed()
            assert answer.startswith(b"HTTP/1.1 4") or answer.startswith(b"HTTP/1.1 5"), answer
    finally:
        await server.app.stop()
    records = [r for r in caplog.records if not r.name.startswith(CLIENT_SIDE)]
    debug = [r for r in records if r.levelno == logging.DEBUG and r.name.startswith("tfa_server")]
    assert debug, "the server logged nothing at DEBUG: the test would see no leak"
    text = "\n".join(record_text(r) for r in records)
    on_the_wire = b"".join(HOSTILE_REQUESTS)
    assert all(secret.encode() in on_the_wire for secret in HOSTILE_SECRETS)
    found = [secret for secret in HOSTILE_SECRETS if secret in text]
    assert not found, text
    figures.record(
        GROUP,
        f"{len(HOSTILE_REQUESTS)} malformed requests with a secret in the query string, a bad"
        " header line, a bad request line or bytes that are not text, at log level DEBUG",
        len(HOSTILE_REQUESTS),
        f"each got its error response; none of the {len(HOSTILE_SECRETS)} secrets in"
        f" {len(records)} log records"
        " (message, arguments or traceback)",
    )
