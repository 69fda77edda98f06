"""The database handle: SQLite (a path) or PostgreSQL (a URL), never on the event loop.

Storage code is written once against `Connection`. Queries use PostgreSQL's own numbered
parameters ($1, $2, ...): psycopg sends them as they are (a raw cursor), and SQLite takes
`$1` as a parameter named "1", so neither driver rewrites the text. What the dialects do
differently is said once, in `Dialect`.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from tfa_server.handback import HandBack

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

T = TypeVar("T")

URL_SCHEMES = ("postgresql://", "postgres://")
# SQLite result codes that mean "the storage cannot take writes now", not a bug.
UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_READONLY,
    }
)
# PostgreSQL error classes that mean the same: connection exceptions (08), insufficient
# resources such as a full disk (53), operator intervention such as a restart (57), system
# errors (58). A statement's own mistakes (22, 23, 42) stay bugs.
UNAVAILABLE_CLASSES = frozenset({"08", "53", "57", "58"})
# Every write transaction on PostgreSQL takes this transaction-level lock first, so writes
# are serialised across instances as SQLite serialises them within one: check-then-write in
# storage code is correct on both by the same argument.
WRITE_LOCK = 0x7466_6100  # "tfa\0"
MIGRATION_LOCK = 0x7466_6101


def storable(text: str) -> str:
    """Text as sent, as both backends can keep it: PostgreSQL's text cannot hold NUL, so it
    becomes U+FFFD on both (an attempted name is data, never an error)."""
    return text.replace("\x00", "\ufffd")


def is_url(target: str | Path) -> bool:
    return isinstance(target, str) and target.startswith(URL_SCHEMES)


def storage_unavailable(exc: BaseException) -> bool:
    """True for a failure of the storage itself (full, unreachable, restarting): a 503."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code is not None and (code & 0xFF) in UNAVAILABLE_CODES
    module = type(exc).__module__
    if module.startswith("psycopg_pool"):
        return True  # no connection could be had in time
    if module.startswith("psycopg"):
        import psycopg

        if isinstance(exc, psycopg.OperationalError) and getattr(exc, "sqlstate", None) is None:
            return True  # the connection broke: no answer at all
        sqlstate = getattr(exc, "sqlstate", None) or ""
        return sqlstate[:2] in UNAVAILABLE_CLASSES
    return False


class Row(Protocol):
    """A result row, by position or by column name (sqlite3.Row and `NamedRow`)."""

    def __getitem__(self, key: Any) -> Any: ...

    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    """The few places where SQLite and PostgreSQL need different words."""

    name: str

    @property
    def sqlite(self) -> bool:
        return self.name == "sqlite"

    def indexed_by(self, index: str) -> str:
        """SQLite's planner needs telling to use a partial covering index; PostgreSQL's not."""
        return f" INDEXED BY {index}" if self.sqlite else ""

    @property
    def read_snapshot(self) -> str:
        """SQLite's deferred transaction reads one snapshot in WAL mode from its first read."""
        return "BEGIN" if self.sqlite else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"

    def position(self, haystack: str, needle: str) -> str:
        """Where `needle` starts in `haystack` (1-based, 0 when absent); not LIKE, so '%'
        and '_' are plain characters."""
        return f"instr({haystack}, {needle})" if self.sqlite else f"strpos({haystack}, {needle})"


SQLITE = Dialect("sqlite")
POSTGRESQL = Dialect("postgresql")


class Connection(ABC):
    """One connection, used by one thread at a time; statements autocommit outside
    `transaction()`."""

    dialect: Dialect

    @abstractmethod
    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor: ...

    @abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None: ...

    @abstractmethod
    def transaction(self) -> Any:
        """A context manager: one atomic write, serialised with every other write."""

    @abstractmethod
    def script(self, sql: str) -> None:
        """Statements without parameters (schema changes), in the caller's transaction."""

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads that see one moment of the database however long they take (a copy)."""
        self.execute(self.dialect.read_snapshot)
        try:
            yield
        finally:
            self.execute("COMMIT")


def _named(params: Sequence[object]) -> dict[str, object]:
    return {str(number): value for number, value in enumerate(params, 1)}


class SqliteConnection(Connection):
    dialect = SQLITE

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        return self.raw.execute(sql, _named(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        self.raw.executemany(sql, (_named(row) for row in rows))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE takes the write lock up front, so check-then-write cannot
        interleave."""
        self.raw.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self.raw.in_transaction:
                self.raw.execute("ROLLBACK")
            raise
        self.raw.execute("COMMIT")

    def script(self, sql: str) -> None:
        for statement in sqlite_statements(sql):
            self.raw.execute(statement)


def sqlite_statements(script: str) -> list[str]:
    """executescript() would COMMIT on its own; splitting keeps a caller's transaction. A
    trigger's body holds semicolons of its own: a statement ends where SQLite says it does."""
    statements: list[str] = []
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    if pending.strip(" \n;"):
        statements.append(pending.strip())
    return statements


def connect_sqlite(path: Path) -> sqlite3.Connection:
    """WAL for concurrent readers, synchronous=FULL so a committed write survives power loss."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


class NamedRow(tuple):  # type: ignore[type-arg]
    """A PostgreSQL row that answers to positions and column names, as sqlite3.Row does."""

    _names: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


@functools.lru_cache(maxsize=512)
def _row_kind(columns: tuple[str, ...]) -> type[NamedRow]:
    """One class per column list, made once: a class per result cost more than the query."""
    names = {name: index for index, name in enumerate(columns)}
    return type("Row", (NamedRow,), {"_names": names, "__slots__": ()})


def named_rows(cursor: Any) -> Callable[[Sequence[Any]], NamedRow]:
    """psycopg row factory for `NamedRow`: the column names once per result, not per row."""
    description = cursor.description
    if description is None:
        return lambda values: NamedRow(values)
    return _row_kind(tuple(column.name for column in description))


def _texts(params: Sequence[object]) -> tuple[object, ...]:
    """Any text a request carries may hold NUL, which PostgreSQL refuses outright: looked up
    or stored, it is U+FFFD, as SQLite stores it (`storable`), so no input becomes a 500."""
    return tuple(storable(value) if isinstance(value, str) else value for value in params)


class PostgresConnection(Connection):
    dialect = POSTGRESQL

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        return self.raw.execute(sql, _texts(params) or None)

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        with self.raw.cursor() as cursor:
            cursor.executemany(sql, (_texts(row) for row in rows))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.raw.transaction():
            self.raw.execute("SELECT pg_advisory_xact_lock($1)", (WRITE_LOCK,))
            yield

    def script(self, sql: str) -> None:
        self.raw.execute(sql.encode())


class Database(ABC):
    """Where every query runs: `run` from the event loop, `run_sync` from the CLI."""

    description: str

    @abstractmethod
    def open_sync(self, *, migrate: bool = True) -> None:
        """Connect, and bring the schema to this code's version unless told not to."""

    _executor: ThreadPoolExecutor

    @abstractmethod
    def _call(self, work: Callable[[Connection], T]) -> T:
        """Run `work` on a connection, on one of the executor's threads."""

    _handback: HandBack | None = None

    async def run(self, work: Callable[[Connection], T]) -> T:
        if self._handback is None:
            self._handback = HandBack(self._executor)
        return await self._handback.run(lambda: self._call(work))

    async def read(self, work: Callable[[Connection], T]) -> T:
        """`work` that only reads, for what every request needs: where the backend allows it
        (SQLite), it runs beside the writes instead of waiting behind their commits."""
        return await self.run(work)

    def run_sync(self, work: Callable[[Connection], T]) -> T:
        return self._executor.submit(self._call, work).result()

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def session(self) -> Any:
        """A context manager: one connection for a long piece of work from the CLI (a copy)
        on the calling thread, outside any event loop."""

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.open_sync)


class SqliteDatabase(Database):
    """One connection on one dedicated thread for everything that may write: SQLite
    serialises writes anyway. A second, read-only one on a thread of its own for `read`: in
    WAL mode a reader sees every committed write and never waits for one, so a signed-in
    request is not queued behind sign-ins' durable commits (B2, bench/)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: SqliteConnection | None = None
        self._reads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-read")
        self._reader: SqliteConnection | None = None
        self._read_handback = HandBack(self._reads)

    def open_sync(self, *, migrate: bool = True) -> None:
        from tfa_server.storage import schema

        def _open() -> None:
            self._conn = SqliteConnection(connect_sqlite(self.path))
            if migrate:
                schema.migrate(self._conn)

        def _open_reader() -> None:
            raw = connect_sqlite(self.path)
            raw.execute("PRAGMA query_only = ON")
            self._reader = SqliteConnection(raw)

        self._executor.submit(_open).result()
        self._reads.submit(_open_reader).result()

    async def read(self, work: Callable[[Connection], T]) -> T:
        return await self._read_handback.run(lambda: self._read(work))

    def _read(self, work: Callable[[Connection], T]) -> T:
        if self._reader is None:
            raise RuntimeError("database is not open")
        return work(self._reader)

    def _call(self, work: Callable[[Connection], T]) -> T:
        if self._conn is None:
            raise RuntimeError("database is not open")
        return work(self._conn)

    @contextmanager
    def session(self) -> Iterator[Connection]:
        if self._conn is None:
            raise RuntimeError("database is not open")
        yield self._conn  # the CLI's only user of it meanwhile

    def close(self) -> None:
        def _close() -> None:
            if self._conn is not None:
                self._conn.raw.close()
                self._conn = None

        def _close_reader() -> None:
            if self._reader is not None:
                self._reader.raw.close()
                self._reader = None

        self._reads.submit(_close_reader).result()
        self._reads.shutdown(wait=True)
        self._executor.submit(_close).result()
        self._executor.shutdown(wait=True)


POOL_SIZE = 10
CONNECT_TIMEOUT = 5.0


class PostgresDatabase(Database):
    """A pool of connections, each used by one of as many threads. The URL carries the
    password (or libpq finds it in PGPASSWORD or ~/.pgpass) and the TLS options."""

    def __init__(self, url: str, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        self.description = redacted(url)
        self._pool_size = pool_size
        self._executor = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="postgres")
        self._pool: psycopg_pool.ConnectionPool[Any] | None = None

    def _make_pool(self) -> psycopg_pool.ConnectionPool[Any]:
        import psycopg
        import psycopg_pool

        return psycopg_pool.ConnectionPool(
            self.url,
            min_size=1,
            max_size=self._pool_size,
            kwargs={
                "autocommit": True,
                "cursor_factory": psycopg.RawCursor,
                "row_factory": named_rows,
                "connect_timeout": int(CONNECT_TIMEOUT),
            },
            timeout=CONNECT_TIMEOUT,
            open=False,
            name="tfa",
        )

    def open_sync(self, *, migrate: bool = True) -> None:
        from tfa_server.storage import schema

        _probe(self.url, self.description)
        pool = self._make_pool()
        try:
            pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except Exception as exc:
            pool.close()
            raise DatabaseUnreachable(f"cannot connect to {self.description}: {exc}") from None
        self._pool = pool
        if migrate:
            self.run_sync(schema.migrate)

    def _call(self, work: Callable[[Connection], T]) -> T:
        if self._pool is None:
            raise RuntimeError("database is not open")
        try:
            with self._pool.connection() as raw:
                return work(PostgresConnection(raw))
        except BaseException as exc:
            if storage_unavailable(exc):
                self._pool.check()  # drop the other connections that broke with this one
            raise

    @contextmanager
    def session(self) -> Iterator[Connection]:
        if self._pool is None:
            raise RuntimeError("database is not open")
        with self._pool.connection() as raw:
            yield PostgresConnection(raw)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        self._executor.shutdown(wait=True)


class DatabaseUnreachable(Exception):
    pass


def _probe(url: str, description: str) -> None:
    """Connect once before making the pool, for libpq's own words when that fails (the pool
    would retry and log each attempt, then say only that it timed out)."""
    try:
        import psycopg
        import psycopg_pool  # noqa: F401
    except ImportError:
        raise DatabaseUnreachable(
            "PostgreSQL needs the psycopg packages: pip install 'tfa[postgresql]'"
        ) from None

    try:
        psycopg.connect(url, connect_timeout=int(CONNECT_TIMEOUT)).close()
    except psycopg.Error as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        reason = first.removeprefix("connection failed: ") or type(error).__name__
        raise DatabaseUnreachable(f"cannot connect to {description}: {reason}") from None


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def open_database(target: str | Path) -> Database:
    """A `postgresql://` URL is PostgreSQL; anything else is a SQLite file's path."""
    if is_url(target):
        return PostgresDatabase(str(target))
    return SqliteDatabase(Path(target))


def transaction(conn: Connection) -> Any:
    return conn.transaction()
