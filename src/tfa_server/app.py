"""Wiring: settings to storage, services and the HTTP transport, plus start and stop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tfa_server.api import Api
from tfa_server.clock import Clock, SystemClock
from tfa_server.config import Settings
from tfa_server.core import Core
from tfa_server.crypto import KeyFileError, ServerKeys, create_key_file, load_key_file
from tfa_server.http.forwarded import TrustedProxies
from tfa_server.http.server import HttpLimits, HttpServer
from tfa_server.keys import check_key
from tfa_server.metrics import Metrics
from tfa_server.passwords import Passwords
from tfa_server.storage import retention as retention_rows
from tfa_server.storage import schema, throttles
from tfa_server.storage import sessions as session_rows
from tfa_server.storage.database import (
    Connection,
    Database,
    SqliteDatabase,
    open_database,
    redacted,
    transaction,
)

log = logging.getLogger("tfa_server")

PURGE_EVERY = 3600.0
KEEP_ENDED_SESSIONS = 30 * 86_400.0
# The throttle rows age out of their windows quickly; pruning them often keeps the tables a
# few minutes of failures long however many addresses try. Every instance prunes; the
# deletes are idempotent.
PRUNE_THROTTLES_EVERY = 60.0
# Retention deletes this many rows a transaction, pausing between, so a backlog (retention
# switched on over years of history) never holds the write lock long: requests wait at most
# one batch, a few milliseconds.
RETENTION_BATCH = 500
RETENTION_PAUSE = 0.02
DAY = 86_400.0


class DatabaseMissing(Exception):
    pass


class MetricsListenerError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Pruned:
    history: int
    audit: int
    batches: int


def initialise(settings: Settings) -> bool:
    """Create the key file and the database (what `tfa-server init` does); False if both exist.

    A database without its key is refused: the stored 2FA secrets cannot be read without it.
    """
    if settings.db_path is None:
        return _initialise_server(settings)
    db_exists, key_exists = settings.db_path.exists(), settings.key_path.exists()
    if db_exists and not key_exists:
        raise KeyFileError(
            f"database {settings.db_path} exists but its key file {settings.key_path} does not;"
            " the stored 2FA secrets cannot be read without it"
        )
    settings.db_path.parent.mkdir(parents=True, exist_ok=True)
    if not key_exists:
        create_key_file(settings.key_path)
    database = SqliteDatabase(settings.db_path)
    try:
        database.open_sync()
        if not db_exists:
            _claim(database, settings)
    finally:
        database.close()
    os.chmod(settings.db_path, 0o600)
    return not db_exists


def _claim(database: Database, settings: Settings) -> None:
    """A new database is the key file's from the start (an older one, when a server first
    opens it: keys.check_key)."""
    keys = ServerKeys(load_key_file(settings.key_path))
    database.run_sync(lambda conn: check_key(conn, keys, settings.key_path, settings.database_name))


def _initialise_server(settings: Settings) -> bool:
    """PostgreSQL: the database exists already (the operator made it); init gives it the
    schema. A schema with accounts but no key file here is refused, as for a file."""
    assert settings.db_url is not None
    database = open_database(settings.db_url)
    try:
        database.open_sync(migrate=False)
        before = database.run_sync(schema.version)
        database.run_sync(schema.migrate)
        populated = database.run_sync(_has_accounts)
        key_exists = settings.key_path.exists()
        if populated and not key_exists:
            raise KeyFileError(
                f"database {redacted(settings.db_url)} holds accounts but the key file"
                f" {settings.key_path} does not exist; copy the key file every instance uses"
            )
        if not key_exists:
            settings.key_path.parent.mkdir(parents=True, exist_ok=True)
            create_key_file(settings.key_path)
        if before == 0:
            _claim(database, settings)
    finally:
        database.close()
    return before == 0 or not key_exists


def _has_accounts(conn: Connection) -> bool:
    return conn.execute("SELECT EXISTS (SELECT 1 FROM users)").fetchone()[0] in (1, True)


def _in_transaction(
    prune: Callable[[Connection, float, int], int], before: float, limit: int, conn: Connection
) -> int:
    with transaction(conn):
        return prune(conn, before, limit)


def require_database(path: Path | None) -> None:
    """A SQLite file must exist already (`init` makes it); a PostgreSQL URL is checked when
    connecting."""
    if path is not None and not path.exists():
        raise DatabaseMissing(f"database {path} does not exist (run 'tfa-server init' first)")


def open_core(settings: Settings, clock: Clock | None = None) -> Core:
    """Open an initialised database and its key; raises with a message a person can act on."""
    if settings.db_path is not None:
        require_database(settings.db_path)
    keys = ServerKeys(load_key_file(settings.key_path))
    db = open_database(settings.database)
    try:
        db.open_sync()
        db.run_sync(lambda conn: check_key(conn, keys, settings.key_path, settings.database_name))
    except BaseException:
        db.close()
        raise
    return Core(settings, db, keys, Passwords(settings.passwords), clock or SystemClock())


class Application:
    def __init__(
        self,
        core: Core,
        *,
        limits: HttpLimits | None = None,
        ssl_context: ssl.SSLContext | None = None,
        proxies: TrustedProxies | None = None,
        shutdown_delay: float = 0.0,
        metrics_at: tuple[str, int] | None = None,
    ) -> None:
        self.core = core
        self.shutdown_delay = shutdown_delay
        # Prometheus metrics on a listener of their own, never the API's port (off if None).
        self.metrics_at = metrics_at
        self.metrics = Metrics() if metrics_at is not None else None
        self.metrics_http: HttpServer | None = None
        self.api = Api(core, self.metrics)
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
        if self.metrics_at is not None:
            assert self.metrics is not None
            metrics = self.metrics
            metrics.open_connections.set_function(lambda: self.http.open_connections)
            scrapes = logging.getLogger("tfa_server.metrics.access")
            scrapes.setLevel(logging.WARNING)  # a scrape every few seconds is no news
            self.metrics_http = HttpServer(
                lambda request: metrics.scrape(request, self._active_sessions),
                HttpLimits(),
                access_log=scrapes,
                error_log=log,
            )
            try:
                await self.metrics_http.start(*self.metrics_at)
            except BaseException as exc:
                await self.http.shutdown()
                if isinstance(exc, OSError):
                    host, port = self.metrics_at
                    raise MetricsListenerError(
                        f"cannot listen for metrics on {host}:{port}: {exc.strerror}"
                    ) from None
                raise
        self._purger = asyncio.create_task(self._purge_forever())

    @property
    def metrics_port(self) -> int:
        if self.metrics_http is None:
            raise RuntimeError("no metrics listener")
        return self.metrics_http.port

    async def _active_sessions(self) -> int:
        now = self.core.now()
        idle = self.core.settings.sessions.idle_timeout
        return await self.core.db.read(lambda conn: session_rows.count_active(conn, now, idle))

    async def _purge_forever(self) -> None:
        since_sessions = PURGE_EVERY
        while True:
            sessions_too = since_sessions >= PURGE_EVERY
            purge = functools.partial(self._purge, sessions_too=sessions_too)
            try:
                await self.core.db.run(purge)
                if sessions_too:
                    await self.enforce_retention()
            except Exception as exc:
                log.error("purging old sessions, throttle rows and history failed: %s", exc)
                if self.metrics is not None:
                    self.metrics.database_errors.inc()
            since_sessions = 0.0 if sessions_too else since_sessions + PRUNE_THROTTLES_EVERY
            await asyncio.sleep(PRUNE_THROTTLES_EVERY)

    async def enforce_retention(self) -> Pruned:
        """Delete history and audit entries older than their retention (hourly, in the
        background), a batch a transaction; returns what went."""
        retention = self.core.settings.retention
        history, history_batches = await self._prune("history", retention.history_days)
        audit, audit_batches = await self._prune("audit", retention.audit_days)
        return Pruned(history, audit, history_batches + audit_batches)

    async def _prune(self, name: str, days: int) -> tuple[int, int]:
        """(rows deleted, transactions that deleted some) of one kind; days 0 keeps all."""
        if days <= 0:
            return 0, 0
        prune = retention_rows.prune_history if name == "history" else retention_rows.prune_audit
        batch = functools.partial(
            _in_transaction, prune, self.core.now() - days * DAY, RETENTION_BATCH
        )
        deleted = batches = 0
        while (done := await self.core.db.run(batch)) > 0:
            deleted += done
            batches += 1
            if done < RETENTION_BATCH:
                break
            await asyncio.sleep(RETENTION_PAUSE)
        if deleted:
            log.info(
                "retention: removed %d %s entries older than %d days in %d transactions",
                deleted,
                name,
                days,
                batches,
            )
        return deleted, batches

    def _purge(self, conn: Connection, sessions_too: bool) -> None:
        now = self.core.now()
        rules = self.core.settings.throttle
        throttles.prune(conn, now, rules.ip_window, rules.failure_memory)
        throttles.prune_leases(conn, time.time())
        if sessions_too:
            session_rows.purge_expired(conn, now, KEEP_ENDED_SESSIONS)

    async def stop(self) -> None:
        """Say not ready, stop accepting, let requests in flight finish, then close hashing
        and storage.

        A second call does nothing, so an embedding program may stop it from several places.
        """
        if self._stopped:
            return
        self._stopped = True
        # /readyz answers 503 from now on; for shutdown_delay the server still serves, so a
        # load balancer that checks readiness takes it out of rotation before it stops.
        self.api.draining = True
        if self.shutdown_delay > 0:
            log.info("not ready: stopping in %g s", self.shutdown_delay)
            await asyncio.sleep(self.shutdown_delay)
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
        await self.http.shutdown()
        if self.metrics_http is not None:
            await self.metrics_http.shutdown()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.core.passwords.close)
        await loop.run_in_executor(None, self.core.db.close)
