"""The signed-in user's own account: /me, TOTP setup and removal, recovery codes, history
and sessions, against the real server."""

from __future__ import annotations

import base64
import re
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from tfa_server.config import SessionRules

from . import stored
from .conftest import (
    PASSWORD,
    START,
    FakeClock,
    RunningServer,
    assert_error,
    bearer,
    enable_totp,
    login,
    sign_in_with_totp,
    start_server,
    totp_code,
)

MINUTE = 60.0
HOUR = 3600.0
DAY = 86_400.0
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
RECOVERY_CODE = re.compile(r"^[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}$")
ME_FIELDS = {
    "username",
    "is_admin",
    "totp_enabled",
    "totp_enabled_at",
    "recovery_codes_left",
    "policy",
    "enrollment_deadline",
    "last_login",
    "failed_attempts_since_last_login",
}


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def wrong_code(secret: str, clock: FakeClock) -> str:
    """Six digits that match no step in the accepted window (+-1) right now."""
    valid = {totp_code(secret, clock, offset) for offset in (-1, 0, 1)}
    return next(code for code in ("123456", "654321", "111111", "222222") if code not in valid)


async def query_db(server: RunningServer, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of a query ($1, $2, ... for `args`) through the server's own database handle."""
    rows = await server.core.db.run(lambda conn: conn.execute(sql, args).fetchall())
    return [tuple(row) for row in rows]


async def count_rows(server: RunningServer, sql: str) -> int:
    return int((await query_db(server, sql))[0][0])


async def me(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await client.get("/api/v1/me", headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def delete_totp(
    client: httpx.AsyncClient, token: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.request("DELETE", "/api/v1/me/totp", headers=bearer(token), json=body)


async def history(client: httpx.AsyncClient, token: str, **params: Any) -> httpx.Response:
    return await client.get("/api/v1/me/history", headers=bearer(token), params=params)


async def set_policy(
    client: httpx.AsyncClient, admin_token: str, force: bool, grace: int = 0
) -> dict[str, Any]:
    response = await client.put(
        "/api/v1/admin/policy",
        headers=bearer(admin_token),
        json={"force_2fa": force, "grace_period_days": grace},
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def signed_in_with_totp(
    server: RunningServer, client: httpx.AsyncClient, name: str = "alice"
) -> tuple[str, str, list[str]]:
    """A user with 2FA on: returns (full session token, secret, recovery codes)."""
    await server.add_user(name)
    first = await login(client, name)
    secret, codes = await enable_totp(client, first["token"], server.clock)
    return first["token"], secret, codes


class TestMe:
    async def test_first_sign_in_reports_every_field(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        result = await login(client, "alice")
        assert result["status"] == "authenticated"
        body = await me(client, result["token"])
        assert body == {
            "username": "alice",
            "is_admin": False,
            "password_change_required": False,
            "totp_enabled": False,
            "totp_enabled_at": None,
            "recovery_codes_left": 0,
            "policy": {"force_2fa": False, "grace_period_days": 0},
            "enrollment_deadline": None,
            "last_login": None,
            "failed_attempts_since_last_login": 0,
        }
        assert result["user"] == body

    async def test_admin_flag(self, server: RunningServer, client: httpx.AsyncClient) -> None:
        await server.add_user("root", admin=True)
        body = await me(client, (await login(client, "root"))["token"])
        assert body["is_admin"] is True

    async def test_last_login_is_the_previous_sign_in_with_failures_since(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        first = await login(client, "alice")
        first_at = server.clock.now()
        server.clock.advance(MINUTE)
        for _ in range(3):
            wrong = await client.post(
                "/api/v1/login", json={"username": "alice", "password": "not the password"}
            )
            assert_error(wrong, 401, "invalid_credentials")
        server.clock.advance(MINUTE)
        second = await client.post(
            "/api/v1/login",
            json={"username": "alice", "password": PASSWORD},
            headers={"User-Agent": "other-device/2.0"},
        )
        assert second.status_code == 200
        body = await me(client, second.json()["token"])
        assert body["last_login"] == {
            "at": iso(first_at),
            "ip": "127.0.0.1",
            "client": "tfa-tests/1.0",
        }
        assert body["failed_attempts_since_last_login"] == 3
        assert second.json()["user"]["last_login"] == body["last_login"]
        # The first session still reports what preceded it: nothing.
        earlier = await me(client, first["token"])
        assert earlier["last_login"] is None
        assert earlier["failed_attempts_since_last_login"] == 0

        server.clock.advance(MINUTE)
        third = await client.post("/api/v1/login", json={"username": "alice", "password": PASSWORD})
        body = await me(client, third.json()["token"])
        assert body["last_login"] == {
            "at": iso(first_at + 2 * MINUTE),
            "ip": "127.0.0.1",
            "client": "other-device/2.0",
        }
        assert body["failed_attempts_since_last_login"] == 0

    async def test_failures_before_the_first_sign_in_are_counted(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        for _ in range(2):
            wrong = await client.post(
                "/api/v1/login", json={"username": "alice", "password": "guess guess"}
            )
            assert_error(wrong, 401, "invalid_credentials")
        server.clock.advance(1)
        body = await me(client, (await login(client, "alice"))["token"])
        assert body["last_login"] is None
        assert body["failed_attempts_since_last_login"] == 2

    async def test_failed_second_factor_counts_as_a_failed_attempt(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        _, secret, _ = await signed_in_with_totp(server, client)
        challenge = await login(client, "alice")
        bad = await client.post(
            "/api/v1/login/totp",
            headers=bearer(challenge["token"]),
            json={"code": wrong_code(secret, server.clock)},
        )
        assert_error(bad, 401, "invalid_code")
        good = await client.post(
            "/api/v1/login/totp",
            headers=bearer(challenge["token"]),
            json={"code": totp_code(secret, server.clock)},
        )
        assert good.status_code == 200
        assert good.json()["user"]["failed_attempts_since_last_login"] == 1

    async def test_2fa_state_and_recovery_codes_left(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]
        confirmed_at = server.clock.now()
        _, codes = await enable_totp(client, token, server.clock)
        body = await me(client, token)
        assert body["totp_enabled"] is True
        assert body["totp_enabled_at"] == iso(confirmed_at)
        assert body["recovery_codes_left"] == 10
        challenge = await login(client, "alice")
        assert challenge["status"] == "totp_required"
        used = await client.post(
            "/api/v1/login/recovery", headers=bearer(challenge["token"]), json={"code": codes[0]}
        )
        assert used.status_code == 200
        assert used.json()["recovery_codes_left"] == 9
        assert (await me(client, used.json()["token"]))["recovery_codes_left"] == 9

    async def test_policy_and_enrollment_deadline(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("root", admin=True)
        await server.add_user("alice")
        admin = (await login(client, "root"))["token"]
        alice = (await login(client, "alice"))["token"]
        await set_policy(client, admin, force=True, grace=3)
        body = await me(client, alice)
        assert body["policy"] == {"force_2fa": True, "grace_period_days": 3}
        assert body["enrollment_deadline"] == iso(START + 3 * DAY)
        await enable_totp(client, alice, server.clock)
        assert (await me(client, alice))["enrollment_deadline"] is None

    async def test_needs_a_session(self, client: httpx.AsyncClient) -> None:
        assert_error(await client.get("/api/v1/me"), 401, "unauthorized")
        bogus = await client.get("/api/v1/me", headers=bearer("not-a-token"))
        assert_error(bogus, 401, "unauthorized")


class TestTotpSetup:
    async def test_setup_returns_a_160_bit_secret_and_matching_uri(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]
        response = await client.post("/api/v1/me/totp/setup", headers=bearer(token))
        assert response.status_code == 200
        body = response.json()
        secret = body["secret"]
        assert re.fullmatch(r"[A-Z2-7]{32}", secret)
        assert len(base64.b32decode(secret)) == 20
        assert body["issuer"] == "tfa"
        assert body["account"] == "alice"
        assert (body["algorithm"], body["digits"], body["period"]) == ("SHA1", 6, 30)

        uri = urlsplit(body["otpauth_uri"])
        assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
        assert unquote(uri.path) == "/tfa:alice"
        query = parse_qs(uri.query)
        assert query["secret"] == [secret]
        assert query["issuer"] == ["tfa"]
        # Key Uri Format: an absent parameter means its default, which Google Authenticator uses.
        assert query.get("algorithm", ["SHA1"]) == ["SHA1"]
        assert query.get("digits", ["6"]) == ["6"]
        assert query.get("period", ["30"]) == ["30"]

    async def test_secret_stays_pending_until_confirmed(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]
        setup = await client.post("/api/v1/me/totp/setup", headers=bearer(token))
        assert setup.status_code == 200
        body = await me(client, token)
        assert body["totp_enabled"] is False
        assert body["totp_enabled_at"] is None
        assert (await login(client, "alice"))["status"] == "authenticated"

    async def test_second_setup_replaces_the_first(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]
        first = (await client.post("/api/v1/me/totp/setup", headers=bearer(token))).json()
        second = (await client.post("/api/v1/me/totp/setup", headers=bearer(token))).json()
        assert first["secret"] != second["secret"]
        # Move to a step where the old secret's code is no code of the new one, however unlikely.
        while totp_code(first["secret"], server.clock) in {
            totp_code(second["secret"], server.clock, offset) for offset in (-1, 0, 1)
        }:
            server.clock.advance(30)
        stale = await client.post(
            "/api/v1/me/totp/confirm",
            headers=bearer(token),
            json={"code": totp_code(first["secret"], server.clock)},
        )
        assert_error(stale, 401, "invalid_code")
        fresh = await client.post(
            "/api/v1/me/totp/confirm",
            headers=bearer(token),
            json={"code": totp_code(second["secret"], server.clock)},
        )
        assert fresh.status_code == 200
        assert (await me(client, token))["totp_enabled"] is True

    async def test_setup_when_2fa_is_on_is_a_conflict(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        token, _, _ = await signed_in_with_totp(server, client)
        response = await client.post("/api/v1/me/totp/setup", headers=bearer(token))
        assert_error(response, 409, "conflict")


class TestTotpConfirm:
    async def test_wrong_code_keeps_2fa_off(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]
        secret = (await client.post("/api/v1/me/totp/setup", headers=bearer(token))).json()[
            "secret"
        ]
        response = await client.post(
            "/api/v1/me/totp/confirm",
            headers=bearer(token),
            json={"code": wrong_code(secret, server.clock)},
        )
        assert_error(response, 401, "invalid_code")
        assert (await me(client, token))["totp_enabled"] is False
        assert (await login(client, "alice"))["status"] == "authenticated"

    async def test_right_code_issues_ten_distinct_recovery_codes(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]
        secret = (await client.post("/api/v1/me/totp/setup", headers=bearer(token))).json()[
            "secret"
        ]
        response = await client.post(
            "/api/v1/me/totp/confirm",
            headers=bearer(token),
            json={"code": totp_code(secret, server.clock)},
        )
        assert response.status_code == 200
        codes = response.json()["recovery_codes"]
        assert len(codes) == 10
        assert len(set(codes)) == 10
        for code in codes:
            assert RECOVERY_CODE.fullmatch(code), code
            assert not set(code) & set("0O1IL")
        assert (await me(client, token))["totp_enabled"] is True
        server.clock.advance(30)
        assert (await login(client, "alice"))["status"] == "totp_required"

    async def test_confirm_without_pending_setup_is_a_conflict(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]
        response = await client.post(
            "/api/v1/me/totp/confirm", headers=bearer(token), json={"code": "123456"}
        )
        assert_error(response, 409, "conflict")

    async def test_confirm_again_after_2fa_is_on_is_a_conflict(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        token, secret, _ = await signed_in_with_totp(server, client)
        response = await client.post(
            "/api/v1/me/totp/confirm",
            headers=bearer(token),
            json={"code": totp_code(secret, server.clock)},
        )
        assert_error(response, 409, "conflict")


class TestSecretsAtRest:
    async def test_database_holds_no_secret_code_token_or_password(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        first = await login(client, "alice")
        secret, codes = await enable_totp(client, first["token"], server.clock)
        challenge = await login(client, "alice")
        full = await client.post(
            "/api/v1/login/totp",
            headers=bearer(challenge["token"]),
            json={"code": totp_code(secret, server.clock)},
        )
        assert full.status_code == 200
        tokens = [first["token"], challenge["token"], full.json()["token"]]

        assert {"totp_secrets", "recovery_codes", "sessions", "users"} <= set(
            await server.core.db.run(stored.tables)
        )
        assert await query_db(server, "SELECT COUNT(*) FROM totp_secrets") == [(1,)]
        dump, values = await server.core.db.run(stored.stored)
        raw = values + stored.sqlite_file_bytes(server.settings)
        needles = [
            secret,
            PASSWORD,
            *tokens,
            *codes,
            *(code.replace("-", "") for code in codes),
        ]
        for needle in needles:
            assert needle not in dump
            assert needle.encode() not in raw
            assert needle.lower().encode() not in raw
        assert base64.b32decode(secret) not in raw

    async def test_key_file_is_private_and_outside_the_database(
        self, server: RunningServer
    ) -> None:
        key_path = server.settings.key_path
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        key = key_path.read_bytes()
        assert len(key) == 32
        _, values = await server.core.db.run(stored.stored)
        assert key not in values + stored.sqlite_file_bytes(server.settings)


class TestDisableTotp:
    async def test_needs_password_and_current_code(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        token, secret, _ = await signed_in_with_totp(server, client)
        clock = server.clock
        wrong_password = await delete_totp(
            client, token, {"password": "wrong password", "code": totp_code(secret, clock)}
        )
        assert_error(wrong_password, 401, "invalid_credentials")
        wrong = await delete_totp(
            client, token, {"password": PASSWORD, "code": wrong_code(secret, clock)}
        )
        assert_error(wrong, 401, "invalid_code")
        for body in ({"password": PASSWORD}, {"code": "123456"}, {}):
            assert_error(await delete_totp(client, token, body), 400, "invalid_request")
        extra = await delete_totp(
            client, token, {"password": PASSWORD, "code": "123456", "force": True}
        )
        assert_error(extra, 400, "invalid_request")
        assert (await me(client, token))["totp_enabled"] is True

    async def test_with_totp_code(self, server: RunningServer, client: httpx.AsyncClient) -> None:
        token, secret, _ = await signed_in_with_totp(server, client)
        response = await delete_totp(
            client, token, {"password": PASSWORD, "code": totp_code(secret, server.clock)}
        )
        assert response.status_code == 200
        assert response.json() == {"totp_enabled": False, "logged_out": False}
        body = await me(client, token)
        assert (body["totp_enabled"], body["totp_enabled_at"]) == (False, None)
        assert body["recovery_codes_left"] == 0
        assert await query_db(server, "SELECT COUNT(*) FROM recovery_codes") == [(0,)]
        assert await query_db(server, "SELECT COUNT(*) FROM totp_secrets") == [(0,)]
        assert (await history(client, token)).status_code == 200
        assert (await login(client, "alice"))["status"] == "authenticated"

    async def test_with_recovery_code(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        token, _, codes = await signed_in_with_totp(server, client)
        response = await delete_totp(client, token, {"password": PASSWORD, "code": codes[3]})
        assert response.status_code == 200
        assert response.json() == {"totp_enabled": False, "logged_out": False}
        assert (await me(client, token))["recovery_codes_left"] == 0
        entry = (await history(client, token)).json()["items"][0]
        assert (entry["event"], entry["method"]) == ("totp_disabled", "recovery_code")

    async def test_when_2fa_is_off_is_a_conflict(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]
        response = await delete_totp(client, token, {"password": PASSWORD, "code": "123456"})
        assert_error(response, 409, "conflict")


class TestRegenerateRecoveryCodes:
    async def test_needs_password_and_current_code(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        token, secret, codes = await signed_in_with_totp(server, client)
        url = "/api/v1/me/recovery-codes"
        wrong_password = await client.post(
            url, headers=bearer(token), json={"password": "nope nope", "code": codes[0]}
        )
        assert_error(wrong_password, 401, "invalid_credentials")
        wrong = await client.post(
            url,
            headers=bearer(token),
            json={"password": PASSWORD, "code": wrong_code(secret, server.clock)},
        )
        assert_error(wrong, 401, "invalid_code")
        missing = await client.post(url, headers=bearer(token), json={"password": PASSWORD})
        assert_error(missing, 400, "invalid_request")
        assert (await me(client, token))["recovery_codes_left"] == 10

    async def test_new_set_voids_the_old(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        token, secret, old = await signed_in_with_totp(server, client)
        response = await client.post(
            "/api/v1/me/recovery-codes",
            headers=bearer(token),
            json={"password": PASSWORD, "code": totp_code(secret, server.clock)},
        )
        assert response.status_code == 200
        new = response.json()["recovery_codes"]
        assert len(new) == 10
        assert len(set(new)) == 10
        assert all(RECOVERY_CODE.fullmatch(code) for code in new)
        assert not set(new) & set(old)
        assert (await me(client, token))["recovery_codes_left"] == 10

        challenge = await login(client, "alice")
        stale = await client.post(
            "/api/v1/login/recovery", headers=bearer(challenge["token"]), json={"code": old[0]}
        )
        assert_error(stale, 401, "invalid_code")
        fresh = await client.post(
            "/api/v1/login/recovery", headers=bearer(challenge["token"]), json={"code": new[0]}
        )
        assert fresh.status_code == 200
        assert fresh.json()["recovery_codes_left"] == 9

    async def test_when_2fa_is_off_is_a_conflict(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]
        response = await client.post(
            "/api/v1/me/recovery-codes",
            headers=bearer(token),
            json={"password": PASSWORD, "code": "123456"},
        )
        assert_error(response, 409, "conflict")


class TestHistory:
    async def test_records_account_events_newest_first(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        token, secret, _ = await signed_in_with_totp(server, client)
        other = (await sign_in_with_totp(client, "alice", secret, server.clock))["token"]
        regenerated = await client.post(
            "/api/v1/me/recovery-codes",
            headers=bearer(token),
            json={"password": PASSWORD, "code": totp_code(secret, server.clock)},
        )
        assert regenerated.status_code == 200
        server.clock.advance(30)
        disabled = await delete_totp(
            client, token, {"password": PASSWORD, "code": totp_code(secret, server.clock)}
        )
        assert disabled.status_code == 200
        logout = await client.post("/api/v1/logout", headers=bearer(other))
        assert logout.status_code == 204

        items = (await history(client, token)).json()["items"]
        seen = [(item["event"], item["success"], item["method"], item["reason"]) for item in items]
        assert seen == [
            ("logout", True, None, None),
            ("totp_disabled", True, "totp", None),
            ("recovery_codes_regenerated", True, "totp", None),
            ("second_factor", True, "totp", None),
            ("password", True, "password", "totp_required"),
            ("totp_enabled", True, "totp", None),
            ("password", True, "password", None),
        ]
        ids = [item["id"] for item in items]
        assert ids == sorted(ids, reverse=True)
        for item in items:
            assert RFC3339_UTC.fullmatch(item["at"]), item["at"]
            assert (item["ip"], item["client"]) == ("127.0.0.1", "tfa-tests/1.0")
        assert items[-1]["at"] == iso(START)

    async def test_failed_attempts_are_listed(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        await server.add_user("bob")
        wrong = await client.post(
            "/api/v1/login", json={"username": "alice", "password": "bad password"}
        )
        assert_error(wrong, 401, "invalid_credentials")
        await login(client, "bob")
        token = (await login(client, "alice"))["token"]
        items = (await history(client, token)).json()["items"]
        assert [(item["event"], item["success"], item["reason"]) for item in items] == [
            ("password", True, None),
            ("password", False, "bad_password"),
        ]

    async def test_success_filter_pages_within_the_filter(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        for _ in range(3):
            failed = await client.post(
                "/api/v1/login", json={"username": "alice", "password": "bad password"}
            )
            assert_error(failed, 401, "invalid_credentials")
            await login(client, "alice")
        token = (await login(client, "alice"))["token"]
        auth = bearer(token)
        failures = await client.get("/api/v1/me/history?success=false&limit=2", headers=auth)
        page = failures.json()
        assert [item["success"] for item in page["items"]] == [False, False]
        rest = await client.get(
            f"/api/v1/me/history?success=false&limit=2&before={page['next_before']}",
            headers=auth,
        )
        assert [item["reason"] for item in rest.json()["items"]] == ["bad_password"]
        assert rest.json()["next_before"] is None
        successes = await client.get("/api/v1/me/history?success=true", headers=auth)
        assert len(successes.json()["items"]) == 4
        assert all(item["success"] for item in successes.json()["items"])
        bad = await client.get("/api/v1/me/history?success=maybe", headers=auth)
        assert_error(bad, 400, "invalid_request")

    async def test_before_takes_every_value_the_document_allows(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """Found by schemathesis: 19-digit values up to the documented maximum were refused."""
        await server.add_user("alice")
        auth = bearer((await login(client, "alice"))["token"])
        for before in (2**62 - 1, 2**62):
            page = await client.get(f"/api/v1/me/history?before={before}", headers=auth)
            assert page.status_code == 200, page.text
            assert len(page.json()["items"]) == 1
        too_big = await client.get(f"/api/v1/me/history?before={2**62 + 1}", headers=auth)
        assert_error(too_big, 400, "invalid_request")
        huge = await client.get(f"/api/v1/me/history?before={'9' * 5000}", headers=auth)
        assert_error(huge, 400, "invalid_request")

    async def test_an_empty_number_or_flag_is_refused_not_ignored(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """Found by schemathesis: `?before=` was read as "no before" though "" is no integer."""
        await server.add_user("alice")
        auth = bearer((await login(client, "alice"))["token"])
        for query in ("before=", "limit=", "success=", "limit=5&before="):
            answer = await client.get(f"/api/v1/me/history?{query}", headers=auth)
            assert_error(answer, 400, "invalid_request")
            assert answer.json()["message"].split("'")[1] in query

    async def test_limit_and_keyset_paging(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]
        for _ in range(27):
            extra = (await login(client, "alice"))["token"]
            assert (await client.post("/api/v1/logout", headers=bearer(extra))).status_code == 204
        everything = (await history(client, token, limit=200)).json()
        assert everything["next_before"] is None
        all_ids = [item["id"] for item in everything["items"]]
        assert len(all_ids) == 55
        assert all_ids == sorted(all_ids, reverse=True)

        default = (await history(client, token)).json()
        assert [item["id"] for item in default["items"]] == all_ids[:50]
        assert default["next_before"] == all_ids[49]

        walked: list[int] = []
        before: int | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 7}
            if before is not None:
                params["before"] = before
            page = (await history(client, token, **params)).json()
            pages += 1
            walked.extend(item["id"] for item in page["items"])
            before = page["next_before"]
            if before is None:
                break
            assert before == page["items"][-1]["id"]
        assert walked == all_ids
        assert len(set(walked)) == len(walked)
        assert pages == 8

        one = (await history(client, token, limit=1)).json()
        assert len(one["items"]) == 1
        assert one["next_before"] == all_ids[0]

    async def test_bad_paging_parameters(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]
        for params in (
            {"limit": 0},
            {"limit": 201},
            {"limit": "ten"},
            {"limit": -1},
            {"limit": "1.5"},
            {"before": "abc"},
            {"before": 0},
            {"page": 2},
        ):
            assert_error(await history(client, token, **params), 400, "invalid_request")
        assert (await history(client, token, limit=200)).status_code == 200


@pytest.mark.finding("F06")
class TestSetupNeedsThePasswordOnAnOldSession:
    """A stolen session token alone must not connect the thief's authenticator."""

    async def test_a_fresh_sign_in_needs_no_password(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]
        server.clock.advance(SessionRules().fresh_sign_in)
        response = await client.post("/api/v1/me/totp/setup", headers=bearer(token))
        assert response.status_code == 200, response.text

    async def test_an_older_session_must_send_the_password(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]
        server.clock.advance(SessionRules().fresh_sign_in + 1)
        for body in (None, {}):
            response = await client.post("/api/v1/me/totp/setup", headers=bearer(token), json=body)
            assert_error(response, 403, "password_required")
            assert "password" in response.json()["message"]
        wrong = await client.post(
            "/api/v1/me/totp/setup", headers=bearer(token), json={"password": "not it at all"}
        )
        assert_error(wrong, 401, "invalid_credentials")
        assert not await query_db(server, "SELECT * FROM pending_totp_secrets")
        right = await client.post(
            "/api/v1/me/totp/setup", headers=bearer(token), json={"password": PASSWORD}
        )
        assert right.status_code == 200, right.text
        events = [
            (item["event"], item["success"], item["reason"])
            for item in (await history(client, token)).json()["items"]
        ]
        assert ("reauthentication", False, "bad_password") in events

    async def test_wrong_passwords_count_against_the_account(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]
        server.clock.advance(SessionRules().fresh_sign_in + 1)
        for _ in range(5):
            wrong = await client.post(
                "/api/v1/me/totp/setup", headers=bearer(token), json={"password": "nope nope"}
            )
            assert_error(wrong, 401, "invalid_credentials")
        locked = await client.post(
            "/api/v1/me/totp/setup", headers=bearer(token), json={"password": PASSWORD}
        )
        assert_error(locked, 429, "too_many_attempts")
        assert_error(
            await client.post("/api/v1/login", json={"username": "alice", "password": PASSWORD}),
            429,
            "too_many_attempts",
        )


@pytest.mark.finding("F07")
class TestSessionCap:
    async def test_the_oldest_session_ends_beyond_the_cap_and_says_so(
        self, tmp_path: Path, database_url: str | None
    ) -> None:
        running = await start_server(
            tmp_path, db_url=database_url, sessions=SessionRules(max_per_user=3)
        )
        try:
            await running.add_user("alice")
            async with running.client() as client:
                tokens = [(await login(client, "alice"))["token"] for _ in range(5)]
                for token in tokens[:2]:
                    assert_error(
                        await client.get("/api/v1/me", headers=bearer(token)), 401, "unauthorized"
                    )
                newest = tokens[-1]
                listed = (await client.get("/api/v1/me/sessions", headers=bearer(newest))).json()
                assert len(listed["items"]) == 3
                items = (await history(client, newest)).json()["items"]
                limited = [
                    item
                    for item in items
                    if (item["event"], item["reason"])
                    == (
                        "session_revoked",
                        "session_limit",
                    )
                ]
                assert len(limited) == 2
        finally:
            await running.app.stop()

    async def test_open_challenges_are_capped_too(
        self, tmp_path: Path, database_url: str | None
    ) -> None:
        running = await start_server(
            tmp_path, db_url=database_url, sessions=SessionRules(max_per_user=2)
        )
        try:
            await running.add_user("alice")
            async with running.client() as client:
                token = (await login(client, "alice"))["token"]
                secret, _ = await enable_totp(client, token, running.clock)
                challenges = [(await login(client, "alice"))["token"] for _ in range(3)]
                code = totp_code(secret, running.clock)
                oldest = await client.post(
                    "/api/v1/login/totp", headers=bearer(challenges[0]), json={"code": code}
                )
                assert_error(oldest, 401, "challenge_expired")
                newest = await client.post(
                    "/api/v1/login/totp", headers=bearer(challenges[2]), json={"code": code}
                )
                assert newest.status_code == 200, newest.text
                assert (
                    await count_rows(
                        running,
                        "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL"
                        " AND kind = 'challenge'",
                    )
                    <= 2
                )
        finally:
            await running.app.stop()


class TestSessions:
    async def test_list_marks_exactly_one_current(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        tokens = []
        for device in ("laptop/1", "phone/1", "tablet/1"):
            response = await client.post(
                "/api/v1/login",
                json={"username": "alice", "password": PASSWORD},
                headers={"User-Agent": device},
            )
            tokens.append(response.json()["token"])
        response = await client.get(
            "/api/v1/me/sessions", headers={**bearer(tokens[1]), "User-Agent": "phone/1"}
        )
        assert response.status_code == 200
        items = response.json()["items"]
        assert [item["client"] for item in items] == ["tablet/1", "phone/1", "laptop/1"]
        assert [item["current"] for item in items] == [False, True, False]
        for item in items:
            assert item["kind"] == "full"
            assert item["ip"] == "127.0.0.1"
            assert item["created_at"] == iso(START)
            assert item["expires_at"] == iso(START + 12 * HOUR)

    async def test_revoke_another_session(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        keep = (await login(client, "alice"))["token"]
        drop = (await login(client, "alice"))["token"]
        listed = (await client.get("/api/v1/me/sessions", headers=bearer(keep))).json()["items"]
        target = next(item["id"] for item in listed if not item["current"])
        response = await client.delete(f"/api/v1/me/sessions/{target}", headers=bearer(keep))
        assert response.status_code == 204
        assert response.content == b""
        assert_error(await client.get("/api/v1/me", headers=bearer(drop)), 401, "unauthorized")
        left = (await client.get("/api/v1/me/sessions", headers=bearer(keep))).json()["items"]
        assert [item["current"] for item in left] == [True]
        again = await client.delete(f"/api/v1/me/sessions/{target}", headers=bearer(keep))
        assert_error(again, 404, "not_found")
        assert (await history(client, keep)).json()["items"][0]["event"] == "session_revoked"

    async def test_cannot_revoke_unknown_or_foreign_sessions(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        await server.add_user("bob")
        alice = (await login(client, "alice"))["token"]
        bob = (await login(client, "bob"))["token"]
        bob_sessions = (await client.get("/api/v1/me/sessions", headers=bearer(bob))).json()
        bob_id = bob_sessions["items"][0]["id"]
        for target in (str(bob_id), "999999", "abc", "-1", "1.0", "9" * 30):
            response = await client.delete(f"/api/v1/me/sessions/{target}", headers=bearer(alice))
            assert_error(response, 404, "not_found")
        assert (await client.get("/api/v1/me", headers=bearer(bob))).status_code == 200

    async def test_idle_session_expires(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        active = (await login(client, "alice"))["token"]
        idle = (await login(client, "alice"))["token"]
        server.clock.advance(59 * MINUTE)
        for token in (active, idle):
            assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 200
        server.clock.advance(30 * MINUTE)
        assert (await client.get("/api/v1/me", headers=bearer(active))).status_code == 200
        server.clock.advance(30 * MINUTE + 1)
        # `idle` was last used 60 min 1 s ago, `active` 30 min 1 s ago.
        assert_error(await client.get("/api/v1/me", headers=bearer(idle)), 401, "unauthorized")
        listed = (await client.get("/api/v1/me/sessions", headers=bearer(active))).json()
        assert len(listed["items"]) == 1
        assert listed["items"][0]["current"] is True
        # Using it again does not bring it back.
        assert_error(await client.get("/api/v1/me", headers=bearer(idle)), 401, "unauthorized")

    async def test_absolute_lifetime_ends_a_busy_session(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]
        for _ in range(14):
            server.clock.advance(50 * MINUTE)
            assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 200
        server.clock.advance(20 * MINUTE - 1)  # 12 h minus one second after sign-in
        assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 200
        server.clock.advance(1)
        assert_error(await client.get("/api/v1/me", headers=bearer(token)), 401, "unauthorized")

    async def test_logout_ends_the_session(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]
        assert (await client.post("/api/v1/logout", headers=bearer(token))).status_code == 204
        assert_error(await client.get("/api/v1/me", headers=bearer(token)), 401, "unauthorized")
        again = await client.post("/api/v1/logout", headers=bearer(token))
        assert_error(again, 401, "unauthorized")


class TestEnrollmentSession:
    async def _enrollment_token(self, server: RunningServer, client: httpx.AsyncClient) -> str:
        await server.add_user("root", admin=True)
        await server.add_user("alice")
        admin = (await login(client, "root"))["token"]
        await set_policy(client, admin, force=True, grace=0)
        result = await login(client, "alice")
        assert result["status"] == "enrollment_required"
        assert result["user"]["enrollment_deadline"] == iso(START)
        return result["token"]  # type: ignore[no-any-return]

    async def test_only_enrollment_endpoints_until_confirmed(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        token = await self._enrollment_token(server, client)
        auth = bearer(token)
        assert (await me(client, token))["totp_enabled"] is False
        refused = [
            await client.get("/api/v1/me/history", headers=auth),
            await client.get("/api/v1/me/sessions", headers=auth),
            await client.delete("/api/v1/me/sessions/1", headers=auth),
            await client.post(
                "/api/v1/me/recovery-codes",
                headers=auth,
                json={"password": PASSWORD, "code": "123456"},
            ),
            await delete_totp(client, token, {"password": PASSWORD, "code": "123456"}),
            await client.get("/api/v1/admin/policy", headers=auth),
            await client.get("/api/v1/admin/users", headers=auth),
        ]
        for response in refused:
            assert_error(response, 403, "enrollment_required")

        setup = await client.post("/api/v1/me/totp/setup", headers=auth)
        assert setup.status_code == 200
        secret = setup.json()["secret"]
        confirm = await client.post(
            "/api/v1/me/totp/confirm", headers=auth, json={"code": totp_code(secret, server.clock)}
        )
        assert confirm.status_code == 200
        assert len(confirm.json()["recovery_codes"]) == 10

        assert (await client.get("/api/v1/me/history", headers=auth)).status_code == 200
        sessions = (await client.get("/api/v1/me/sessions", headers=auth)).json()["items"]
        assert [(item["kind"], item["current"]) for item in sessions] == [("full", True)]
        body = await me(client, token)
        assert (body["totp_enabled"], body["enrollment_deadline"]) == (True, None)

    async def test_logout_is_allowed(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        token = await self._enrollment_token(server, client)
        assert (await client.post("/api/v1/logout", headers=bearer(token))).status_code == 204
        assert_error(await client.get("/api/v1/me", headers=bearer(token)), 401, "unauthorized")
