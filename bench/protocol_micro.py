"""Micro-benchmark of the API's shapes (issue 12): decoding a sign-in body, and building and
encoding the answers of GET /me and of a 50-row history page, as the server does it.

Run: .venv/bin/python bench/protocol_micro.py  (prints microseconds per operation, the median
of several rounds). It measures the code as it is, so run it before and after a change of the
API's types and compare the two outputs taken on the same machine.
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path

from tfa_protocol.types import AdminHistoryPage, LoginRequest
from tfa_server import views
from tfa_server.app import initialise, open_core
from tfa_server.auth import history_event
from tfa_server.config import PasswordHashing, Settings
from tfa_server.core import Origin
from tfa_server.http.messages import Response
from tfa_server.storage import history, users
from tfa_server.storage.database import transaction
from tfa_server.validation import decode_body

ROUNDS = 7
LOGIN = b'{"username":"alice","password":"correct horse battery staple"}'


def per_call(work: Callable[[], object], number: int) -> float:
    """Microseconds per call: the median of ROUNDS timings of `number` calls."""
    times = timeit.repeat(work, number=number, repeat=ROUNDS)
    return statistics.median(times) / number * 1e6


def measure(conn: sqlite3.Connection, now: float) -> dict[str, float]:
    """On the database's own thread, as the server's storage calls run."""
    with transaction(conn):
        user_id = users.create(conn, "alice", "not-a-hash", False, now)
        assert user_id is not None
        user = users.by_id(conn, user_id)
        assert user is not None
        origin = Origin("192.0.2.10", "tfa-tui/0.1.0 (bench; Linux)")
        for index in range(60):
            event = history_event(user, "", origin, "password", index % 3 != 0, "password")
            history.record(conn, event, now - index)

    def me() -> bytes:
        return Response(200, views.me(conn, user, None)).encoded_body()

    def page() -> bytes:
        rows = history.page(conn, limit=51, before=None, username=None, success=None)
        shaped = AdminHistoryPage(*views.page(rows, 50, views.admin_history_item))
        return Response(200, shaped).encoded_body()

    return {
        "decode sign-in body": per_call(lambda: decode_body(LOGIN, LoginRequest), 20000),
        "build + encode GET /me": per_call(me, 2000),
        "build + encode 50-row history page": per_call(page, 500),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "bench.sqlite"
        settings = Settings(db, db.with_suffix(".key"), passwords=PasswordHashing(8192, 1, 1))
        initialise(settings)
        core = open_core(settings)
        try:
            figures = core.db.run_sync(lambda conn: measure(conn, core.now()))
        finally:
            core.passwords.close()
            core.db.close()
    for name, micros in figures.items():
        print(f"{name:40s} {micros:10.1f} µs")


if __name__ == "__main__":
    main()
