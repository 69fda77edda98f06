"""PostgreSQL going away for a moment: 503 with Retry-After meanwhile, never a 500 or half a
write, and the server carries on by itself when the database is back."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from . import postgres
from .conftest import PASSWORD, RunningServer, start_server

PEOPLE = 6
# Longer than the pool waits for a connection (5 s), so requests in the gap get their 503.
DOWN_FOR = 6.0


def restartable() -> postgres.Cluster:
    cluster = postgres.server().cluster
    if cluster is None:
        pytest.skip(f"restarts the suite's own PostgreSQL, not one {postgres.URL_VARIABLE} names")
    return cluster


async def sign_in_loop(
    server: RunningServer, name: str, stop: asyncio.Event, seen: Counter[str], after: list[float]
) -> int:
    """Sign in again and again; returns how many sign-ins were acknowledged (200)."""
    acknowledged = 0
    body = {"username": name, "password": PASSWORD}
    async with server.client() as http:
        while not stop.is_set():
            try:
                response = await http.post("/api/v1/login", json=body)
            except httpx.TransportError as exc:  # the server itself must never drop us
                raise AssertionError(f"{name}: {exc!r}") from exc
            seen[str(response.status_code)] += 1
            if response.status_code == 200:
                acknowledged += 1
                after.append(time.monotonic())
            else:
                assert response.status_code == 503, response.text
                assert response.json()["error"] == "service_unavailable"
                assert int(response.headers["Retry-After"]) > 0
                await asyncio.sleep(0.2)
    return acknowledged


async def test_a_restart_under_load_loses_no_acknowledged_sign_in(tmp_path: Path) -> None:
    cluster = restartable()
    with postgres.server().database() as url:
        server = await start_server(tmp_path, db_url=url)
        try:
            names = [f"user{index}" for index in range(PEOPLE)]
            for name in names:
                await server.add_user(name)
            stop = asyncio.Event()
            seen: Counter[str] = Counter()
            successes: list[float] = []
            loops = [
                asyncio.create_task(sign_in_loop(server, name, stop, seen, successes))
                for name in names
            ]
            await asyncio.sleep(0.5)
            await asyncio.to_thread(cluster.stop)
            await asyncio.sleep(DOWN_FOR)
            await asyncio.to_thread(cluster.start)
            back = time.monotonic()
            async with asyncio.timeout(30):  # recovers by itself: no restart of tfa-server
                while sum(1 for at in successes if at > back) < PEOPLE * 3:
                    if any(loop.done() for loop in loops):
                        break  # one failed: gather() below says how
                    await asyncio.sleep(0.05)
            stop.set()
            acknowledged = dict(zip(names, await asyncio.gather(*loops), strict=True))
            assert seen["503"] > 0, seen  # the outage was seen...
            assert set(seen) == {"200", "503"}, seen  # ...as 503s, never anything else

            def _stored(conn: object) -> list[tuple[str, int, int]]:
                return conn.execute(  # type: ignore[attr-defined, no-any-return]
                    "SELECT u.username,"
                    " (SELECT COUNT(*) FROM login_history h WHERE h.user_id = u.id"
                    "  AND h.event = 'password' AND h.success = 1),"
                    " (SELECT COUNT(*) FROM sessions s WHERE s.user_id = u.id)"
                    " FROM users u ORDER BY u.username"
                ).fetchall()

            for name, recorded, sessions in await server.core.db.run(_stored):
                # Every acknowledged sign-in is in the history; a sign-in whose answer was
                # lost with the connection may be there too, but never half of one: each
                # recorded success has its session, each session its record.
                assert recorded >= acknowledged[name], (name, recorded, acknowledged[name])
                assert sessions == recorded, (name, sessions, recorded)
        finally:
            await server.app.stop()
