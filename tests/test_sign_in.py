"""Signing in against the real server: password step, TOTP, recovery codes, races, history."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tfa_server.clock import rfc3339
from tfa_server.config import PasswordHashing, ThrottleRules, TotpRules
from tfa_server.totp import code_at, matching_step

from .conftest import (
    PASSWORD,
    FakeClock,
    RunningServer,
    bearer,
    enable_totp,
    gather,
    login,
    sign_in_with_totp,
    start_server,
    totp_code,
)

LOGIN = "/api/v1/login"
LOGIN_TOTP = "/api/v1/login/totp"
LOGIN_RECOVERY = "/api/v1/login/recovery"
ME = "/api/v1/me"
HISTORY = "/api/v1/me/history"
CLIENT = "tfa-tests/1.0"
WRONG_PASSWORD = "not the password"


# Helpers


def error(response: httpx.Response) -> str:
    return response.json()["error"]  # type: ignore[no-any-return]


def wrong_code(secret: str, clock: FakeClock) -> str:
    """Six digits that are no code of this secret anywhere near now."""
    near = {totp_code(secret, clock, offset) for offset in range(-12, 13)}
    return next(code for n in range(10) if (code := str(n) * 6) not in near)


async def two_factor_user(
    server: RunningServer, client: httpx.AsyncClient, name: str
) -> tuple[str, list[str], str]:
    """A user with TOTP on: (secret, recovery codes, the full token used to set it up)."""
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


async def history(client: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    response = await client.get(HISTORY, params={"limit": 200}, headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


def summary(items: list[dict[str, Any]]) -> list[tuple[str, bool, str | None, str | None]]:
    return [(item["event"], item["success"], item["method"], item["reason"]) for item in items]


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


# The password step


class TestPasswordStep:
    async def test_user_without_2fa_gets_a_full_session(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        body = await login(client, "alice")
        assert body["status"] == "authenticated"
        assert body["expires_at"] == rfc3339(server.clock.now() + 12 * 3600)
        me = await client.get(ME, headers=bearer(body["token"]))
        assert me.status_code == 200
        assert me.json()["username"] == "alice"
        assert me.json()["totp_enabled"] is False
        assert body["user"] == me.json()
        sessions = await client.get("/api/v1/me/sessions", headers=bearer(body["token"]))
        assert sessions.status_code == 200

    async def test_username_is_case_insensitive(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("Alice")
        for spelling in ("alice", "ALICE", "aLiCe"):
            body = await login(client, spelling)
            assert body["status"] == "authenticated"
            assert body["user"]["username"] == "alice"

    async def test_user_with_2fa_gets_a_challenge_that_opens_nothing_else(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        secret, _, _ = await two_factor_user(server, client, "carol")
        body = await login(client, "carol")
        assert body["status"] == "totp_required"
        assert body["expires_at"] == rfc3339(server.clock.now() + 300)
        token = body["token"]
        reauth = {"password": PASSWORD, "code": totp_code(secret, server.clock)}
        for method, path, payload in [
            ("GET", ME, None),
            ("GET", HISTORY, None),
            ("GET", "/api/v1/me/sessions", None),
            ("POST", "/api/v1/me/totp/setup", None),
            ("DELETE", "/api/v1/me/totp", reauth),
            ("POST", "/api/v1/me/recovery-codes", reauth),
            ("POST", "/api/v1/logout", None),
            ("GET", "/api/v1/admin/policy", None),
        ]:
            response = await client.request(method, path, headers=bearer(token), json=payload)
            assert response.status_code == 401, (method, path)
            assert error(response) == "unauthorized", (method, path)

        signed = await submit(client, LOGIN_TOTP, token, totp_code(secret, server.clock))
        assert signed.status_code == 200
        me = await client.get(ME, headers=bearer(signed.json()["token"]))
        assert signed.json()["user"] == me.json()
        assert me.json()["totp_enabled"] is True

    @pytest.mark.finding("F04")
    async def test_the_password_alone_reveals_nothing_but_the_username(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """Last sign-in, role, codes left and failures come only after the second factor."""
        await server.add_user("carol", admin=True)
        token = (await login(client, "carol"))["token"]
        secret, _ = await enable_totp(client, token, server.clock)
        await sign_in_with_totp(client, "carol", secret, server.clock)
        await client.post(LOGIN, json={"username": "carol", "password": "wrong password"})
        body = await login(client, "carol")
        assert body["status"] == "totp_required"
        assert body["user"] == {"username": "carol"}
        assert set(body) == {"status", "token", "expires_at", "user"}

    async def test_unknown_user_and_wrong_password_look_the_same(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        answers = [
            await client.post(LOGIN, json={"username": name, "password": WRONG_PASSWORD})
            for name in ("alice", "nobody", "no such user!")
        ]
        for response in answers:
            assert response.status_code == 401
            assert error(response) == "invalid_credentials"
        assert answers[0].json() == answers[1].json() == answers[2].json()
        assert sorted(answers[0].headers) == sorted(answers[1].headers)

    @pytest.mark.parametrize(
        "raw",
        [
            b'{"username": "alice"}',
            b'{"password": "correct horse battery"}',
            b'{"username": "alice", "password": "correct horse battery", "remember": true}',
            b'{"username": 5, "password": "correct horse battery"}',
            b'{"username": "alice", "password": null}',
            b'{"username": ["alice"], "password": "correct horse battery"}',
            b'{"username": "alice", "password": true}',
            b'{"username": "alice", "password": ',
            b"",
            b"\xff\xfe",
            b"[]",
            b'"alice"',
            b"null",
            b"42",
        ],
    )
    async def test_malformed_bodies_are_invalid_requests(
        self, server: RunningServer, client: httpx.AsyncClient, raw: bytes
    ) -> None:
        await server.add_user("alice")
        response = await client.post(
            LOGIN, content=raw, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400
        assert error(response) == "invalid_request"

    @pytest.mark.parametrize(
        "content_type", ["text/plain", "application/x-www-form-urlencoded", None]
    )
    async def test_non_json_body_is_unsupported_media_type(
        self, server: RunningServer, client: httpx.AsyncClient, content_type: str | None
    ) -> None:
        await server.add_user("alice")
        headers = {"Content-Type": content_type} if content_type else {}
        response = await client.post(
            LOGIN,
            content=b'{"username": "alice", "password": "correct horse battery"}',
            headers=headers,
        )
        assert response.status_code == 415
        assert error(response) == "unsupported_media_type"
        assert (await login(client, "alice"))["status"] == "authenticated"


# The TOTP step


class TestTotpStep:
    async def test_right_code_signs_in_and_spends_the_challenge(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        secret, _, _ = await two_factor_user(server, client, "dave")
        token = await challenge(client, "dave")
        response = await submit(client, LOGIN_TOTP, token, totp_code(secret, server.clock))
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "authenticated"
        assert body["token"] != token
        assert body["expires_at"] == rfc3339(server.clock.now() + 12 * 3600)
        assert "recovery_codes_left" not in body
        me = await client.get(ME, headers=bearer(body["token"]))
        assert me.status_code == 200
        assert me.json()["totp_enabled"] is True
        # A still-valid newer code does not revive the spent challenge.
        again = await submit(client, LOGIN_TOTP, token, totp_code(secret, server.clock, 1))
        assert again.status_code == 401
        assert error(again) == "challenge_expired"
        by_recovery = await submit(client, LOGIN_RECOVERY, token, "ABCD-EFGH-JKMN")
        assert error(by_recovery) == "challenge_expired"

    async def test_code_as_apps_show_it_with_a_space_works(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        secret, _, _ = await two_factor_user(server, client, "dora")
        code = totp_code(secret, server.clock)
        token = await challenge(client, "dora")
        response = await submit(client, LOGIN_TOTP, token, f"{code[:3]} {code[3:]}")
        assert response.status_code == 200

    @pytest.mark.parametrize("kind", ["wrong_digits", "too_short", "letters"])
    async def test_wrong_code_is_refused_and_the_challenge_stays_usable(
        self, server: RunningServer, client: httpx.AsyncClient, kind: str
    ) -> None:
        secret, _, _ = await two_factor_user(server, client, "eve")
        token = await challenge(client, "eve")
        bad = {"wrong_digits": wrong_code(secret, server.clock), "too_short": "12345"}.get(
            kind, "abcdef"
        )
        response = await submit(client, LOGIN_TOTP, token, bad)
        assert response.status_code == 401
        assert error(response) == "invalid_code"
        right = await submit(client, LOGIN_TOTP, token, totp_code(secret, server.clock))
        assert right.status_code == 200

    async def test_codes_one_step_either_side_are_accepted(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        secret, _, _ = await two_factor_user(server, client, "erin")
        server.clock.advance(60)  # the previous step is now newer than the confirming one
        for offset in (-1, 1):
            token = await challenge(client, "erin")
            response = await submit(
                client, LOGIN_TOTP, token, totp_code(secret, server.clock, offset)
            )
            assert response.status_code == 200, offset

    async def test_codes_two_steps_away_are_refused(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        secret, _, _ = await two_factor_user(server, client, "finn")
        server.clock.advance(300)
        for offset in (-2, 2):
            token = await challenge(client, "finn")
            response = await submit(
                client, LOGIN_TOTP, token, totp_code(secret, server.clock, offset)
            )
            assert response.status_code == 401, offset
            assert error(response) == "invalid_code"

    async def test_same_code_on_a_new_challenge_is_reused(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        secret, _, _ = await two_factor_user(server, client, "gail")
        code = totp_code(secret, server.clock)
        first = await submit(client, LOGIN_TOTP, await challenge(client, "gail"), code)
        assert first.status_code == 200
        token = await challenge(client, "gail")
        reused = await submit(client, LOGIN_TOTP, token, code)
        assert reused.status_code == 401
        assert error(reused) == "code_reused"
        server.clock.advance(30)
        fresh = await submit(client, LOGIN_TOTP, token, totp_code(secret, server.clock))
        assert fresh.status_code == 200

    @pytest.mark.finding("F14")
    async def test_the_code_that_confirmed_the_setup_cannot_sign_in(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """RFC 6238 5.2 from the first code on: confirming spends its step like a sign-in."""
        await server.add_user("iris")
        token = (await login(client, "iris"))["token"]
        setup = await client.post("/api/v1/me/totp/setup", headers=bearer(token))
        secret = setup.json()["secret"]
        code = totp_code(secret, server.clock)
        confirm = await client.post(
            "/api/v1/me/totp/confirm", headers=bearer(token), json={"code": code}
        )
        assert confirm.status_code == 200, confirm.text
        challenge_token = await challenge(client, "iris")
        for offset in (0, -1):
            reused = await submit(
                client, LOGIN_TOTP, challenge_token, totp_code(secret, server.clock, offset)
            )
            assert reused.status_code == 401, offset
            assert error(reused) == "code_reused", offset
        ahead = await submit(
            client, LOGIN_TOTP, challenge_token, totp_code(secret, server.clock, 1)
        )
        assert ahead.status_code == 200, ahead.text

    async def test_code_older_than_the_last_accepted_is_reused(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        secret, _, _ = await two_factor_user(server, client, "hugo")
        ahead = await submit(
            client, LOGIN_TOTP, await challenge(client, "hugo"), totp_code(secret, server.clock, 1)
        )
        assert ahead.status_code == 200
        token = await challenge(client, "hugo")
        for offset in (0, -1):  # both in the window, both at or before the accepted step
            response = await submit(
                client, LOGIN_TOTP, token, totp_code(secret, server.clock, offset)
            )
            assert response.status_code == 401, offset
            assert error(response) == "code_reused"

    async def test_challenge_lives_five_minutes(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        secret, _, _ = await two_factor_user(server, client, "iris")
        token = await challenge(client, "iris")
        server.clock.advance(299)
        assert (
            await submit(client, LOGIN_TOTP, token, totp_code(secret, server.clock))
        ).status_code == 200
        server.clock.advance(30)
        token = await challenge(client, "iris")
        server.clock.advance(301)
        late = await submit(client, LOGIN_TOTP, token, totp_code(secret, server.clock))
        assert late.status_code == 401
        assert error(late) == "challenge_expired"

    async def test_five_wrong_codes_end_the_challenge(
        self, tmp_path: Path, database_url: str | None
    ) -> None:
        """The account limit is raised here so that only the per-challenge limit acts."""
        rules = ThrottleRules(account_free_failures=50)
        async with server_with(tmp_path, database_url, throttle=rules) as (server, client):
            secret, codes, _ = await two_factor_user(server, client, "jack")
            token = await challenge(client, "jack")
            bad = wrong_code(secret, server.clock)
            for _ in range(4):
                response = await submit(client, LOGIN_TOTP, token, bad)
                assert error(response) == "invalid_code"
            fifth = await submit(client, LOGIN_TOTP, token, bad)
            assert fifth.status_code == 401
            assert error(fifth) == "challenge_expired"
            for path, code in (
                (LOGIN_TOTP, totp_code(secret, server.clock)),
                (LOGIN_RECOVERY, codes[0]),
            ):
                dead = await submit(client, path, token, code)
                assert dead.status_code == 401
                assert error(dead) == "challenge_expired"
            fresh = await challenge(client, "jack")
            signed = await submit(client, LOGIN_TOTP, fresh, totp_code(secret, server.clock))
            assert signed.status_code == 200


# Recovery codes


class TestRecoveryCodes:
    async def test_each_code_works_once_in_any_spelling(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        _, codes, _ = await two_factor_user(server, client, "kate")
        spellings = [
            codes[0].lower(),
            codes[1].replace("-", " "),
            " " + codes[2].replace("-", "").lower() + " ",
        ]
        for left, spelling in zip((9, 8, 7), spellings, strict=True):
            response = await submit(
                client, LOGIN_RECOVERY, await challenge(client, "kate"), spelling
            )
            assert response.status_code == 200, spelling
            body = response.json()
            assert body["status"] == "authenticated"
            assert body["recovery_codes_left"] == left
            me = await client.get(ME, headers=bearer(body["token"]))
            assert me.json()["recovery_codes_left"] == left
        token = await challenge(client, "kate")
        for spelling in (codes[0], codes[1].lower()):
            again = await submit(client, LOGIN_RECOVERY, token, spelling)
            assert again.status_code == 401
            assert error(again) == "code_reused"

    async def test_codes_that_were_never_issued_are_invalid(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        _, codes, _ = await two_factor_user(server, client, "liam")
        token = await challenge(client, "liam")
        issued = {code.replace("-", "") for code in codes}
        unissued = next(c for c in ("ABCDEFGHJKMN", "ZZZZZZZZZZZZ") if c not in issued)
        for garbage in ("not-a-code", unissued, "123456", "0OIL-0OIL-0OIL"):
            response = await submit(client, LOGIN_RECOVERY, token, garbage)
            assert response.status_code == 401, garbage
            assert error(response) == "invalid_code"
        right = await submit(client, LOGIN_RECOVERY, token, codes[5])
        assert right.status_code == 200
        assert right.json()["recovery_codes_left"] == 9


# Concurrency


class TestRaces:
    async def test_fifty_sign_ins_with_one_totp_code_exactly_one_wins(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        secret, _, _ = await two_factor_user(server, client, "mona")
        logins = await gather(
            *(
                client.post(LOGIN, json={"username": "mona", "password": PASSWORD})
                for _ in range(50)
            )
        )
        tokens = [response.json()["token"] for response in logins]
        assert {response.json()["status"] for response in logins} == {"totp_required"}
        assert len(set(tokens)) == 50
        code = totp_code(secret, server.clock)
        answers = await gather(*(submit(client, LOGIN_TOTP, token, code) for token in tokens))
        assert sorted(response.status_code for response in answers) == [200] + [401] * 49
        assert {error(r) for r in answers if r.status_code == 401} == {"code_reused"}

    async def test_fifty_sign_ins_with_one_recovery_code_exactly_one_wins(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        _, codes, _ = await two_factor_user(server, client, "nate")
        logins = await gather(
            *(
                client.post(LOGIN, json={"username": "nate", "password": PASSWORD})
                for _ in range(50)
            )
        )
        tokens = [response.json()["token"] for response in logins]
        assert len(set(tokens)) == 50
        answers = await gather(
            *(submit(client, LOGIN_RECOVERY, token, codes[3]) for token in tokens)
        )
        assert sorted(response.status_code for response in answers) == [200] + [401] * 49
        assert {error(r) for r in answers if r.status_code == 401} == {"code_reused"}
        (winner,) = [r for r in answers if r.status_code == 200]
        assert winner.json()["recovery_codes_left"] == 9

    async def test_twenty_concurrent_confirms_turn_2fa_on_once(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("olga")
        token = (await login(client, "olga"))["token"]
        setup = await client.post("/api/v1/me/totp/setup", headers=bearer(token))
        secret = setup.json()["secret"]
        code = totp_code(secret, server.clock)
        answers = await gather(
            *(
                client.post("/api/v1/me/totp/confirm", headers=bearer(token), json={"code": code})
                for _ in range(20)
            )
        )
        assert sorted(response.status_code for response in answers) == [200] + [409] * 19
        assert {error(r) for r in answers if r.status_code == 409} == {"conflict"}
        (winner,) = [r for r in answers if r.status_code == 200]
        codes = winner.json()["recovery_codes"]
        assert len(set(codes)) == 10
        me = (await client.get(ME, headers=bearer(token))).json()
        assert me["totp_enabled"] is True
        assert me["recovery_codes_left"] == 10
        server.clock.advance(30)
        signed = await submit(client, LOGIN_RECOVERY, await challenge(client, "olga"), codes[9])
        assert signed.status_code == 200
        assert signed.json()["recovery_codes_left"] == 9


# Logout


@pytest.mark.finding("F02")
async def test_a_hash_on_old_settings_is_replaced_at_the_next_right_password(
    tmp_path: Path, database_url: str | None
) -> None:
    """An account hashed with other Argon2 settings (older defaults, another command) costs
    what the current settings say once its owner signs in; a wrong password changes nothing."""
    old = PasswordHashing(memory_kib=2048, time_cost=1, parallelism=1)
    new = PasswordHashing(memory_kib=4096, time_cost=2, parallelism=1)
    first = await start_server(tmp_path, db_url=database_url, passwords=old)
    await first.add_user("alice")
    await first.app.stop()
    running = await start_server(tmp_path, db_url=database_url, passwords=new)
    try:

        async def stored() -> str:
            row = await running.core.db.run(
                lambda conn: conn.execute("SELECT password_hash FROM users").fetchone()
            )
            return str(row[0])

        assert "m=2048,t=1,p=1" in await stored()
        async with running.client() as client:
            wrong = await client.post(LOGIN, json={"username": "alice", "password": "wrong!!!!"})
            assert wrong.status_code == 401
            assert "m=2048,t=1,p=1" in await stored()
            assert (await login(client, "alice"))["status"] == "authenticated"
            assert "m=4096,t=2,p=1" in await stored()
            assert (await login(client, "alice"))["status"] == "authenticated"
    finally:
        await running.app.stop()


@pytest.mark.finding("F15")
@pytest.mark.parametrize("scheme", ["Basic", "Token", "Bearer:", "Digest", "BearerX"])
async def test_only_the_bearer_scheme_carries_a_token(
    server: RunningServer, client: httpx.AsyncClient, scheme: str
) -> None:
    """A valid token under another scheme is no token: sessions and challenges alike."""
    secret, _, full = await two_factor_user(server, client, "otto")
    assert (await client.get("/api/v1/me", headers=bearer(full))).status_code == 200
    response = await client.get("/api/v1/me", headers={"Authorization": f"{scheme} {full}"})
    assert response.status_code == 401
    assert error(response) == "unauthorized"
    token = await challenge(client, "otto")
    wrong_scheme = await client.post(
        LOGIN_TOTP,
        headers={"Authorization": f"{scheme} {token}"},
        json={"code": totp_code(secret, server.clock)},
    )
    assert wrong_scheme.status_code == 401
    assert error(wrong_scheme) == "unauthorized"
    lower = await client.get("/api/v1/me", headers={"Authorization": f"bearer {full}"})
    assert lower.status_code == 200  # RFC 9110 11.1: the scheme is case-insensitive


async def test_logout_revokes_the_token_and_is_recorded(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    await server.add_user("pete")
    token = (await login(client, "pete"))["token"]
    response = await client.post("/api/v1/logout", headers=bearer(token))
    assert response.status_code == 204
    assert response.content == b""
    for method, path in (("GET", ME), ("POST", "/api/v1/logout")):
        after = await client.request(method, path, headers=bearer(token))
        assert after.status_code == 401
        assert error(after) == "unauthorized"
    items = await history(client, (await login(client, "pete"))["token"])
    assert ("logout", True, None, None) in summary(items)
    (logout,) = [item for item in items if item["event"] == "logout"]
    assert logout["ip"] == "127.0.0.1"
    assert logout["client"] == CLIENT


# History


class TestHistory:
    async def test_every_step_is_recorded_with_address_and_client(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        clock = server.clock
        secret, codes, _ = await two_factor_user(server, client, "quinn")
        probe = await client.post(
            LOGIN,
            json={"username": "quinn", "password": WRONG_PASSWORD},
            headers={"User-Agent": "probe/2.0 (history test)"},
        )
        assert probe.status_code == 401
        first = await challenge(client, "quinn")
        assert error(await submit(client, LOGIN_TOTP, first, wrong_code(secret, clock))) == (
            "invalid_code"
        )
        code = totp_code(secret, clock)
        assert (await submit(client, LOGIN_TOTP, first, code)).status_code == 200
        second = await challenge(client, "quinn")
        assert error(await submit(client, LOGIN_TOTP, second, code)) == "code_reused"
        assert error(await submit(client, LOGIN_RECOVERY, second, "nope")) == "invalid_code"
        signed = await submit(client, LOGIN_RECOVERY, second, codes[0])
        assert signed.status_code == 200
        third = await challenge(client, "quinn")
        clock.advance(301)
        late = await submit(client, LOGIN_TOTP, third, totp_code(secret, clock))
        assert error(late) == "challenge_expired"

        items = await history(client, signed.json()["token"])
        assert summary(items) == [
            ("second_factor", False, "totp", "expired_challenge"),
            ("password", True, "password", "totp_required"),
            ("second_factor", True, "recovery_code", None),
            ("second_factor", False, "recovery_code", "bad_code"),
            ("second_factor", False, "totp", "code_reused"),
            ("password", True, "password", "totp_required"),
            ("second_factor", True, "totp", None),
            ("second_factor", False, "totp", "bad_code"),
            ("password", True, "password", "totp_required"),
            ("password", False, "password", "bad_password"),
            ("totp_enabled", True, "totp", None),
            ("password", True, "password", None),
        ]
        assert {item["ip"] for item in items} == {"127.0.0.1"}
        assert [item["client"] for item in items if item["client"] != CLIENT] == [
            "probe/2.0 (history test)"
        ]
        assert items[9]["client"] == "probe/2.0 (history test)"
        assert items[0]["at"] == rfc3339(clock.now())
        assert items[-1]["at"] == rfc3339(clock.now() - 301 - 30)
        ids = [item["id"] for item in items]
        assert ids == sorted(ids, reverse=True)

    async def test_unknown_username_goes_to_admin_history_only(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("root", admin=True)
        await server.add_user("rita")
        response = await client.post(LOGIN, json={"username": "Nobody", "password": "whatever1"})
        assert response.status_code == 401
        wrong = await client.post(LOGIN, json={"username": "rita", "password": WRONG_PASSWORD})
        assert wrong.status_code == 401
        root = (await login(client, "root"))["token"]
        rita = (await login(client, "rita"))["token"]

        assert summary(await history(client, root)) == [("password", True, "password", None)]
        assert summary(await history(client, rita)) == [
            ("password", True, "password", None),
            ("password", False, "password", "bad_password"),
        ]

        admin = await client.get(
            "/api/v1/admin/history", params={"username": "nobody"}, headers=bearer(root)
        )
        assert admin.status_code == 200
        (entry,) = admin.json()["items"]
        assert entry["username"] == "nobody"
        assert entry["known_user"] is False
        assert (entry["event"], entry["success"], entry["method"]) == (
            "password",
            False,
            "password",
        )
        assert (entry["ip"], entry["client"]) == ("127.0.0.1", CLIENT)

        failures = await client.get(
            "/api/v1/admin/history", params={"success": "false"}, headers=bearer(root)
        )
        assert [(item["username"], item["known_user"]) for item in failures.json()["items"]] == [
            ("rita", True),
            ("nobody", False),
        ]


# RFC 6238 Appendix B, SHA1 rows

RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
RFC_RULES = TotpRules(digits=8)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ],
)
def test_rfc6238_appendix_b_sha1_vectors(at: int, expected: str) -> None:
    step = at // 30
    assert code_at(RFC_SECRET, step, RFC_RULES) == expected
    assert matching_step(RFC_SECRET, expected, at, RFC_RULES) == step
    assert matching_step(RFC_SECRET, expected, at + 30, RFC_RULES) == step  # one step late
    if step > 1:  # the window below step 1 would reach before the epoch
        assert matching_step(RFC_SECRET, expected, at - 30, RFC_RULES) == step  # one step early
    assert matching_step(RFC_SECRET, expected, at + 90, RFC_RULES) is None
    assert matching_step(RFC_SECRET, expected[:6], at, RFC_RULES) is None


# Secrets stay out of responses and logs


async def test_no_secret_reaches_the_log_or_a_login_response(
    server: RunningServer, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = server.clock
    await server.add_user("sara")
    tokens: list[str] = []
    login_texts: list[str] = []

    async def password_step(password: str = PASSWORD) -> httpx.Response:
        response = await client.post(LOGIN, json={"username": "sara", "password": password})
        login_texts.append(response.text)
        if response.status_code == 200:
            tokens.append(response.json()["token"])
        return response

    await password_step()
    secret, codes = await enable_totp(client, tokens[0], clock)
    await password_step(WRONG_PASSWORD)
    await password_step()
    signed = await submit(client, LOGIN_TOTP, tokens[-1], totp_code(secret, clock))
    tokens.append(signed.json()["token"])
    clock.advance(30)
    await password_step()
    by_code = await submit(client, LOGIN_RECOVERY, tokens[-1], codes[0])
    tokens.append(by_code.json()["token"])
    regenerated = await client.post(
        "/api/v1/me/recovery-codes",
        headers=bearer(tokens[-1]),
        json={"password": PASSWORD, "code": totp_code(secret, clock)},
    )
    assert regenerated.status_code == 200
    assert (await client.post("/api/v1/logout", headers=bearer(tokens[-1]))).status_code == 204

    for text in login_texts:
        assert PASSWORD not in text
        assert WRONG_PASSWORD not in text
    server_records = [record for record in caplog.records if record.name.startswith("tfa_server")]
    log = "\n".join(f"{record.getMessage()} {record.exc_text or ''}" for record in server_records)
    assert "POST /api/v1/login/recovery 200" in log  # the server's own log was captured
    new_codes = regenerated.json()["recovery_codes"]
    forbidden = [PASSWORD, WRONG_PASSWORD, secret, *tokens]
    forbidden += [
        variant for code in codes + new_codes for variant in (code, code.replace("-", ""))
    ]
    assert len(tokens) == 5
    for value in forbidden:
        assert value not in log
