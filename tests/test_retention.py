"""Retention: sign-in history and audit entries older than their settings are deleted in the
background, a small batch a transaction, while requests go on; the rest stays, and so do the
activity counts of the days still kept."""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tfa_server.admin import Actor, Admin
from tfa_server.app import RETENTION_BATCH
from tfa_server.config import Retention
from tfa_server.storage.database import Connection
from tfa_server.storage.schema import BUCKET_SECONDS

from .conftest import (
    PASSWORD,
    FakeClock,
    RunningServer,
    bearer,
    login,
    sign_in_with_totp,
    start_server,
    user_with_2fa,
)
from .stored import on_file
from .test_cli import env, run

__all__ = ["env"]  # a fixture, used by name

DAY = 86_400.0


def _count(conn: Connection, sql: str, *params: object) -> int:
    return int(conn.execute(sql, params).fetchone()[0])


async def _counts(server: RunningServer, before: float) -> dict[str, int]:
    """Rows older than `before`, and all rows, of the history, audit log and activity."""
    bucket = int(before // BUCKET_SECONDS)

    def _read(conn: Connection) -> dict[str, int]:
        return {
            "old history": _count(conn, "SELECT COUNT(*) FROM login_history WHERE at < $1", before),
            "history": _count(conn, "SELECT COUNT(*) FROM login_history"),
            "old audit": _count(conn, "SELECT COUNT(*) FROM audit_log WHERE at < $1", before),
            "audit": _count(conn, "SELECT COUNT(*) FROM audit_log"),
            "old activity": _count(conn, "SELECT COUNT(*) FROM activity WHERE bucket < $1", bucket),
            "activity": _count(conn, "SELECT COUNT(*) FROM activity"),
        }

    result: dict[str, int] = await server.core.db.read(_read)
    return result


async def _signed_in_days(http: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    response = await http.get("/api/v1/me/activity", headers=bearer(token), params={"days": 90})
    assert response.status_code == 200, response.text
    return [day for day in response.json()["days"] if day["succeeded"] or day["failed"]]


async def test_what_is_older_than_its_retention_goes_and_the_rest_stays(
    tmp_path: Path, database_url: str | None
) -> None:
    clock = FakeClock()
    server = await start_server(
        tmp_path, clock, db_url=database_url, retention=Retention(history_days=30, audit_days=60)
    )
    admin = Admin(server.core)
    try:
        async with server.client() as http:
            secret, _, _ = await user_with_2fa(server, http)
            await sign_in_with_totp(http, "alice", secret, clock)
            wrong = await http.post(
                "/api/v1/login", json={"username": "alice", "password": "not the password"}
            )
            assert wrong.status_code == 401
            await admin.unlock(Actor("cli:root", None), "alice")
            early = await _counts(server, clock.now() + 1)
            assert early["history"] >= 4
            assert early["audit"] == 2  # alice created, then unlocked

            clock.advance(31 * DAY)
            first_cutoff = clock.now() - 30 * DAY
            token = (await sign_in_with_totp(http, "alice", secret, clock))["token"]
            await server.add_user("bob")
            assert len(await _signed_in_days(http, token)) == 2  # before pruning: both days

            pruned = await server.app.enforce_retention()
            assert (pruned.history, pruned.audit) == (early["history"], 0)
            assert pruned.batches == 1
            after = await _counts(server, first_cutoff)
            assert (after["old history"], after["old activity"]) == (0, 0)
            assert after["history"] > 0  # today's sign-in and bob's creation are kept
            assert after["audit"] == 3  # kept 60 days
            history = await http.get("/api/v1/me/history", headers=bearer(token))
            kept = [
                datetime.fromisoformat(item["at"]).timestamp() for item in history.json()["items"]
            ]
            assert all(at >= first_cutoff for at in kept)
            assert history.json()["items"]
            kept_days = await _signed_in_days(http, token)
            assert len(kept_days) == 1
            assert kept_days[0]["succeeded"] == 1

            clock.advance(30 * DAY)
            pruned = await server.app.enforce_retention()
            assert pruned.audit == 2  # the two from the first day; bob's creation stays
            assert (await _counts(server, clock.now()))["audit"] == 1
            assert (await server.app.enforce_retention()).batches == 0  # nothing more to do
    finally:
        await server.app.stop()


async def test_zero_keeps_everything(tmp_path: Path) -> None:
    clock = FakeClock()
    server = await start_server(tmp_path, clock, retention=Retention(history_days=0, audit_days=0))
    try:
        async with server.client() as http:
            await user_with_2fa(server, http)
        clock.advance(10 * 365 * DAY)
        pruned = await server.app.enforce_retention()
        assert (pruned.history, pruned.audit, pruned.batches) == (0, 0, 0)
        counts = await _counts(server, clock.now())
        assert counts["history"] == counts["old history"] > 0
        assert counts["audit"] == 1
    finally:
        await server.app.stop()


def _old_history(db: Path, rows: int, at: float) -> None:
    """Refused attempts of names that are no account, written directly: a backlog."""

    def _write(conn: Connection) -> None:
        with conn.transaction():
            conn.executemany(
                "INSERT INTO login_history (user_id, username, at, event, success, method,"
                " reason, ip, client) VALUES (NULL, $1, $2, 'password', 0, 'password',"
                " 'unknown_user', '192.0.2.7', 'scanner')",
                [(f"nobody{number}", at + number * 0.001) for number in range(rows)],
            )

    on_file(db, _write)


async def test_a_backlog_goes_in_small_batches_while_sign_ins_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Retention switched on over a long history: the server starts pruning at once, in the
    background, RETENTION_BATCH rows a transaction, and sign-ins are answered all along."""
    clock = FakeClock()
    first = await start_server(tmp_path, clock)
    await first.add_user("bob")
    await first.app.stop()
    backlog = 12 * RETENTION_BATCH
    assert first.settings.db_path is not None
    _old_history(first.settings.db_path, backlog, clock.now() - 400 * DAY)
    caplog.set_level(logging.INFO, logger="tfa_server")

    server = await start_server(tmp_path, clock)  # the background job starts with it
    answered: list[float] = []
    during = 0  # sign-ins answered while old rows were still there

    def said() -> list[str]:
        messages = (record.getMessage() for record in caplog.records)
        return [message for message in messages if message.startswith("retention:")]

    try:
        async with server.client() as http:
            deadline = time.monotonic() + 60
            while not said() and time.monotonic() < deadline:
                started = time.monotonic()
                assert (await login(http, "bob", PASSWORD))["status"] == "authenticated"
                answered.append(time.monotonic() - started)
                during += (await _counts(server, clock.now() - 365 * DAY))["old history"] > 0
        left = await _counts(server, clock.now() - 365 * DAY)
    finally:
        await server.app.stop()
    batches = math.ceil(backlog / RETENTION_BATCH)
    assert said() == [
        f"retention: removed {backlog} history entries older than 365 days in {batches}"
        " transactions"
    ]
    assert left["old history"] == 0
    assert left["history"] == len(answered)  # bob's sign-ins, all kept
    # Sign-ins went on while it ran, and none waited for the whole of it.
    assert during >= 2, (during, answered)
    assert max(answered) < 2.0, answered


def test_retention_days_are_checked(env: dict[str, str], tmp_path: Path) -> None:
    for value, fragment in (("-1", "between 0"), ("a year", "whole number of days")):
        refused = run(
            env, "serve", "--db", str(tmp_path / "x.db"), "--history-retention-days", value
        )
        assert refused.returncode == 2
        assert fragment in refused.stderr
    bad_env = {**env, "TFA_AUDIT_RETENTION_DAYS": "40000"}
    refused = run(bad_env, "serve", "--db", str(tmp_path / "x.db"))
    assert refused.returncode == 2
    assert "--audit-retention-days" in refused.stderr
