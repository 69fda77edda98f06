"""Brute force over real sockets from 20 source addresses (127.0.0.2 to 127.0.0.21): wrong
passwords and wrong codes against one account, a password spray across many accounts, and
the timing of an unknown name against a wrong password.

Time moves on the fake clock in ticks between waves of guesses, so a run covers hours of an
attacker's time in seconds. What the server evaluated is counted from the login history, not
from the responses (a refusal and a failed guess can look alike to the client).
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx

from tfa_server.config import PasswordHashing, ThrottleRules
from tfa_server.storage.database import Connection, Row

from ..conftest import (
    PASSWORD,
    FakeClock,
    RunningServer,
    bearer,
    enable_totp,
    login,
    start_server,
    totp_code,
)
from .figures import Figures, on_backend, scaled

GROUP = "Brute force"
RULES = ThrottleRules()
ADDRESSES = [f"127.0.0.{n}" for n in range(2, 22)]
WRONG_PASSWORD = "not the password"
TLS = ssl.create_default_context()  # plain HTTP; saves httpx building one per client


# The rules, written out independently of tfa_server.throttle


def lock_after(failures: int) -> float:
    """Seconds an account is locked after its `failures`-th consecutive failure."""
    over = failures - RULES.account_free_failures
    if over < 0:
        return 0.0
    return min(RULES.account_base_lock * 2.0**over, RULES.account_max_lock)


def account_model(ticks: Sequence[float]) -> int:
    """How many guesses one account lets through when plenty arrive at each tick time."""
    failures, locked_until = 0, float("-inf")
    for now in ticks:
        while locked_until <= now:
            failures += 1
            lock = lock_after(failures)
            locked_until = now + lock if lock else locked_until
    return failures


def assert_account_schedule(times: Sequence[float]) -> None:
    """Consecutive evaluated failures of one account are at least its lock apart."""
    for count, (earlier, later) in enumerate(pairwise(times), start=1):
        assert later - earlier >= lock_after(count), (count, earlier, later)


def assert_address_window(times: Sequence[float]) -> None:
    """At most ip_max_failures evaluated failures per address in any window."""
    limit = RULES.ip_max_failures
    for i in range(limit, len(times)):
        assert times[i] - times[i - limit] >= RULES.ip_window, (i, times[i - limit], times[i])


# Attackers


@dataclass
class Attacker:
    address: str
    client: httpx.AsyncClient
    responses: list[httpx.Response] = field(default_factory=list)


@asynccontextmanager
async def attacked(
    folder: Path, database_url: str | None = None, **overrides: Any
) -> AsyncIterator[tuple[RunningServer, list[Attacker]]]:
    """The server on SQLite, or on the PostgreSQL database at `database_url`."""
    server = await start_server(folder, db_url=database_url, **overrides)
    try:
        async with AsyncExitStack() as stack:
            attackers = []
            for address in ADDRESSES:
                transport = httpx.AsyncHTTPTransport(local_address=address, verify=TLS)
                client = await stack.enter_async_context(server.client(transport=transport))
                attackers.append(Attacker(address, client))
            yield server, attackers
    finally:
        await server.app.stop()


async def query(server: RunningServer, sql: str, *params: Any) -> list[Row]:
    return await server.core.db.run(  # type: ignore[no-any-return]
        lambda conn: conn.execute(sql, params).fetchall()
    )


async def guess(client: httpx.AsyncClient, name: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/login", json={"username": name, "password": password})


def kinds(responses: Sequence[httpx.Response]) -> Counter[tuple[int, str]]:
    return Counter((r.status_code, r.json()["error"]) for r in responses)


def assert_retry_after(responses: Sequence[httpx.Response], longest: float) -> list[int]:
    waits = [int(r.headers["Retry-After"]) for r in responses if r.status_code == 429]
    assert all(1 <= wait <= longest for wait in waits), (min(waits), max(waits))
    return waits


async def history_by(
    server: RunningServer, event: str, where: str = "TRUE", *params: Any
) -> list[Row]:
    """History rows of one event; `where` numbers its parameters from $2."""
    sql = "SELECT at, ip, reason, success, username, count FROM login_history WHERE event = $1 AND "
    return await query(server, sql + where + " ORDER BY id", event, *params)


def weighted(rows: Sequence[Row], column: str) -> Counter[str]:
    """Attempts by a column's value: a row of refusals while throttled stands for `count`."""
    counted: Counter[str] = Counter()
    for row in rows:
        counted[row[column]] += row["count"]
    return counted


def assert_refusals_counted(rows: Sequence[Row], minutes: int) -> int:
    """Refusals while throttled take one row per address, name and minute, never more."""
    refused = [row for row in rows if row["reason"] == "throttled"]
    keys = Counter((row["ip"], row["username"], int(row["at"] // 60)) for row in refused)
    assert all(times == 1 for times in keys.values()), keys.most_common(3)
    assert len(refused) <= minutes * len(ADDRESSES) * max(1, len({r["username"] for r in rows}))
    return len(refused)


# One account, wrong passwords


async def test_wrong_passwords_against_one_account(
    tmp_path: Path, database_url: str | None, figures: Figures
) -> None:
    ticks = scaled(20, 100)
    per_tick = scaled(2, 5)  # per address per tick
    step = 60.0
    total = ticks * len(ADDRESSES) * per_tick
    async with attacked(tmp_path, database_url) as (server, attackers):
        await server.add_user("alice")
        start = server.clock.now()
        tick_times = []

        async def wave(attacker: Attacker) -> None:
            for _ in range(per_tick):
                attacker.responses.append(await guess(attacker.client, "alice", WRONG_PASSWORD))

        for _ in range(ticks):
            tick_times.append(server.clock.now())
            await asyncio.gather(*(wave(attacker) for attacker in attackers))
            server.clock.advance(step)

        responses = [r for attacker in attackers for r in attacker.responses]
        seen = kinds(responses)
        assert set(seen) <= {(401, "invalid_credentials"), (429, "too_many_attempts")}, seen
        waits = assert_retry_after(responses, RULES.account_max_lock)

        rows = await history_by(server, "password", "username = 'alice'")
        assert sum(row["count"] for row in rows) == total
        assert weighted(rows, "reason") == Counter(
            bad_password=seen[(401, "invalid_credentials")],
            throttled=seen[(429, "too_many_attempts")],
        )
        assert weighted(rows, "ip") == dict.fromkeys(ADDRESSES, ticks * per_tick)
        refusal_rows = assert_refusals_counted(rows, ticks)
        evaluated = [row["at"] for row in rows if row["reason"] == "bad_password"]
        assert_account_schedule(evaluated)
        assert len(evaluated) == account_model(tick_times)
        for address in ADDRESSES:
            assert_address_window(
                [r["at"] for r in rows if r["ip"] == address and r["reason"] == "bad_password"]
            )

        # The owner gets in once the last lock has run out, and the lock was at its cap.
        (state,) = await query(server, "SELECT locked_until FROM users WHERE username = 'alice'")
        if state[0] and state[0] > server.clock.now():
            locked = await guess(attackers[0].client, "alice", PASSWORD)
            assert locked.status_code == 429
            server.clock.advance(state[0] - server.clock.now())
        assert (await login(attackers[0].client, "alice"))["status"] == "authenticated"
    hours = (tick_times[-1] - start) / 3600
    figures.record(
        GROUP,
        f"{total:,} wrong passwords against one account from {len(ADDRESSES)} addresses"
        f" (127.0.0.2-21), {per_tick * len(ADDRESSES)} every {step:g} s of clock"
        f" over {hours:.1f} h" + on_backend(database_url),
        total,
        f"{len(evaluated)} evaluated (the history's bad_password rows; the rules allow exactly"
        f" that many in this time: 5, then one per lock of 30 s doubling to 15 min);"
        f" {total - len(evaluated):,} refused with 429 and Retry-After {min(waits)} to"
        f" {max(waits)} s, counted into {refusal_rows} 'throttled' history rows (one per address"
        " and minute, with its source address and how many); the owner"
        " signed in once the lock ran out",
    )


# One account, wrong codes


def wrong_code(secret: str, clock: FakeClock) -> str:
    near = {totp_code(secret, clock, offset) for offset in range(-2, 3)}
    while (code := f"{secrets.randbelow(1_000_000):06d}") in near:
        pass
    return code


async def test_wrong_codes_against_one_account(
    tmp_path: Path, database_url: str | None, figures: Figures
) -> None:
    """The attacker knows the password and guesses codes: each address holds a challenge and
    signs in again whenever it ends (five codes, or five minutes)."""
    ticks = scaled(20, 100)
    per_tick = scaled(2, 5)  # codes per address per tick; at least 2, see the model
    step = 60.0
    total = ticks * len(ADDRESSES) * per_tick
    async with attacked(tmp_path, database_url) as (server, attackers):
        clock = server.clock
        await server.add_user("bob")
        owner = attackers[0].client
        secret, _ = await enable_totp(owner, (await login(owner, "bob"))["token"], clock)
        mark = (await query(server, "SELECT MAX(id) FROM login_history"))[0][0]
        tokens = [(await login(a.client, "bob"))["token"] for a in attackers]
        tick_times = []
        logins: Counter[int] = Counter()

        # A challenge is kept after invalid_code and dropped when it has ended; while the
        # account is locked the attacker keeps sending codes on the ended one.
        async def wave_keeping(index: int, attacker: Attacker) -> None:
            for _ in range(per_tick):
                if not tokens[index]:
                    response = await guess(attacker.client, "bob", PASSWORD)
                    logins[response.status_code] += 1
                    if response.status_code == 200:
                        tokens[index] = response.json()["token"]
                    else:
                        assert response.status_code == 429
                        tokens[index] = ended[index]
                response = await attacker.client.post(
                    "/api/v1/login/totp",
                    headers=bearer(tokens[index]),
                    json={"code": wrong_code(secret, clock)},
                )
                attacker.responses.append(response)
                if response.json().get("error") == "challenge_expired":
                    ended[index] = tokens[index]
                    tokens[index] = ""

        ended = list(tokens)
        for _ in range(ticks):
            tick_times.append(clock.now())
            await asyncio.gather(*(wave_keeping(i, a) for i, a in enumerate(attackers)))
            clock.advance(step)

        responses = [r for attacker in attackers for r in attacker.responses]
        assert len(responses) == total
        seen = kinds(responses)
        assert set(seen) <= {
            (401, "invalid_code"),
            (401, "challenge_expired"),
            (429, "too_many_attempts"),
        }, seen
        waits = assert_retry_after(responses, RULES.account_max_lock)

        rows = await history_by(server, "second_factor", "id > $2", mark)
        # Every code request, evaluated or refused, is recorded (refusals counted per minute).
        assert sum(row["count"] for row in rows) == total
        reasons = weighted(rows, "reason")
        assert set(reasons) <= {"bad_code", "throttled", "expired_challenge"}, reasons
        assert reasons["throttled"] == seen[(429, "too_many_attempts")]
        assert weighted(rows, "ip") == dict.fromkeys(ADDRESSES, ticks * per_tick)
        assert_refusals_counted(rows, ticks)
        evaluated = [row["at"] for row in rows if row["reason"] == "bad_code"]
        assert_account_schedule(evaluated)
        assert len(evaluated) == account_model(tick_times)
        for address in ADDRESSES:
            assert_address_window(
                [r["at"] for r in rows if r["ip"] == address and r["reason"] == "bad_code"]
            )
        password_rows = await history_by(server, "password", "id > $2", mark)
        assert weighted(password_rows, "reason") == {
            "totp_required": len(ADDRESSES) + logins[200],
            "throttled": logins[429],
        }

        # Per challenge: at most 5 codes evaluated, and a challenge that used them all ended.
        attempts = await query(
            server, "SELECT attempts, revoked_at FROM sessions WHERE kind = 'challenge'"
        )
        assert max(row["attempts"] for row in attempts) <= RULES.challenge_attempts
        assert all(
            row["revoked_at"] is not None
            for row in attempts
            if row["attempts"] == RULES.challenge_attempts
        )
        challenges = len(attempts)
    hours = (tick_times[-1] - tick_times[0]) / 3600
    figures.record(
        GROUP,
        f"{total:,} wrong TOTP codes against one account (password known) from"
        f" {len(ADDRESSES)} addresses, {per_tick * len(ADDRESSES)} every {step:g} s of clock"
        f" over {hours:.1f} h, signing in again whenever a challenge ended"
        + on_backend(database_url),
        total,
        f"{len(evaluated)} codes evaluated (history bad_code rows; exactly what the account"
        f" lock allows); {reasons['throttled']:,} refused with 429 (Retry-After {min(waits)}"
        f" to {max(waits)} s) and {reasons['expired_challenge']:,} on ended challenges, all in"
        f" the history; {challenges} challenges, none with more than"
        f" {RULES.challenge_attempts} code attempts; {logins[429]:,} password steps refused"
        " while locked",
    )


# Many accounts, wrong passwords


async def test_password_spray_across_accounts(
    tmp_path: Path, database_url: str | None, figures: Figures
) -> None:
    """Each address sprays one wrong password every 15 s (10 s under stress), each at the
    next account: the per-address limit (30 failures per 10 minutes) is what stops it."""
    accounts = scaled(150, 500)  # 150 or more: no account reaches 5 failures in 10 minutes
    waves = scaled(50, 250)  # bounded: the first 10 minutes and 150 s of the window sliding
    step = scaled(15, 10)  # faster than 30 per 10 minutes
    total = waves * len(ADDRESSES)
    async with attacked(tmp_path, database_url) as (server, attackers):
        clock = server.clock
        digest = server.core.passwords.hash_sync(PASSWORD)

        def _create(conn: Connection) -> None:
            with conn.transaction():
                conn.executemany(
                    "INSERT INTO users (username, password_hash, is_admin, created_at)"
                    " VALUES ($1, $2, 0, $3)",
                    [(f"user{n}", digest, clock.now()) for n in range(accounts)],
                )

        await server.core.db.run(_create)
        start = clock.now()

        async def one(index: int, attacker: Attacker, target: int) -> None:
            name = f"user{target % accounts}"
            attacker.responses.append(await guess(attacker.client, name, WRONG_PASSWORD))

        for wave in range(waves):
            await asyncio.gather(
                *(
                    one(i, attacker, wave * len(ADDRESSES) + i)
                    for i, attacker in enumerate(attackers)
                )
            )
            clock.advance(step)

        responses = [r for attacker in attackers for r in attacker.responses]
        seen = kinds(responses)
        assert set(seen) <= {(401, "invalid_credentials"), (429, "too_many_attempts")}, seen
        waits = assert_retry_after(responses, RULES.ip_window)

        rows = await history_by(server, "password")
        assert sum(row["count"] for row in rows) == total
        assert weighted(rows, "reason") == Counter(
            bad_password=seen[(401, "invalid_credentials")],
            throttled=seen[(429, "too_many_attempts")],
        )
        per_address: dict[str, list[float]] = defaultdict(list)
        per_account: dict[str, list[float]] = defaultdict(list)
        for row in rows:
            assert row["ip"] in ADDRESSES
            if row["reason"] == "bad_password":
                per_address[row["ip"]].append(row["at"])
                per_account[row["username"]].append(row["at"])
        for times in per_address.values():
            assert_address_window(times)
            # In the first ten minutes nothing but the address limit applies: exactly 30.
            assert sum(at < start + RULES.ip_window for at in times) == RULES.ip_max_failures
        for times in per_account.values():
            assert_account_schedule(times)
        evaluated = sum(len(times) for times in per_address.values())
        minutes = (clock.now() - start) / 60
        ceiling = len(ADDRESSES) * RULES.ip_max_failures * -(-minutes // 10)
        assert evaluated <= ceiling
    figures.record(
        GROUP,
        f"Password spray: {total:,} wrong passwords across {accounts} accounts from"
        f" {len(ADDRESSES)} addresses, each address one every {step:g} s over"
        f" {minutes:.0f} min of clock" + on_backend(database_url),
        total,
        f"{evaluated:,} evaluated (history bad_password rows), never more than"
        f" {RULES.ip_max_failures} per address in any 10 minutes (exactly 30 each in the"
        f" first 10); {total - evaluated:,} refused with 429 (Retry-After {min(waits)} to"
        f" {max(waits)} s), each a 'throttled' history row with its source address",
    )


# Timing: unknown name against wrong password


async def test_unknown_user_and_wrong_password_take_the_same_time(
    tmp_path: Path, figures: Figures
) -> None:
    """On SQLite only: what it measures is the dummy hash, which the backend does not change,
    and a run on PostgreSQL would double its seconds and its exposure to a noisy machine.
    Production Argon2 parameters and throttling; the clock jumps past every lock between
    tries, so each try reaches the hash. Tries come in adjacent pairs (ABBA order), and what
    is compared is the median of each pair's ratio: load from other processes (the suite runs
    on more workers than cores) moves both halves of a pair alike, where medians taken apart
    let a busy stretch land on one side. A noisy machine gets up to three measurements; a
    real difference (a skipped hash is 40 ms against 1 ms) fails all three."""
    tries = scaled(30, 200)
    jump = RULES.account_max_lock + 1  # past any account, name and address lock
    async with attacked(tmp_path, passwords=PasswordHashing()) as (server, attackers):
        await server.add_user("alice")
        client = attackers[0].client

        bodies = set()

        async def timed(name: str) -> float:
            started = time.perf_counter()
            response = await guess(client, name, WRONG_PASSWORD)
            elapsed = time.perf_counter() - started
            assert response.status_code == 401, response.text
            bodies.add(response.content)
            server.clock.advance(jump)
            return elapsed

        for _ in range(3):  # warm-up: connection, statement cache, thread pools
            await timed("alice")
            await timed("ghost")
        measurements: list[tuple[float, float, float]] = []
        for _ in range(3):
            known: list[float] = []
            unknown: list[float] = []
            for n in range(tries):
                order = ("alice", "ghost") if n % 2 == 0 else ("ghost", "alice")
                for name in order:
                    (known if name == "alice" else unknown).append(await timed(name))
            ratio = statistics.median(u / k for k, u in zip(known, unknown, strict=True))
            measurements.append((statistics.median(known), statistics.median(unknown), ratio))
            if max(ratio, 1 / ratio) <= 1.10:
                break
        assert len(bodies) == 1  # the same status and body for both
        known_ms, unknown_ms, ratio = measurements[-1]
        known_ms, unknown_ms = 1000 * known_ms, 1000 * unknown_ms
        assert max(ratio, 1 / ratio) <= 1.10, measurements
        history = await history_by(server, "password")
        assert Counter(row["reason"] for row in history) == {
            "bad_password": 3 + tries * len(measurements),
            "unknown_user": 3 + tries * len(measurements),
        }
    figures.record(
        GROUP,
        f"Unknown name against wrong password, {tries} tries each interleaved, production"
        " Argon2id (m=19 MiB, t=2, p=1)",
        2 * tries * len(measurements),
        f"median {known_ms:.1f} ms for a wrong password and {unknown_ms:.1f} ms for an"
        f" unknown name (median of paired ratios {100 * (ratio - 1):+.1f} %, limit 10 %);"
        f" same status and body; {len(measurements)} measurement(s) needed",
    )
