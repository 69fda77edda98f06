"""Single use is the database's guarantee, not the process's: several connections to one
database (what a second server instance is) race on one TOTP step and one recovery code, on
SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import pytest

from tfa_server.storage import second_factor as rows
from tfa_server.storage.database import Connection, transaction
from tfa_server.storage.schema import migrate
from tfa_server.storage.second_factor import CodeUse

T = TypeVar("T")
RACERS = 8
USER = 1


@pytest.fixture
def database(open_connection: Callable[[], Connection]) -> Callable[[], Connection]:
    """One account with TOTP at step 100 and two recovery codes; returns the way to open
    further connections to it."""
    conn = open_connection()
    migrate(conn)
    conn.execute(
        "INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, 'a', 'x', 0)",
        (USER,),
    )
    conn.execute(
        "INSERT INTO totp_secrets (user_id, secret, enabled_at, last_step) VALUES ($1, $2, 0, 100)",
        (USER, b"sealed"),
    )
    rows.replace_recovery_codes(conn, USER, ["digest-1", "digest-2"], 0.0, 1)
    return open_connection


def race(open_connection: Callable[[], Connection], work: Callable[[Connection], T]) -> list[T]:
    """Every racer reads first (all see the same state), then all write at once, each on its
    own connection and in its own transaction."""
    connections = [open_connection() for _ in range(RACERS)]
    barrier = threading.Barrier(RACERS)
    results: list[T] = []
    lock = threading.Lock()

    def run(conn: Connection) -> None:
        assert rows.active_secret(conn, USER) == (b"sealed", 100)
        barrier.wait()
        with transaction(conn):
            outcome = work(conn)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run, args=(conn,)) for conn in connections]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == RACERS
    return results


@pytest.mark.finding("F16")
def test_one_totp_step_is_accepted_by_exactly_one_connection(
    database: Callable[[], Connection],
) -> None:
    results = race(database, lambda conn: rows.advance_step(conn, USER, 101))
    assert results.count(True) == 1
    conn = database()
    assert rows.active_secret(conn, USER) == (b"sealed", 101)
    with transaction(conn):
        assert not rows.advance_step(conn, USER, 101)  # the same step again
        assert not rows.advance_step(conn, USER, 100)  # an older one
        assert rows.advance_step(conn, USER, 102)


@pytest.mark.finding("F16")
def test_one_recovery_code_is_spent_by_exactly_one_connection(
    database: Callable[[], Connection],
) -> None:
    results = race(database, lambda conn: rows.use_recovery_code(conn, USER, ["digest-1"], 5.0))
    assert results.count(CodeUse.SPENT) == 1
    assert results.count(CodeUse.ALREADY_USED) == RACERS - 1
    assert rows.recovery_codes_left(database(), USER) == 1
