"""Wiring: settings to storage, services and the HTTP transport, plus start and stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import ssl
from pathlib import Path

from tfa_server.api import Api
from tfa_server.clock import Clock, SystemClock
from tfa_server.config import Settings
from tfa_server.core import Core
from tfa_server.crypto import KeyFileError, ServerKeys, create_key_file, load_key_file
from tfa_server.http.forwarded import TrustedProxies
from tfa_server.http.server import HttpLimits, HttpServer
from tfa_server.passwords import Passwords
from tfa_server.storage import sessions as session_rows
from tfa_server.storage.database import Database

log = logging.getLogger("tfa_server")

PURGE_EVERY = 3600.0
KEEP_ENDED_SESSIONS = 30 * 86_400.0


class DatabaseMissing(Exception):
    pass


def initialise(settings: Settings) -> bool:
    """Create the key file and the database (what `tfa-server init` does); False if both exist.

    A database without its key is refused: the stored 2FA secrets cannot be read without it.
    """
    db_exists, key_exists = settings.db_path.exists(), settings.key_path.exists()
    if db_exists and not key_exists:
        raise KeyFileError(
            f"database {settings.db_path} exists but its key file {settings.key_path} does not;"
            " the stored 2FA secrets cannot be read without it"
        )
    settings.db_path.parent.mkdir(parents=True, exist_ok=True)
    if not key_exists:
        create_key_file(settings.key_path)
    database = Database(settings.db_path)
    database.open_sync()
    database.close()
    os.chmod(settings.db_path, 0o600)
    return not db_exists


def require_database(path: Path) -> None:
    if not path.exists():
        raise DatabaseMissing(f"database {path} does not exist (run 'tfa-server init' first)")


def open_core(settings: Settings, clock: Clock | None = None) -> Core:
    """Open an initialised database and its key; raises with a message a person can act on."""
    require_database(settings.db_path)
    keys = ServerKeys(load_key_file(settings.key_path))
    db = Database(settings.db_path)
    db.open_sync()
    return Core(settings, db, keys, Passwords(settings.passwords), clock or SystemClock())


class Application:
    def __init__(
        self,
        core: Core,
        *,
        limits: HttpLimits | None = None,
        ssl_context: ssl.SSLContext | None = None,
        proxies: TrustedProxies | None = None,
    ) -> None:
        self.core = core
        self.api = Api(core)
        self.http = HttpServer(
            self.api.handle,
            limits or HttpLimits(),
            ssl_context=ssl_context,
            proxies=proxies,
            access_log=logging.getLogger("tfa_server.access"),
            error_log=log,
        )
        self._purger: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def port(self) -> int:
        return self.http.port

    async def start(self, host: str, port: int) -> None:
        await self.http.start(host, port)
        self._purger = asyncio.create_task(self._purge_forever())

    async def _purge_forever(self) -> None:
        while True:
            try:
                await self.core.db.run(self._purge)
            except Exception:
                log.exception("purging old sessions failed")
            await asyncio.sleep(PURGE_EVERY)

    def _purge(self, conn: sqlite3.Connection) -> None:
        session_rows.purge_expired(conn, self.core.now(), KEEP_ENDED_SESSIONS)

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish, then close hashing and storage.

        A second call does nothing, so an embedding program may stop it from several places.
        """
        if self._stopped:
            return
        self._stopped = True
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
        await self.http.shutdown()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.core.passwords.close)
        await loop.run_in_executor(None, self.core.db.close)
