"""Throttling: account locks, unknown names, the per-address limit, unlock, and its arithmetic."""

from __future__ import annotations

import asyncio
import io
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tfa_server import cli
from tfa_server.clock import rfc3339
from tfa_server.config import PasswordHashing, ThrottleRules
from tfa_server.throttle import ThrottleState, address_retry_after, after_failure

from .conftest import (
    PASSWORD,
    FakeClock,
    RunningServer,
    bearer,
    enable_totp,
    gather,
    login,
    start_server,
    totp_code,
)

LOGIN = "/api/v1/login"
LOGIN_TOTP = "/api/v1/login/totp"
LOGIN_RECOVERY = "/api/v1/login/recovery"
WRONG_PASSWORD = "not the password"
RULES = ThrottleRules()


# Helpers


def error(response: httpx.Response) -> str:
    return response.json()["error"]  # type: ignore[no-any-return]


async def attempt(
    client: httpx.AsyncClient, name: str, password: str = WRONG_PASSWORD
) -> httpx.Response:
    return await client.post(LOGIN, json={"username": name, "password": password})


async def fail(client: httpx.AsyncClient, name: str, times: int) -> None:
    for _ in range(times):
        response = await attempt(client, name)
        assert response.status_code == 401, response.text
        assert error(response) == "invalid_credentials"


def assert_locked(response: httpx.Response, seconds: int) -> None:
    assert response.status_code == 429, response.text
    assert error(response) == "too_many_attempts"
    assert response.headers["Retry-After"] == str(seconds)


def wrong_code(secret: str, clock: FakeClock) -> str:
    near = {totp_code(secret, clock, offset) for offset in range(-12, 13)}
    return next(code for n in range(10) if (code := str(n) * 6) not in near)


async def two_factor_user(
    server: RunningServer, client: httpx.AsyncClient, name: str
) -> tuple[str, list[str], str]:
    await server.add_user(name)
    token = (await login(client, name))["token"]
    secret, codes = await enable_totp(client, token, server.clock)
    return secret, codes, token


async def challenge(client: httpx.AsyncClient, name: str) -> str:
    body = await login(client, name)
    assert body["status"] == "totp_required"
    return body["token"]  # type: ignore[no-any-return]


async def submit(client: httpx.AsyncClient, path: str, token: str, code: str) -> httpx.Response:
    return await client.post(path, headers=bearer(token), json={"code": code})


@asynccontextmanager
async def server_with(
    folder: Path, database_url: str | None, **overrides: Any
) -> AsyncIterator[tuple[RunningServer, httpx.AsyncClient]]:
    """A server with settings of its own, on SQLite or the PostgreSQL at `database_url`."""
    running = await start_server(folder, db_url=database_url, **overrides)
    try:
        async with running.client() as client:
            yield running, client
    finally:
        await running.app.stop()


# Per account


class TestAccountLock:
    async def test_lock_starts_at_30_s_doubles_and_stops_at_15_min(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        await fail(client, "alice", 5)
        assert_locked(await attempt(client, "alice", PASSWORD), 30)
        server.clock.advance(10)
        assert_locked(await attempt(client, "alice", PASSWORD), 20)
        server.clock.advance(21)
        for lock in (60, 120, 240, 480, 900, 900):
            await fail(client, "alice", 1)
            assert_locked(await attempt(client, "alice", PASSWORD), lock)
            server.clock.advance(lock + 1)
        assert (await login(client, "alice"))["status"] == "authenticated"

    async def test_success_resets_the_count(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        for _ in range(2):
            await fail(client, "alice", 4)
            assert (await login(client, "alice"))["status"] == "authenticated"
        await fail(client, "alice", 5)
        assert_locked(await attempt(client, "alice", PASSWORD), 30)  # the base lock again

    async def test_throttled_attempts_are_recorded(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        await fail(client, "alice", 5)
        for password in (PASSWORD, WRONG_PASSWORD):
            assert_locked(await attempt(client, "alice", password), 30)
        server.clock.advance(31)
        token = (await login(client, "alice"))["token"]
        history = await client.get("/api/v1/me/history", headers=bearer(token))
        throttled = [item for item in history.json()["items"] if item["reason"] == "throttled"]
        assert [item["count"] for item in throttled] == [2]  # counted, not written twice
        for item in throttled:
            assert (item["event"], item["success"], item["method"]) == (
                "password",
                False,
                "password",
            )
            assert (item["ip"], item["client"]) == ("127.0.0.1", "tfa-tests/1.0")

    async def test_throttled_password_step_does_not_extend_the_lock(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """Refused attempts are not evaluated, so hammering a locked account changes nothing."""
        await server.add_user("alice")
        await fail(client, "alice", 5)
        for _ in range(5):
            assert_locked(await attempt(client, "alice"), 30)
        server.clock.advance(31)
        assert (await login(client, "alice"))["status"] == "authenticated"

    async def test_wrong_codes_count_and_a_right_password_does_not_reset_them(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        secret, codes, _ = await two_factor_user(server, client, "bob")
        bad = wrong_code(secret, server.clock)
        first = await challenge(client, "bob")
        for path, code in (
            (LOGIN_TOTP, bad),
            (LOGIN_TOTP, bad),
            (LOGIN_RECOVERY, "ZZZZ-ZZZZ-ZZZZ"),
            (LOGIN_TOTP, bad),
        ):
            response = await submit(client, path, first, code)
            assert response.status_code == 401
            assert error(response) == "invalid_code"
        second = await challenge(client, "bob")  # right password, code still pending
        response = await submit(client, LOGIN_TOTP, second, bad)
        assert error(response) == "invalid_code"
        right = totp_code(secret, server.clock)
        assert_locked(await submit(client, LOGIN_TOTP, second, right), 30)
        assert_locked(await submit(client, LOGIN_RECOVERY, second, codes[0]), 30)
        assert_locked(await attempt(client, "bob", PASSWORD), 30)
        server.clock.advance(31)
        signed = await submit(client, LOGIN_TOTP, second, totp_code(secret, server.clock))
        assert signed.status_code == 200

    async def test_reauthentication_failures_count(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        secret, codes, token = await two_factor_user(server, client, "dan")
        clock = server.clock
        right = totp_code(secret, clock)
        bad = wrong_code(secret, clock)
        for method, path, password, code, expected in (
            ("DELETE", "/api/v1/me/totp", WRONG_PASSWORD, right, "invalid_credentials"),
            ("DELETE", "/api/v1/me/totp", PASSWORD, bad, "invalid_code"),
            ("POST", "/api/v1/me/recovery-codes", WRONG_PASSWORD, right, "invalid_credentials"),
            ("POST", "/api/v1/me/recovery-codes", PASSWORD, "ZZZZ-ZZZZ-ZZZZ", "invalid_code"),
        ):
            response = await client.request(
                method, path, headers=bearer(token), json={"password": password, "code": code}
            )
            assert response.status_code == 401, (path, expected)
            assert error(response) == expected
        await fail(client, "dan", 1)  # the fifth failure, through the front door
        regenerate = {"password": PASSWORD, "code": right}
        assert_locked(
            await client.post("/api/v1/me/recovery-codes", headers=bearer(token), json=regenerate),
            30,
        )
        assert_locked(
            await client.request(
                "DELETE", "/api/v1/me/totp", headers=bearer(token), json=regenerate
            ),
            30,
        )
        assert_locked(await attempt(client, "dan", PASSWORD), 30)
        clock.advance(31)
        regenerate["code"] = totp_code(secret, clock)
        response = await client.post(
            "/api/v1/me/recovery-codes", headers=bearer(token), json=regenerate
        )
        assert response.status_code == 200
        assert set(response.json()["recovery_codes"]).isdisjoint(codes)

    async def test_wrong_reauthentication_codes_alone_lock_the_account(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        secret, _, token = await two_factor_user(server, client, "dana")
        bad = wrong_code(secret, server.clock)
        for _ in range(5):
            response = await client.post(
                "/api/v1/me/recovery-codes",
                headers=bearer(token),
                json={"password": PASSWORD, "code": bad},
            )
            assert error(response) == "invalid_code"
        assert_locked(await attempt(client, "dana", PASSWORD), 30)


# No enumeration through lockout


async def test_unknown_names_lock_exactly_like_real_ones(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    await server.add_user("alice")
    await server.add_user("root", admin=True)
    root = (await login(client, "root"))["token"]
    outcomes = []
    for name in ("alice", "ghost"):
        failures = [await attempt(client, name) for _ in range(5)]
        locked = await attempt(client, name, PASSWORD)
        assert_locked(locked, 30)
        outcomes.append(
            (
                [(r.status_code, r.json()) for r in failures],
                locked.json(),
                locked.headers["Retry-After"],
            )
        )
    assert outcomes[0] == outcomes[1]
    assert (await attempt(client, "ghost2")).status_code == 401  # each name on its own
    server.clock.advance(31)
    for name in ("alice", "ghost"):
        await fail(client, name, 1)
        assert_locked(await attempt(client, name), 60)

    admin = await client.get(
        "/api/v1/admin/history", params={"username": "ghost"}, headers=bearer(root)
    )
    items = admin.json()["items"]
    throttled = [item["count"] for item in items if item["reason"] == "throttled"]
    assert sum(throttled) == 2  # both refusals fall in one minute: one row counts them
    assert not any(item["known_user"] for item in items)
    assert [item["reason"] for item in items].count("unknown_user") == 6


@pytest.mark.finding("F03")
async def test_known_and_unknown_names_forget_failures_alike(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    """Four failures on each name; alice signs in some time that day; a day later a fifth
    failure locks neither. With a count that never decays for unknown names, `ghost` would
    lock and `alice` (whose sign-in reset hers) would not: waiting would tell them apart."""
    await server.add_user("alice")
    for name in ("alice", "ghost"):
        await fail(client, name, 4)
    server.clock.advance(3600)
    await login(client, "alice")
    server.clock.advance(RULES.failure_memory - 3600)
    outcomes = {}
    for name in ("alice", "ghost"):
        await fail(client, name, 1)
        outcomes[name] = [(r.status_code, r.json()) for r in [await attempt(client, name)]]
    assert outcomes["alice"] == outcomes["ghost"] == [(401, outcomes["alice"][0][1])]
    assert outcomes["alice"][0][1]["error"] == "invalid_credentials"


# Per client address


async def history_rows(server: RunningServer) -> list[tuple[str, str | None, int]]:
    rows = await server.core.db.run(
        lambda conn: conn.execute(
            "SELECT username, reason, count FROM login_history ORDER BY id"
        ).fetchall()
    )
    return [(str(name), reason, int(count)) for name, reason, count in rows]


@pytest.mark.finding("F08")
async def test_a_flood_of_refusals_writes_a_bounded_history(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    """Once the address is throttled, each further refusal is counted into one row per
    account (or one for all unknown names) and minute: 400 refusals, four rows."""
    await server.add_user("alice")
    for index in range(RULES.ip_max_failures):
        assert (await attempt(client, f"probe{index}")).status_code == 401
    before = len(await history_rows(server))
    for minute in range(2):
        names = [f"spray{minute}-{index}" for index in range(100)] + ["alice"] * 100
        answers = []
        for start in range(0, len(names), 20):  # in parallel, below the per-address cap
            answers += await gather(*(attempt(client, name) for name in names[start : start + 20]))
        assert {answer.status_code for answer in answers} == {429}
        server.clock.advance(60)
    added = (await history_rows(server))[before:]
    assert len(added) == 4, added
    assert sorted(added) == sorted(
        [("(unknown names)", "throttled", 100), ("alice", "throttled", 100)] * 2
    )


async def test_address_limit_spans_accounts_and_slides(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    """18 failures on 6 real accounts, 12 on unknown names 5 minutes later: the 31st attempt,
    on any account, is refused until the first 18 leave the 10-minute window."""
    for i in range(7):
        await server.add_user(f"user{i}")
    for i in range(6):
        await fail(client, f"user{i}", 3)
    server.clock.advance(300)
    for i in range(12):
        await fail(client, f"stranger{i}", 1)
    assert_locked(await attempt(client, "stranger99"), 300)
    assert_locked(await attempt(client, "user6", PASSWORD), 300)
    server.clock.advance(301)
    assert (await login(client, "user6"))["status"] == "authenticated"
    for i in range(18):
        await fail(client, f"late{i}", 1)
    # 12 failures from t+300 and 18 from t+601 are in the window: full again.
    assert_locked(await attempt(client, "user6", PASSWORD), 299)


async def test_address_limit_clears_after_ten_minutes(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    await server.add_user("alice")
    for i in range(31):
        response = await attempt(client, f"name{i}")
        assert response.status_code == (401 if i < 30 else 429), i
    assert_locked(await attempt(client, "alice", PASSWORD), 600)
    server.clock.advance(601)
    assert (await login(client, "alice"))["status"] == "authenticated"


# Administrator unlock


async def test_admin_unlock_clears_the_lock_and_is_audited(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    await server.add_user("alice")
    await server.add_user("root", admin=True)
    root = (await login(client, "root"))["token"]
    await fail(client, "alice", 5)
    assert_locked(await attempt(client, "alice", PASSWORD), 30)

    listing = await client.get("/api/v1/admin/users", headers=bearer(root))
    (row,) = [user for user in listing.json()["items"] if user["username"] == "alice"]
    assert row["locked_until"] == rfc3339(server.clock.now() + 30)
    assert row["failed_attempts"] == 5

    alice = await client.post("/api/v1/admin/users/alice/unlock", headers=bearer(root))
    assert alice.status_code == 200
    assert alice.json()["locked_until"] is None
    assert alice.json()["failed_attempts"] == 0
    alice_token = (await login(client, "alice"))["token"]

    audit = await client.get("/api/v1/admin/audit", headers=bearer(root))
    entry = audit.json()["items"][0]
    assert (entry["action"], entry["target"]) == ("user_unlocked", "alice")
    assert entry["actor"] == "root"
    assert entry["detail"] == {"failed_attempts": 5}
    assert (entry["ip"], entry["client"]) == ("127.0.0.1", "tfa-tests/1.0")

    missing = await client.post("/api/v1/admin/users/nobody/unlock", headers=bearer(root))
    assert missing.status_code == 404
    assert error(missing) == "not_found"
    not_admin = await client.post("/api/v1/admin/users/alice/unlock", headers=bearer(alice_token))
    assert not_admin.status_code == 403
    assert error(not_admin) == "forbidden"


# Timing

# Costly enough that a skipped hash would stand out from the ~10 ms a request costs anyway
# (the suite's FAST_HASHING takes under 1 ms, which would hide it); cheap enough for the suite.
TIMING_HASHING = PasswordHashing(memory_kib=8 * 1024, time_cost=1, parallelism=1)


def add_user_on_the_console(server: RunningServer, name: str) -> None:
    """`tfa-server user add NAME --password-stdin`, with the hashing settings `serve` has, in
    the environment as an operator would set them."""
    hashing = server.settings.passwords
    env = {
        "TFA_ARGON2_MEMORY_KIB": str(hashing.memory_kib),
        "TFA_ARGON2_TIME_COST": str(hashing.time_cost),
        "TFA_ARGON2_PARALLELISM": str(hashing.parallelism),
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        patch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
        db = str(server.settings.db_path)
        assert cli.main(["user", "add", name, "--password-stdin", "--db", db]) == 0


@pytest.mark.parametrize(
    "created_by",
    ["api", pytest.param("console", marks=pytest.mark.finding("F02"))],
)
async def test_unknown_user_takes_as_long_as_a_wrong_password(
    tmp_path: Path, created_by: str
) -> None:
    """The server verifies a dummy hash for unknown names. Limits are raised so every attempt
    reaches the hash; the two kinds are interleaved so drift hits both alike. Non-default
    settings, so an account hashed on the console with the defaults would stand out."""
    rules = ThrottleRules(account_free_failures=10_000, ip_max_failures=10_000)
    server = await start_server(tmp_path, passwords=TIMING_HASHING, throttle=rules)
    try:
        if created_by == "api":
            await server.add_user("alice")
        else:
            await asyncio.to_thread(add_user_on_the_console, server, "alice")
        client = server.client()
        known: list[float] = []
        unknown: list[float] = []

        async def timed(name: str) -> float:
            started = time.perf_counter()
            response = await attempt(client, name)
            elapsed = time.perf_counter() - started
            assert response.status_code == 401
            return elapsed

        for _ in range(3):  # warm-up: connection, statement cache
            await timed("alice")
            await timed("ghost")
        for _ in range(30):
            known.append(await timed("alice"))
            unknown.append(await timed("ghost"))
        await client.aclose()
    finally:
        await server.app.stop()
    fast, slow = sorted((statistics.median(known), statistics.median(unknown)))
    assert slow / fast <= 1.25, (statistics.median(known), statistics.median(unknown))


# The arithmetic, directly


class TestAfterFailure:
    def test_default_schedule(self) -> None:
        state = ThrottleState()
        locks = []
        for _ in range(12):
            state = after_failure(state, 1000.0, RULES)
            locks.append(state.retry_after(1000.0))
        assert locks == [None] * 4 + [30, 60, 120, 240, 480, 900, 900, 900]
        assert state.failures == 12

    def test_lock_runs_from_the_latest_failure(self) -> None:
        state = ThrottleState(failures=5, locked_until=1030.0, last_failure_at=1000.0)
        later = after_failure(state, 5000.0, RULES)
        assert later == ThrottleState(6, 5060.0, 5000.0)
        assert later.retry_after(5060.0) is None
        assert later.retry_after(5059.5) == 0.5

    @pytest.mark.finding("F03")
    def test_a_quiet_day_forgets_the_failures(self) -> None:
        state = ThrottleState()
        for _ in range(4):
            state = after_failure(state, 1000.0, RULES)
        day = RULES.failure_memory
        assert state.current_failures(1000.0 + day - 1, RULES) == 4
        assert state.current_failures(1000.0 + day, RULES) == 0
        assert after_failure(state, 1000.0 + day - 1, RULES).retry_after(1000.0 + day - 1) == 30
        assert after_failure(state, 1000.0 + day, RULES) == ThrottleState(1, None, 1000.0 + day)

    @given(
        free=st.integers(1, 10),
        base=st.integers(1, 120),
        extra=st.integers(0, 7200),
        failures=st.integers(1, 80),
        now=st.integers(0, 2_000_000_000),
    )
    def test_lock_is_capped_and_never_shrinks(
        self, free: int, base: int, extra: int, failures: int, now: int
    ) -> None:
        rules = ThrottleRules(
            account_free_failures=free, account_base_lock=base, account_max_lock=base + extra
        )
        state = ThrottleState()
        previous = 0.0
        for count in range(1, failures + 1):
            state = after_failure(state, float(now), rules)
            lock = state.retry_after(float(now)) or 0.0
            assert state.failures == count
            assert lock <= rules.account_max_lock
            assert lock >= previous
            assert (lock > 0) == (count >= free)
            previous = lock


class TestAddressWindow:
    @given(
        offsets=st.lists(st.integers(0, 1500), max_size=90),
        later=st.integers(0, 900),
    )
    def test_counts_failures_inside_the_sliding_window(
        self, offsets: list[int], later: int
    ) -> None:
        """The arithmetic of the per-address limit over the failures the database returns
        (tests/test_shared_throttles.py checks the rows themselves on both backends)."""
        times = [float(at) for at in sorted(offsets)]
        now = (times[-1] if times else 0.0) + later
        recent = [at for at in times if at > now - RULES.ip_window]
        wait = address_retry_after(times, now, RULES)
        assert address_retry_after([], now, RULES) is None
        if len(recent) < RULES.ip_max_failures:
            assert wait is None
            return
        assert wait == recent[len(recent) - RULES.ip_max_failures] + RULES.ip_window - now
        assert wait >= 1
        assert address_retry_after(times, now + wait - 0.5, RULES) is not None
        assert address_retry_after(times, now + wait, RULES) is None


@pytest.mark.parametrize("free", [1, 3])
async def test_custom_rules_are_honoured(
    tmp_path: Path, database_url: str | None, free: int
) -> None:
    rules = ThrottleRules(account_free_failures=free, account_base_lock=7, account_max_lock=10)
    async with server_with(tmp_path, database_url, throttle=rules) as (server, client):
        await server.add_user("alice")
        await fail(client, "alice", free)
        assert_locked(await attempt(client, "alice", PASSWORD), 7)
        server.clock.advance(8)
        await fail(client, "alice", 1)
        assert_locked(await attempt(client, "alice", PASSWORD), 10)
