"""Resource exhaustion over real sockets: slowloris, a flood of idle connections, and one
address trying to take every connection.

`make test` shrinks the server's limits (request timeout, connection caps) so these take seconds;
`make stress` (TFA_STRESS=1) uses the real ones: 300 slowloris connections against the 10 s
request timeout, 600 idle connections against the 512 cap, 300 from one address against its 64.
The crowds come from 50 loopback addresses (127.0.0.10 to .59, all local on Linux), as many
clients would; /healthz probes come from 127.0.0.1.
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
from .figures import STRESS, Figures, scaled
from .test_raw_http import Conn, assert_closed, healthz, read_response, request

GROUP = "Resource exhaustion"
# Bounded runs: the same shape, shorter clocks and a smaller cap.
SLOW_LIMITS = HttpLimits() if STRESS else HttpLimits(request_timeout=1.0, keepalive_timeout=2.0)
IDLE_LIMITS = HttpLimits() if STRESS else HttpLimits(keepalive_timeout=2.0, max_connections=24)
FLOOD_LIMITS = (
    HttpLimits()
    if STRESS
    else HttpLimits(keepalive_timeout=2.0, max_connections=24, max_connections_per_address=8)
)
SLOWLORIS = scaled(30, 300)
IDLE = scaled(36, 600)
FLOOD = scaled(20, 300)
CROWD = tuple(f"127.0.0.{n}" for n in range(10, 60))
ATTACKER = ("127.0.0.2",)
HEALTHZ_BUDGET = 0.1  # seconds: what a person or a load balancer would notice


@contextlib.asynccontextmanager
async def running(folder: Path, limits: HttpLimits) -> AsyncIterator[RunningServer]:
    server = await start_server(folder, limits=limits)
    try:
        yield server
    finally:
        await server.app.stop()


async def open_many(port: int, count: int, sources: tuple[str, ...] = CROWD) -> list[Conn]:
    """Opens ``count`` connections from ``sources`` in turn, in batches so the listen backlog is
    never the limit."""
    conns: list[Conn] = []
    while len(conns) < count:
        batch = range(len(conns), min(len(conns) + 50, count))
        conns += await asyncio.gather(
            *(
                asyncio.open_connection(
                    "127.0.0.1", port, local_addr=(sources[n % len(sources)], 0)
                )
                for n in batch
            )
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
    figures: Figures,
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
    figures.record(
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
    figures: Figures,
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
    figures.record(
        GROUP,
        f"{IDLE} idle connections against a cap of {cap}",
        IDLE,
        f"{IDLE - cap} beyond the cap got 503 service_unavailable and a close; /healthz 503 "
        f"while full; {back_after_close * 1000:.0f} ms after the clients closed /healthz was "
        f"200 again; left open, the server closed them after {dropped_after:.1f} s "
        f"(keep-alive {IDLE_LIMITS.keepalive_timeout:g} s) and /healthz was 200 "
        f"{back_after_timeout * 1000:.0f} ms later; then {cap} new clients were all served",
    )


@pytest.mark.finding("F09")
async def test_one_address_cannot_take_every_connection(tmp_path: Path, figures: Figures) -> None:
    share, cap = FLOOD_LIMITS.max_connections_per_address, FLOOD_LIMITS.max_connections
    assert share < FLOOD < cap
    async with running(tmp_path, FLOOD_LIMITS) as server:
        port = server.app.port
        held = await open_many(port, share, ATTACKER)
        try:
            for _, writer in held:  # requests that never end, as a slowloris sends
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: tfa.test\r\nX-Slow: ")
            extra = await open_many(port, FLOOD - share, ATTACKER)
            try:
                for _, writer in extra:
                    writer.write(request("GET", "/healthz"))
                busy = await asyncio.gather(*(read_response(reader) for reader, _ in extra))
            finally:
                await close_all(extra)
            assert {(r.status, r.json()["error"]) for r in busy} == {(503, "service_unavailable")}
            # Meanwhile everyone else gets the rest of the cap, and /healthz stays quick.
            latency = await healthz(port)
            others = await open_many(port, cap - share - 1)
            try:
                for _, writer in others:
                    writer.write(request("GET", "/healthz"))
                served = await asyncio.gather(*(read_response(reader) for reader, _ in others))
            finally:
                await close_all(others)
            assert {r.status for r in served} == {200}
        finally:
            await close_all(held)
    assert latency < 10 * HEALTHZ_BUDGET
    figures.record(
        GROUP,
        f"{FLOOD} connections from one address with partial requests, {share} allowed per"
        f" address, {cap} in all",
        FLOOD,
        f"{share} held, the other {FLOOD - share} got 503 service_unavailable; meanwhile"
        f" /healthz from another address took {latency * 1000:.1f} ms and {len(others)}"
        " connections from 50 other addresses were all served",
    )
