"""Fixtures: the real server on 127.0.0.1, port 0, with a temporary database and a fake clock.

The `server` fixture runs each test on both backends: a SQLite file, and a fresh database on
the suite's own PostgreSQL (tests/postgres.py). The client's tests (tests/tui) use SQLite only:
what they test does not depend on where the server keeps its rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from tfa_server.admin import Actor, Admin
from tfa_server.app import Application, initialise, open_core
from tfa_server.config import PasswordHashing, Settings, default_key_path
from tfa_server.http.server import HttpLimits
from tfa_server.openapi import document as openapi_document
from tfa_server.storage.database import (
    Connection,
    PostgresConnection,
    SqliteConnection,
    connect_sqlite,
    named_rows,
)

from . import postgres
from .contract import Contract

# 2026-11-28 12:00:00 UTC, on a 30 s step boundary, so tests know where in a step they are.
START = 1_795_867_200.0
# Cheap hashing for the suite; one test checks the production defaults separately.
FAST_HASHING = PasswordHashing(memory_kib=1024, time_cost=1, parallelism=1)
PASSWORD = "correct horse battery"


class FakeClock:
    """The server's clock in tests: TOTP steps, throttling and expiry move only when told."""

    def __init__(self, start: float = START) -> None:
        self.value = start

    def now(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


@dataclass
class RunningServer:
    app: Application
    clock: FakeClock
    settings: Settings
    base_url: str
    contract: Contract

    @property
    def core(self) -> Any:
        return self.app.core

    async def add_user(self, name: str, password: str = PASSWORD, *, admin: bool = False) -> None:
        await Admin(self.app.core).create_user(Actor("test", None), name, password, admin)

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An HTTP client whose every response is checked against the OpenAPI document."""

        async def _check(response: httpx.Response) -> None:
            await response.aread()
            self.contract.check(response)

        return httpx.AsyncClient(
            base_url=self.base_url,
            timeout=10.0,
            headers={"User-Agent": "tfa-tests/1.0"},
            event_hooks={"response": [_check]},
            **kwargs,
        )


def make_settings(folder: Path, db_url: str | None = None, **overrides: Any) -> Settings:
    """A SQLite file in `folder`, or the PostgreSQL database at `db_url` (the key file stays
    in `folder`: every instance of one installation reads the same key)."""
    overrides.setdefault("passwords", FAST_HASHING)
    if db_url is not None:
        return Settings(db_path=None, key_path=folder / "tfa.key", db_url=db_url, **overrides)
    db = folder / "tfa.db"
    return Settings(db_path=db, key_path=default_key_path(db), **overrides)


BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each test that takes `backend` (directly or through `server`, `database_url`, ...)
    runs on both, unless marked `sqlite_only`."""
    if "backend" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sqlite_only")
        metafunc.parametrize("backend", ["sqlite"] if only else BACKENDS, indirect=True)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend: str) -> Iterator[str | None]:
    """None for SQLite (a file in the test's folder); a fresh PostgreSQL database's URL, its
    schema in place (a server would make it; copied from a template, it costs less)."""
    if backend == "sqlite":
        yield None
        return
    with postgres.server().database(migrated=True) as url:
        yield url


@pytest.fixture
def empty_database_url(backend: str) -> Iterator[str | None]:
    """As `database_url`, without the schema: for tests of the migrations themselves."""
    if backend == "sqlite":
        yield None
        return
    with postgres.server().database() as url:
        yield url


# A test runs on both backends when it takes `backend`, through `server`, `database_url`
# (for a server with settings of its own: start_server(..., db_url=database_url)),
# `connection` or `open_connection`. One that takes them but is about SQLite itself (PRAGMAs,
# its query planner, the file's bytes) says `@sqlite_only`, which narrows `backend` to
# "sqlite", with the reason beside it. Tests of a SQLite file by nature (a killed writer, a
# full disk: see their docstrings; the CLI's files, with tests/test_cli_postgres.py for
# PostgreSQL) take none of them.
sqlite_only = pytest.mark.sqlite_only


@pytest.fixture
def open_connection(
    tmp_path: Path, empty_database_url: str | None
) -> Iterator[Callable[[], Connection]]:
    """Opens connections to one fresh, empty database of the test's backend (no schema yet),
    as the server opens them; each connection is another client, as a second instance is.
    All are closed afterwards."""
    opened: list[SqliteConnection | PostgresConnection] = []

    def _open() -> Connection:
        connection: SqliteConnection | PostgresConnection
        if empty_database_url is None:
            connection = SqliteConnection(connect_sqlite(tmp_path / "storage.db"))
        else:
            import psycopg

            connection = PostgresConnection(
                psycopg.connect(
                    empty_database_url,
                    autocommit=True,
                    cursor_factory=psycopg.RawCursor,
                    row_factory=named_rows,
                )
            )
        opened.append(connection)
        return connection

    yield _open
    for connection in opened:
        connection.raw.close()


@pytest.fixture
def connection(open_connection: Callable[[], Connection]) -> Connection:
    """One connection to a fresh, empty database of the test's backend."""
    return open_connection()


async def start_server(
    folder: Path,
    clock: FakeClock | None = None,
    limits: HttpLimits | None = None,
    db_url: str | None = None,
    metrics_at: tuple[str, int] | None = None,
    **overrides: Any,
) -> RunningServer:
    settings = make_settings(folder, db_url, **overrides)
    initialise(settings)
    clock = clock or FakeClock()
    app = Application(open_core(settings, clock), limits=limits, metrics_at=metrics_at)
    await app.start("127.0.0.1", 0)
    contract = Contract(openapi_document(app.api.routes))
    return RunningServer(app, clock, settings, f"http://127.0.0.1:{app.port}", contract)


@pytest.fixture
async def server(tmp_path: Path, database_url: str | None) -> AsyncIterator[RunningServer]:
    running = await start_server(tmp_path, db_url=database_url)
    yield running
    await running.app.stop()


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with server.client() as http:
        yield http


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The documented error shape with this status and code; the body, for its message."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"] == code
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def totp_code(secret: str, clock: FakeClock, offset_steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(clock.now() + offset_steps * 30)


async def login(client: httpx.AsyncClient, name: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post("/api/v1/login", json={"username": name, "password": password})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def enable_totp(
    client: httpx.AsyncClient, token: str, clock: FakeClock
) -> tuple[str, list[str]]:
    """Set up and confirm TOTP as an authenticator app would; returns (secret, recovery codes).

    Moves the clock one step on, so the confirming code is not reused by the caller's next
    sign-in.
    """
    setup = await client.post("/api/v1/me/totp/setup", headers=bearer(token))
    assert setup.status_code == 200, setup.text
    secret = setup.json()["secret"]
    confirm = await client.post(
        "/api/v1/me/totp/confirm", headers=bearer(token), json={"code": totp_code(secret, clock)}
    )
    assert confirm.status_code == 200, confirm.text
    clock.advance(30)
    return secret, confirm.json()["recovery_codes"]


async def sign_in_with_totp(
    client: httpx.AsyncClient, name: str, secret: str, clock: FakeClock, password: str = PASSWORD
) -> dict[str, Any]:
    first = await login(client, name, password)
    assert first["status"] == "totp_required"
    second = await client.post(
        "/api/v1/login/totp",
        headers=bearer(first["token"]),
        json={"code": totp_code(secret, clock)},
    )
    assert second.status_code == 200, second.text
    clock.advance(30)
    return second.json()  # type: ignore[no-any-return]


async def user_with_2fa(
    server: RunningServer, client: httpx.AsyncClient, name: str = "alice"
) -> tuple[str, list[str], str]:
    """(TOTP secret, recovery codes, a full session token) for a new account `name`."""
    await server.add_user(name)
    token = (await login(client, name))["token"]
    secret, codes = await enable_totp(client, token, server.clock)
    return secret, codes, token


async def gather(*calls: Awaitable[Any]) -> list[Any]:
    return list(await asyncio.gather(*calls))


__all__ = [
    "BACKENDS",
    "PASSWORD",
    "START",
    "FakeClock",
    "RunningServer",
    "assert_error",
    "bearer",
    "enable_totp",
    "gather",
    "login",
    "make_settings",
    "sign_in_with_totp",
    "sqlite_only",
    "start_server",
    "totp_code",
    "user_with_2fa",
]
