"""Resource exhaustion over real sockets: slowloris and a flood of idle connections.

`make test` shrinks the server's limits (request timeout, connection cap) so these take seconds;
`make stress` (TFA_STRESS=1) uses the real ones: 300 slowloris connections against the 10 s
request timeout, 600 idle connections against the 512 cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tfa_server.http.server import HttpLimits

from ..conftest import RunningServer, start_server
from .figures import STRESS, record, scaled
from .test_raw_http import Conn, assert_closed, healthz, read_response, request

GROUP = "Resource exhaustion"
# Bounded runs: the same shape, shorter clocks and a smaller cap.
SLOW_LIMITS = HttpLimits() if STRESS else HttpLimits(request_timeout=1.0, keepalive_timeout=2.0)
IDLE_LIMITS = HttpLimits() if STRESS else HttpLimits(keepalive_timeout=2.0, max_connections=24)
SLOWLORIS = scaled(30, 300)
IDLE = scaled(36, 600)
HEALTHZ_BUDGET = 0.1  # seconds: what a person or a load balancer would notice


@contextlib.asynccontextmanager
async def running(folder: Path, limits: HttpLimits) -> AsyncIterator[RunningServer]:
    server = await start_server(folder, limits=limits)
    try:
        yield server
    finally:
        await server.app.stop()


async def open_many(port: int, count: int) -> list[Conn]:
    """Opens ``count`` connections, in batches so the listen backlog is never the limit."""
    conns: list[Conn] = []
    while len(conns) < count:
        batch = min(50, count - len(conns))
        conns += await asyncio.gather(
            *(asyncio.open_connection("127.0.0.1", port) for _ in range(batch))
        )
    return conns


async def close_all(conns: list[Conn]) -> None:
    for _, writer in conns:
        writer.close()
    for _, writer in conns:
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def test_slowloris_does_not_starve_others_and_is_cut_at_the_request_timeout(
    tmp_path: Path,
) -> None:
    timeout = SLOW_LIMITS.request_timeout
    assert SLOW_LIMITS.max_connections > SLOWLORIS + 10  # the probes must not meet the cap
    interval = timeout / 10  # one byte a second against the real 10 s
    head = b"GET /healthz HTTP/1.1\r\nHost: tfa.test\r\nX-Slow: "
    lifetimes: list[float] = []
    refused: list[int] = []

    async def drip(conn: Conn) -> None:
        reader, writer = conn
        response_task = asyncio.create_task(read_response(reader, within=timeout + 30))
        started = time.monotonic()
        sent = 0
        try:
            with contextlib.suppress(ConnectionError):
                while not response_task.done():  # the head never ends
                    writer.write(head[sent : sent + 1] if sent < len(head) else b"a")
                    sent += 1
                    await asyncio.wait({response_task}, timeout=interval)
            response = await response_task
            lifetimes.append(time.monotonic() - started)
            refused.append(response.status)
            assert response.json()["error"] == "request_timeout"
            assert response.headers["connection"] == "close"
            with contextlib.suppress(ConnectionError):
                await assert_closed(reader)
        finally:
            response_task.cancel()

    async with running(tmp_path, SLOW_LIMITS) as server:
        port = server.app.port
        conns = await open_many(port, SLOWLORIS)
        try:
            drips = [asyncio.create_task(drip(conn)) for conn in conns]
            latencies: list[float] = []
            while not all(task.done() for task in drips):
                latencies.append(await healthz(port))
                await asyncio.sleep(interval / 2)
            await asyncio.gather(*drips)
        finally:
            await close_all(conns)
        after = await healthz(port)

    assert refused == [408] * SLOWLORIS
    # Cut at the request timeout, counted from the first byte: not before, and not much after.
    assert min(lifetimes) >= timeout * 0.95
    assert max(lifetimes) < timeout + 3.0
    median = statistics.median(latencies)
    worst = max(latencies)
    assert median < HEALTHZ_BUDGET, latencies
    assert worst < 10 * HEALTHZ_BUDGET, latencies  # the machine is shared: one slow probe is ok
    within = sum(latency < HEALTHZ_BUDGET for latency in latencies)
    record(
        GROUP,
        f"Slowloris: {SLOWLORIS} connections sending a header one byte per {interval:g} s, "
        f"request timeout {timeout:g} s",
        SLOWLORIS,
        f"all got 408 request_timeout and a close after {min(lifetimes):.2f} to "
        f"{max(lifetimes):.2f} s; /healthz from another client meanwhile: {len(latencies)} "
        f"probes, median {median * 1000:.1f} ms, worst {worst * 1000:.1f} ms, "
        f"{within} within 100 ms; after: {after * 1000:.1f} ms",
    )


async def wait_until_served(port: int, deadline: float) -> float:
    """Seconds until a fresh client gets /healthz 200 again."""
    started = time.monotonic()
    while True:
        async with contextlib.AsyncExitStack() as stack:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            stack.push_async_callback(close_all, [(reader, writer)])
            writer.write(request("GET", "/healthz", headers="Connection: close\r\n"))
            if (await read_response(reader)).status == 200:
                return time.monotonic() - started
        if time.monotonic() - started > deadline:
            pytest.fail(f"/healthz still refused {deadline} s after the connections went")
        await asyncio.sleep(0.02)


async def test_idle_connections_beyond_the_cap_get_503_and_service_recovers(
    tmp_path: Path,
) -> None:
    cap = IDLE_LIMITS.max_connections
    assert cap < IDLE
    async with running(tmp_path, IDLE_LIMITS) as server:
        port = server.app.port
        began = time.monotonic()
        idle = await open_many(port, cap)
        try:
            # Connections are accepted in order, so the cap is full before any later one runs.
            extra = await open_many(port, IDLE - cap)
            busy = await asyncio.gather(*(read_response(reader) for reader, _ in extra))
            assert {(r.status, r.json()["error"]) for r in busy} == {(503, "service_unavailable")}
            assert all(r.headers["connection"] == "close" for r in busy)
            for reader, _ in extra:
                await assert_closed(reader)
            await close_all(extra)
            filled = time.monotonic() - began
            assert filled < IDLE_LIMITS.keepalive_timeout, "too slow to test the cap; machine busy?"
            # While the cap is full, /healthz is refused too, the same way.
            async with contextlib.AsyncExitStack() as stack:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                stack.push_async_callback(close_all, [(reader, writer)])
                writer.write(request("GET", "/healthz"))
                assert (await read_response(reader)).status == 503
        finally:
            await close_all(idle)
        # The clients go: service is back.
        back_after_close = await wait_until_served(port, 5.0)

        # Fill the cap again and let the server's keep-alive timer end them.
        idle = await open_many(port, cap)
        try:
            filled_at = time.monotonic()
            for reader, _ in idle:
                await assert_closed(reader)  # silently: no bytes at all
            dropped_after = time.monotonic() - filled_at
        finally:
            await close_all(idle)
        back_after_timeout = await wait_until_served(port, 5.0)
        assert dropped_after < IDLE_LIMITS.keepalive_timeout + 3.0
        # Full service again: the cap's worth of clients are all served.
        again = await open_many(port, cap)
        try:
            for _, writer in again:
                writer.write(request("GET", "/healthz"))
            served = await asyncio.gather(*(read_response(reader) for reader, _ in again))
            assert {r.status for r in served} == {200}
        finally:
            await close_all(again)
    record(
        GROUP,
        f"{IDLE} idle connections against a cap of {cap}",
        IDLE,
        f"{IDLE - cap} beyond the cap got 503 service_unavailable and a close; /healthz 503 "
        f"while full; {back_after_close * 1000:.0f} ms after the clients closed /healthz was "
        f"200 again; left open, the server closed them after {dropped_after:.1f} s "
        f"(keep-alive {IDLE_LIMITS.keepalive_timeout:g} s) and /healthz was 200 "
        f"{back_after_timeout * 1000:.0f} ms later; then {cap} new clients were all served",
    )
