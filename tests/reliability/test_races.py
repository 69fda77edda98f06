"""Races over real sockets: one code spent by many requests at once, concurrent 2FA
confirmations, and the 2FA policy switched on while sign-ins are running.

Every race runs several rounds (`make test` a few, `make stress` many); the fake clock moves
between rounds, never inside one, so each round is the same race.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tfa_server.clock import rfc3339
from tfa_server.storage.database import Row

from ..conftest import (
    PASSWORD,
    RunningServer,
    bearer,
    enable_totp,
    login,
    sign_in_with_totp,
    start_server,
    totp_code,
)
from .figures import Figures, on_backend, scaled

GROUP = "Races"
T = TypeVar("T")
CONCURRENT = 50
CONFIRMS = 20
DAY = 86_400.0
# Plain HTTP, but httpx builds a TLS context per client (50 ms each) unless given one.
TLS = ssl.create_default_context()


@dataclass
class Bench:
    server: RunningServer
    client: httpx.AsyncClient
    crowd: list[httpx.AsyncClient]  # one client (and connection) per concurrent request


@asynccontextmanager
async def running(folder: Path, database_url: str | None) -> AsyncIterator[Bench]:
    """Separate clients rather than one pool of 50 connections: httpx's pool costs O(n) per
    request in its connection count, which would make the client, not the server, the test.
    On both backends (`database_url` is None for SQLite)."""
    server = await start_server(folder, db_url=database_url)
    try:
        async with AsyncExitStack() as stack:
            crowd = [
                await stack.enter_async_context(server.client(verify=TLS))
                for _ in range(CONCURRENT)
            ]
            yield Bench(server, crowd[0], crowd)
    finally:
        await server.app.stop()


def outcome(response: httpx.Response) -> tuple[int, str]:
    body = response.json() if response.content else {}
    return response.status_code, body.get("error") or body.get("status", "")


async def challenges(crowd: list[httpx.AsyncClient], name: str) -> list[str]:
    bodies = await asyncio.gather(*(login(client, name) for client in crowd))
    assert {body["status"] for body in bodies} == {"totp_required"}
    return [body["token"] for body in bodies]


async def query(server: RunningServer, sql: str, *params: Any) -> list[Row]:
    return await server.core.db.run(  # type: ignore[no-any-return]
        lambda conn: conn.execute(sql, params).fetchall()
    )


async def second_factor_rows(server: RunningServer, after_id: int) -> Counter[tuple[int, str]]:
    rows = await query(
        server,
        "SELECT success, reason FROM login_history WHERE event = 'second_factor' AND id > $1",
        after_id,
    )
    return Counter((row["success"], row["reason"] or "") for row in rows)


async def last_history_id(server: RunningServer) -> int:
    (row,) = await query(server, "SELECT COALESCE(MAX(id), 0) FROM login_history")
    return int(row[0])


# One code, many requests


async def test_same_totp_code_signs_in_exactly_once(
    tmp_path: Path, database_url: str | None, figures: Figures
) -> None:
    """50 challenges of one account submit the same right code at once: one session, 49
    code_reused, and the account is not throttled by the losers (a reused code is no guess)."""
    rounds = scaled(3, 40)
    async with running(tmp_path, database_url) as bench:
        server, client, crowd = bench.server, bench.client, bench.crowd
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]
        secret, _ = await enable_totp(client, token, server.clock)
        for round_ in range(rounds):
            tokens = await challenges(crowd, "alice")
            code = totp_code(secret, server.clock)
            mark = await last_history_id(server)
            responses = await asyncio.gather(
                *(
                    c.post("/api/v1/login/totp", headers=bearer(t), json={"code": code})
                    for c, t in zip(crowd, tokens, strict=True)
                )
            )
            outcomes = Counter(outcome(r) for r in responses)
            assert outcomes == {(200, "authenticated"): 1, (401, "code_reused"): 49}, round_
            (winner,) = [r.json() for r in responses if r.status_code == 200]
            me = await client.get("/api/v1/me", headers=bearer(winner["token"]))
            assert me.status_code == 200
            rows = await second_factor_rows(server, mark)
            assert rows == {(1, ""): 1, (0, "code_reused"): 49}, rows
            (state,) = await query(
                server, "SELECT failed_attempts, locked_until FROM users WHERE username = 'alice'"
            )
            assert (state[0], state[1]) == (0, None)
            server.clock.advance(30)
    figures.record(
        GROUP,
        f"{CONCURRENT} concurrent sign-ins of one account with the same right TOTP code,"
        f" {rounds} rounds" + on_backend(database_url),
        rounds * CONCURRENT,
        f"each round exactly 1 signed in and {CONCURRENT - 1} got 401 code_reused; the history"
        " holds 1 success and 49 code_reused per round; the account's failure count stayed 0",
    )


async def later(delay: float, call: Awaitable[T]) -> T:
    await asyncio.sleep(delay)
    return await call


async def test_one_totp_code_across_sign_in_and_reauthentication(
    tmp_path: Path, database_url: str | None, figures: Figures
) -> None:
    """The same code at once on challenges and on re-authentications (new recovery codes,
    password plus code) from a signed-in session, 40 and 10 or 10 and 40 alternately: one of
    the 50 wins, whichever."""
    rounds = scaled(3, 30)
    winners = Counter[str]()
    async with running(tmp_path, database_url) as bench:
        server, client, crowd = bench.server, bench.client, bench.crowd
        await server.add_user("alice")
        session = (await login(client, "alice"))["token"]
        secret, _ = await enable_totp(client, session, server.clock)
        for round_ in range(rounds):
            regenerators = 10 if round_ % 2 == 0 else 40
            signers, others = crowd[regenerators:], crowd[:regenerators]
            tokens = await challenges(signers, "alice")
            code = totp_code(secret, server.clock)
            mark = await last_history_id(server)
            reauth = {"password": PASSWORD, "code": code}
            # Sign-ins reach the account lock a storage round-trip sooner, so they always won;
            # odd rounds hold them back 20 ms, while the re-authentications still queue.
            lag = 0.0 if round_ % 2 == 0 else 0.02
            signing = [
                later(lag, c.post("/api/v1/login/totp", headers=bearer(t), json={"code": code}))
                for c, t in zip(signers, tokens, strict=True)
            ]
            regenerating = [
                c.post("/api/v1/me/recovery-codes", headers=bearer(session), json=reauth)
                for c in others
            ]
            responses = await asyncio.gather(*regenerating, *signing)
            outcomes = Counter(outcome(r) for r in responses)
            assert outcomes[(401, "code_reused")] == CONCURRENT - 1, (round_, outcomes)
            (won,) = [r for r in responses if r.status_code == 200]
            winners["sign-in" if "token" in won.json() else "new codes"] += 1
            rows = await query(
                server,
                "SELECT event, reason FROM login_history WHERE id > $1 AND success = 0",
                mark,
            )
            assert Counter(row["reason"] for row in rows) == {"code_reused": CONCURRENT - 1}
            (state,) = await query(
                server, "SELECT failed_attempts, locked_until FROM users WHERE username = 'alice'"
            )
            assert (state[0], state[1]) == (0, None)
            server.clock.advance(30)
    figures.record(
        GROUP,
        f"One TOTP code at once on {CONCURRENT} requests: sign-in challenges and"
        f" re-authentications (new recovery codes), 40 and 10 or 10 and 40, {rounds} rounds"
        + on_backend(database_url),
        rounds * CONCURRENT,
        f"each round exactly 1 accepted ({winners['sign-in']} rounds won by a sign-in,"
        f" {winners['new codes']} by a re-authentication) and {CONCURRENT - 1} got 401 code_reused;"
        " no failure counted against the account",
    )


async def test_same_recovery_code_works_exactly_once(
    tmp_path: Path, database_url: str | None, figures: Figures
) -> None:
    """50 challenges spend one recovery code at once; each round uses a fresh code (ten per
    account, then a new account)."""
    rounds = scaled(3, 40)
    async with running(tmp_path, database_url) as bench:
        server, client, crowd = bench.server, bench.client, bench.crowd
        codes: list[str] = []
        name = ""
        for round_ in range(rounds):
            if not codes:
                name = f"user{round_}"
                await server.add_user(name)
                token = (await login(client, name))["token"]
                _, codes = await enable_totp(client, token, server.clock)
            code = codes.pop()
            left_before = len(codes) + 1
            tokens = await challenges(crowd, name)
            mark = await last_history_id(server)
            # The same code in the spellings people type: any case, dashes or not.
            spellings = [code, code.lower(), code.replace("-", ""), code.replace("-", " ")]
            responses = await asyncio.gather(
                *(
                    c.post(
                        "/api/v1/login/recovery",
                        headers=bearer(t),
                        json={"code": spellings[i % len(spellings)]},
                    )
                    for i, (c, t) in enumerate(zip(crowd, tokens, strict=True))
                )
            )
            outcomes = Counter(outcome(r) for r in responses)
            assert outcomes == {(200, "authenticated"): 1, (401, "code_reused"): 49}, round_
            (winner,) = [r.json() for r in responses if r.status_code == 200]
            assert winner["recovery_codes_left"] == left_before - 1
            rows = await second_factor_rows(server, mark)
            assert rows == {(1, ""): 1, (0, "code_reused"): 49}, rows
            (spent,) = await query(
                server,
                "SELECT COUNT(*) FROM recovery_codes r JOIN users u ON u.id = r.user_id"
                " WHERE u.username = $1 AND r.used_at IS NOT NULL",
                name,
            )
            assert spent[0] == 10 - len(codes)
            server.clock.advance(30)
    figures.record(
        GROUP,
        f"{CONCURRENT} concurrent uses of one recovery code (mixed spellings), {rounds} rounds"
        + on_backend(database_url),
        rounds * CONCURRENT,
        f"each round exactly 1 signed in and {CONCURRENT - 1} got 401 code_reused; exactly one"
        " row marked used per round; codes left went down by one",
    )


# Confirming 2FA


async def test_concurrent_confirms_leave_one_secret_and_one_set(
    tmp_path: Path, database_url: str | None, figures: Figures
) -> None:
    """20 sessions of one person confirm the same pending setup with the same code at once."""
    rounds = scaled(3, 30)
    async with running(tmp_path, database_url) as bench:
        server, client, crowd = bench.server, bench.client, bench.crowd
        for round_ in range(rounds):
            name = f"user{round_}"
            await server.add_user(name)
            sessions = [
                body["token"]
                for body in await asyncio.gather(*(login(c, name) for c in crowd[:CONFIRMS]))
            ]
            setup = await client.post("/api/v1/me/totp/setup", headers=bearer(sessions[0]))
            secret = setup.json()["secret"]
            code = totp_code(secret, server.clock)
            responses = await asyncio.gather(
                *(
                    c.post("/api/v1/me/totp/confirm", headers=bearer(t), json={"code": code})
                    for c, t in zip(crowd, sessions, strict=False)
                )
            )
            statuses = Counter(r.status_code for r in responses)
            assert statuses == {200: 1, 409: CONFIRMS - 1}, (round_, statuses)
            assert {r.json()["error"] for r in responses if r.status_code == 409} == {"conflict"}
            (winner,) = [r.json()["recovery_codes"] for r in responses if r.status_code == 200]

            (user_id,) = await query(server, "SELECT id FROM users WHERE username = $1", name)
            uid = user_id[0]
            (active,) = await query(
                server, "SELECT COUNT(*) FROM totp_secrets WHERE user_id = $1", uid
            )
            (pending,) = await query(
                server, "SELECT COUNT(*) FROM pending_totp_secrets WHERE user_id = $1", uid
            )
            (stored,) = await query(
                server, "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1", uid
            )
            (enabled,) = await query(
                server,
                "SELECT COUNT(*) FROM login_history WHERE user_id = $1 AND event = 'totp_enabled'",
                uid,
            )
            assert (active[0], pending[0], stored[0], enabled[0]) == (1, 0, 10, 1)

            # The codes that came back are the stored set, and the secret is the one set up.
            server.clock.advance(30)
            first = await login(client, name)
            assert first["status"] == "totp_required"
            used = await client.post(
                "/api/v1/login/recovery", headers=bearer(first["token"]), json={"code": winner[3]}
            )
            assert used.status_code == 200, used.text
            assert used.json()["recovery_codes_left"] == 9
            again = await login(client, name)
            signed = await client.post(
                "/api/v1/login/totp",
                headers=bearer(again["token"]),
                json={"code": totp_code(secret, server.clock)},
            )
            assert signed.status_code == 200, signed.text
            server.clock.advance(30)
    figures.record(
        GROUP,
        f"{CONFIRMS} concurrent /me/totp/confirm of one setup from {CONFIRMS} sessions,"
        f" {rounds} rounds" + on_backend(database_url),
        rounds * CONFIRMS,
        f"each round 1 confirmed and {CONFIRMS - 1} got 409 conflict; afterwards one active"
        " secret, no pending one, 10 stored codes (the ones returned: one signs in) and one"
        " totp_enabled history row",
    )


# Forcing 2FA while people sign in


@dataclass
class Attempt:
    user: str
    after_switch: bool
    status: str
    token: str


@dataclass
class Switch:
    done: asyncio.Event  # set once the policy change has returned
    attempts: list[Attempt]


async def sign_in_loop(
    client: httpx.AsyncClient, name: str, switch: Switch, after_each: int
) -> None:
    """Sign in again and again until `after_each` sign-ins started after the switch."""
    done_after = 0
    while done_after < after_each:
        after = switch.done.is_set()
        response = await client.post("/api/v1/login", json={"username": name, "password": PASSWORD})
        assert response.status_code == 200, response.text
        body = response.json()
        switch.attempts.append(Attempt(name, after, body["status"], body["token"]))
        done_after += after


async def switch_on(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    body: dict[str, Any],
    delay: float,
    switch: Switch,
    server: RunningServer,
) -> float:
    await asyncio.sleep(delay)
    response = await client.put("/api/v1/admin/policy", headers=headers, json=body)
    assert response.status_code == 200, response.text
    switch.done.set()
    return server.clock.now()


async def test_forcing_2fa_applies_to_every_sign_in_that_starts_after_it(
    tmp_path: Path,
    database_url: str | None,
    figures: Figures,
) -> None:
    """Sign-ins run in a loop while an administrator switches force-2FA on. Every sign-in
    that starts once the switch has returned obeys it; sessions from before are held to the
    setup once the grace is over. Rounds alternate grace 0 (enrol now) and 7 days."""
    rounds = scaled(3, 30)
    people = 12
    after_each = scaled(3, 6)  # sign-ins per person that start after the switch
    checked = Counter[str]()
    async with running(tmp_path, database_url) as bench:
        server, client, crowd = bench.server, bench.client, bench.crowd
        await server.add_user("root", admin=True)
        root_secret, _ = await enable_totp(
            client, (await login(client, "root"))["token"], server.clock
        )
        enrolled = "carol"
        await server.add_user(enrolled)
        carol = (await login(client, enrolled))["token"]
        await enable_totp(client, carol, server.clock)
        for round_ in range(rounds):
            grace = 0 if round_ % 2 == 0 else 7
            # A fresh administrator session: the clock may have moved days.
            root = (await sign_in_with_totp(client, "root", root_secret, server.clock))["token"]
            names = [f"r{round_}p{i}" for i in range(people)]
            for name in names:
                await server.add_user(name)
            off = await client.put(
                "/api/v1/admin/policy",
                headers=bearer(root),
                json={"force_2fa": False, "grace_period_days": grace},
            )
            assert off.status_code == 200
            veterans = {name: (await login(client, name))["token"] for name in names[:3]}
            switch = Switch(asyncio.Event(), [])
            loops = [
                sign_in_loop(crowd[1 + i], name, switch, after_each)
                for i, name in enumerate([*names, enrolled])
            ]
            put = {"force_2fa": True, "grace_period_days": grace}
            delay = 0.01 * (round_ % 5)  # land at different points of the loops
            switched_at, *_ = await asyncio.gather(
                switch_on(client, bearer(root), put, delay, switch, server), *loops
            )
            assert switched_at is not None
            attempts = switch.attempts

            deadline = switched_at + grace * DAY
            for attempt in attempts:
                if not attempt.after_switch:
                    continue
                if attempt.user == enrolled:
                    assert attempt.status == "totp_required"
                    checked["2fa"] += 1
                    continue
                me = await client.get("/api/v1/me", headers=bearer(attempt.token))
                assert me.status_code == 200, me.text
                if grace == 0:
                    assert attempt.status == "enrollment_required", attempt
                    history = await client.get("/api/v1/me/history", headers=bearer(attempt.token))
                    assert history.status_code == 403
                    assert history.json()["error"] == "enrollment_required"
                    checked["enrol"] += 1
                else:
                    assert attempt.status == "authenticated", attempt
                    assert me.json()["enrollment_deadline"] == rfc3339(deadline)
                    assert deadline > server.clock.now()
                    checked["grace"] += 1
                policy = me.json()["policy"]
                assert policy["force_2fa"] is True

            # Sessions from before the switch: held to the setup once the grace is over (at
            # once with grace 0), full within it; their holders' next sign-in obeys too.
            for name, token in veterans.items():
                history = await client.get("/api/v1/me/history", headers=bearer(token))
                if grace == 0:
                    assert history.status_code == 403, (name, history.text)
                    assert history.json()["error"] == "enrollment_required"
                else:
                    assert history.status_code == 200, (name, history.text)
                again = await login(client, name)
                assert again["status"] == ("enrollment_required" if grace == 0 else "authenticated")
                checked["veteran"] += 1
            if grace:
                server.clock.advance(deadline - server.clock.now())
                assert (await login(client, names[0]))["status"] == "enrollment_required"
            server.clock.advance(30)
    assert checked["enrol"]
    assert checked["grace"]
    figures.record(
        GROUP,
        f"Force 2FA switched on while {people + 1} people sign in in a loop (grace 0 and 7"
        f" days alternately), {rounds} rounds" + on_backend(database_url),
        sum(checked.values()),
        f"every sign-in started after the switch returned obeyed it: {checked['enrol']}"
        f" enrollment_required (the token opens only enrollment), {checked['grace']}"
        f" authenticated with an enrollment deadline inside the grace period,"
        f" {checked['2fa']} totp_required; never a plain full session; {checked['veteran']}"
        " sessions from before the switch were held to the setup with grace 0 and kept"
        " working within a grace period, and their holders' next sign-in obeyed the policy",
    )


async def signing_in(
    http: httpx.AsyncClient, name: str, done: asyncio.Event
) -> list[tuple[bool, httpx.Response]]:
    """Four sign-ins, each marked with whether the disable had returned when it started."""
    answers = []
    for _ in range(4):
        after = done.is_set()
        body = {"username": name, "password": PASSWORD}
        answers.append((after, await http.post("/api/v1/login", json=body)))
    return answers


async def disable_after(
    client: httpx.AsyncClient, root: dict[str, str], name: str, delay: float, done: asyncio.Event
) -> None:
    await asyncio.sleep(delay)
    answer = await client.post(f"/api/v1/admin/users/{name}/disable", headers=root)
    assert answer.status_code == 200, answer.text
    done.set()


async def test_disabling_ends_every_session_even_those_signing_in_at_that_moment(
    tmp_path: Path, database_url: str | None, figures: Figures
) -> None:
    """Many sign-ins of one account run while an administrator disables it: once the disable
    has returned, no session of that account works (those issued a moment before included)
    and every sign-in that starts after it is refused with account_disabled."""
    rounds = scaled(3, 20)
    seen = Counter[str]()
    async with running(tmp_path, database_url) as bench:
        server, client, crowd = bench.server, bench.client, bench.crowd
        await server.add_user("root", admin=True)
        root = bearer((await login(client, "root"))["token"])
        for round_ in range(rounds):
            name = f"d{round_}"
            await server.add_user(name)
            done = asyncio.Event()
            disable = disable_after(client, root, name, 0.1 * (round_ % 3), done)
            _, *batches = await asyncio.gather(
                disable, *(signing_in(http, name, done) for http in crowd[1:21])
            )
            for after, response in (pair for batch in batches for pair in batch):
                if response.status_code == 200:
                    assert not after, "a sign-in that started after the disable succeeded"
                    me = await client.get("/api/v1/me", headers=bearer(response.json()["token"]))
                    assert me.status_code == 401, me.text
                    seen["session issued before, ended"] += 1
                else:
                    assert outcome(response) == (403, "account_disabled"), response.text
                    seen["refused"] += 1
    assert seen["refused"]
    figures.record(
        GROUP,
        f"{rounds} rounds: 20 clients sign in to one account 4 times each while an administrator"
        " disables it" + on_backend(database_url),
        sum(seen.values()),
        f"{seen['session issued before, ended']} sessions issued just before the disable all"
        f" ended with it; {seen['refused']} sign-ins refused with account_disabled; none"
        " succeeded after it returned",
    )
