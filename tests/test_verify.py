"""Issue 13: relying services and the verify API, against the real server over real sockets.

A service (sshd through pam_tfa, or any program) holds a key that opens only the verify API,
and asks whether a user's code is right under exactly the sign-in's rules: one step either
side, each code spent once wherever it was used, the same throttles, and every call in the
user's history with the service's name and the end user's address.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tfa_server.admin import Actor, Admin

from . import stored
from .conftest import (
    PASSWORD,
    RunningServer,
    assert_error,
    bearer,
    enable_totp,
    login,
    start_server,
    totp_code,
    user_with_2fa,
)

VERIFY = "/api/v1/verify"
START = "/api/v1/verify/start"
ROOT = Actor("root", None)


async def new_service(server: RunningServer, name: str = "sshd-bastion") -> str:
    return (await Admin(server.core).add_service(ROOT, name, "the bastion")).key


async def history(client: httpx.AsyncClient, token: str, **query: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/me/history", headers=bearer(token), params=query)
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


class TestServiceKeys:
    async def test_a_key_is_256_random_bits_with_a_prefix_shown_once_and_stored_hashed(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("root", admin=True)
        root = bearer((await login(client, "root"))["token"])
        added = await client.post(
            "/api/v1/admin/services",
            headers=root,
            json={"name": "SSHD-Bastion", "description": "jump host"},
        )
        assert added.status_code == 201, added.text
        key = added.json()["key"]
        assert re.fullmatch(r"tfasvc_[A-Za-z0-9_-]{43}", key)  # 43 base64url chars: 256 bits
        assert added.json()["name"] == "sshd-bastion"
        listed = (await client.get("/api/v1/admin/services", headers=root)).json()["items"]
        assert [item["name"] for item in listed] == ["sshd-bastion"]
        assert key not in str(listed)
        dump, _ = await server.core.db.run(stored.stored)
        assert key not in dump
        assert key.removeprefix("tfasvc_") not in dump
        again = await client.post(
            "/api/v1/admin/services", headers=root, json={"name": "sshd-bastion"}
        )
        assert_error(again, 409, "conflict")
        other = await client.post("/api/v1/admin/services", headers=root, json={"name": "b"})
        assert other.json()["key"] != key

    async def test_revocation_is_immediate_and_both_are_audited(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("root", admin=True)
        await server.add_user("alice")
        root = bearer((await login(client, "root"))["token"])
        key = (
            await client.post("/api/v1/admin/services", headers=root, json={"name": "sudo-db1"})
        ).json()["key"]
        asked = await client.post(START, headers=bearer(key), json={"username": "alice"})
        assert asked.status_code == 200
        revoked = await client.delete("/api/v1/admin/services/SUDO-db1", headers=root)
        assert revoked.status_code == 204
        refused = await client.post(START, headers=bearer(key), json={"username": "alice"})
        assert_error(refused, 401, "unauthorized")
        missing = await client.delete("/api/v1/admin/services/sudo-db1", headers=root)
        assert_error(missing, 404, "not_found")
        audit = (await client.get("/api/v1/admin/audit", headers=root)).json()["items"]
        assert [(item["action"], item["target"], item["actor"]) for item in audit[:2]] == [
            ("service_revoked", "sudo-db1", "root"),
            ("service_added", "sudo-db1", "root"),
        ]
        assert key not in str(audit)

    async def test_a_service_key_opens_only_the_verify_api_and_a_session_opens_none_of_it(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("root", admin=True)
        root_token = (await login(client, "root"))["token"]
        key = await new_service(server)
        routes = server.app.api.routes
        for route in routes:
            if route.auth in ("none", "service"):
                continue
            path = re.sub(r"\{[a-z_]+\}", "x", route.path)
            # The second-factor routes read the body before the challenge token.
            body = {"code": "123456"} if route.auth == "challenge" else {}
            response = await client.request(route.method, path, headers=bearer(key), json=body)
            assert_error(response, 401, "unauthorized")
        for path in (START, VERIFY):
            body = (
                {"username": "root", "code": "123456"} if path == VERIFY else {"username": "root"}
            )
            response = await client.post(path, headers=bearer(root_token), json=body)
            assert_error(response, 401, "unauthorized")
            response = await client.post(path, json=body)
            assert_error(response, 401, "unauthorized")
        assert {route.operation_id for route in routes if route.auth == "service"} == {
            "verifyStart",
            "verify",
        }

    async def test_last_use_is_shown(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        key = await new_service(server)
        before = (await Admin(server.core).list_services()).items[0]
        assert before.last_used_at is None
        await client.post(START, headers=bearer(key), json={"username": "alice"})
        after = (await Admin(server.core).list_services()).items[0]
        assert after.last_used_at is not None
        assert after.last_used_ip == "127.0.0.1"


class TestStart:
    async def test_what_to_do_next_for_each_kind_of_user(
        self, tmp_path: Path, database_url: str | None
    ) -> None:
        server = await start_server(
            tmp_path, db_url=database_url, public_url="https://tfa.example:8443"
        )
        try:
            async with server.client() as client:
                await user_with_2fa(server, client)
                await server.add_user("bob")
                key = bearer(await new_service(server))

                async def start(name: str) -> httpx.Response:
                    return await client.post(START, headers=key, json={"username": name})

                assert (await start("ALICE")).json() == {"next": "code"}
                allowed = (await start("bob")).json()
                assert allowed["next"] == "allow"
                assert "tfa --server https://tfa.example:8443" in allowed["message"]
                await Admin(server.core).set_policy(ROOT, True, 3)
                grace = (await start("bob")).json()
                assert grace["next"] == "allow"
                assert "in 3 days" in grace["message"]
                server.clock.advance(3 * 86400 + 1)
                denied = (await start("bob")).json()
                assert denied["next"] == "deny"
                assert denied["reason"] == "enrollment_required"
                assert "tfa --server https://tfa.example:8443" in denied["message"]
                assert (await start("alice")).json() == {"next": "code"}
                assert_error(await start("nobody"), 404, "unknown_user")
        finally:
            await server.app.stop()


class TestVerify:
    async def test_a_right_code_once_then_reused_then_wrong(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        secret, _, _ = await user_with_2fa(server, client)
        key = bearer(await new_service(server))
        code = totp_code(secret, server.clock)
        body = {"username": "alice", "code": code, "remote_ip": "203.0.113.7"}
        allowed = await client.post(VERIFY, headers=key, json=body)
        assert allowed.status_code == 200, allowed.text
        assert allowed.json() == {"result": "allow", "method": "totp", "recovery_codes_left": 10}
        assert_error(await client.post(VERIFY, headers=key, json=body), 401, "code_reused")
        wrong = {**body, "code": "000000" if code != "000000" else "111111"}
        assert_error(await client.post(VERIFY, headers=key, json=wrong), 401, "invalid_code")

    async def test_one_step_either_side_like_the_sign_in(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        secret, _, _ = await user_with_2fa(server, client)
        key = bearer(await new_service(server))
        early = {"username": "alice", "code": totp_code(secret, server.clock, 1)}
        assert (await client.post(VERIFY, headers=key, json=early)).status_code == 200
        server.clock.advance(120)
        too_late = {"username": "alice", "code": totp_code(secret, server.clock, -2)}
        assert_error(await client.post(VERIFY, headers=key, json=too_late), 401, "invalid_code")
        too_early = {"username": "alice", "code": totp_code(secret, server.clock, 2)}
        assert_error(await client.post(VERIFY, headers=key, json=too_early), 401, "invalid_code")

    async def test_a_code_spent_by_the_tui_sign_in_is_reused_for_a_service_and_back(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        secret, _, _ = await user_with_2fa(server, client)
        key = bearer(await new_service(server))
        challenge = (await login(client, "alice"))["token"]
        code = totp_code(secret, server.clock)
        signed = await client.post(
            "/api/v1/login/totp", headers=bearer(challenge), json={"code": code}
        )
        assert signed.status_code == 200
        reused = await client.post(VERIFY, headers=key, json={"username": "alice", "code": code})
        assert_error(reused, 401, "code_reused")
        server.clock.advance(30)
        fresh = totp_code(secret, server.clock)
        served = await client.post(VERIFY, headers=key, json={"username": "alice", "code": fresh})
        assert served.status_code == 200
        challenge = (await login(client, "alice"))["token"]
        again = await client.post(
            "/api/v1/login/totp", headers=bearer(challenge), json={"code": fresh}
        )
        assert_error(again, 401, "code_reused")

    async def test_parallel_calls_with_one_code_allow_exactly_one(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        secret, _, _ = await user_with_2fa(server, client)
        keys = [bearer(await new_service(server, f"host{index}")) for index in range(4)]
        code = totp_code(secret, server.clock)
        answers = await asyncio.gather(
            *(
                client.post(
                    VERIFY, headers=keys[index % 4], json={"username": "alice", "code": code}
                )
                for index in range(12)
            )
        )
        assert sorted(answer.status_code for answer in answers) == [200] + [401] * 11
        assert {answer.json().get("error") for answer in answers} == {None, "code_reused"}

    async def test_a_recovery_code_at_the_same_field_works_once(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        _, codes, _ = await user_with_2fa(server, client)
        key = bearer(await new_service(server))
        body = {"username": "alice", "code": codes[0].lower().replace("-", " ")}
        allowed = await client.post(VERIFY, headers=key, json=body)
        assert allowed.json() == {
            "result": "allow",
            "method": "recovery_code",
            "recovery_codes_left": 9,
        }
        assert_error(await client.post(VERIFY, headers=key, json=body), 401, "code_reused")

    async def test_the_password_too_when_a_service_has_no_first_factor(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        secret, _, _ = await user_with_2fa(server, client)
        key = bearer(await new_service(server))
        code = totp_code(secret, server.clock)
        wrong = {"username": "alice", "code": code, "password": "not it at all"}
        assert_error(await client.post(VERIFY, headers=key, json=wrong), 401, "invalid_credentials")
        right = {**wrong, "password": PASSWORD}
        assert (await client.post(VERIFY, headers=key, json=right)).status_code == 200

    async def test_throttled_like_the_sign_in_and_locking_the_same_account(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        secret, _, _ = await user_with_2fa(server, client)
        key = bearer(await new_service(server))
        good = totp_code(secret, server.clock)
        bad = "000000" if good != "000000" else "111111"
        for _ in range(5):
            wrong = await client.post(VERIFY, headers=key, json={"username": "alice", "code": bad})
            assert_error(wrong, 401, "invalid_code")
        locked = await client.post(VERIFY, headers=key, json={"username": "alice", "code": good})
        assert_error(locked, 429, "too_many_attempts")
        assert int(locked.headers["Retry-After"]) > 0
        tui = await client.post("/api/v1/login", json={"username": "alice", "password": PASSWORD})
        assert_error(tui, 429, "too_many_attempts")  # one account, one lock

    async def test_the_address_budget_counts_the_end_users_address(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """Thirty failures from one end user's address stop that address, across accounts,
        while the same service goes on serving other addresses."""
        key = bearer(await new_service(server))
        names = [f"user{index}" for index in range(8)]
        for name in names:
            await server.add_user(name)
            token = (await login(client, name))["token"]
            await enable_totp(client, token, server.clock)
        limit = server.settings.throttle.ip_max_failures
        for attempt in range(limit):
            body = {"username": names[attempt % 8], "code": "000000", "remote_ip": "198.51.100.9"}
            assert (await client.post(VERIFY, headers=key, json=body)).status_code == 401
        body = {"username": names[0], "code": "000000", "remote_ip": "198.51.100.9"}
        assert_error(await client.post(VERIFY, headers=key, json=body), 429, "too_many_attempts")
        other = {**body, "username": names[7], "remote_ip": "198.51.100.10"}
        assert (await client.post(VERIFY, headers=key, json=other)).status_code == 401

    async def test_users_without_2fa_and_unknown_users(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("bob")
        key = bearer(await new_service(server))
        body = {"username": "bob", "code": "123456"}
        assert_error(await client.post(VERIFY, headers=key, json=body), 409, "totp_not_enabled")
        await Admin(server.core).set_policy(ROOT, True, 0)
        required = await client.post(VERIFY, headers=key, json=body)
        assert "tfa" in assert_error(required, 403, "enrollment_required")["message"]
        unknown = await client.post(VERIFY, headers=key, json={**body, "username": "nobody"})
        assert_error(unknown, 404, "unknown_user")

    @pytest.mark.parametrize("remote_ip", ["host.example", "300.1.1.1", ""])
    async def test_remote_ip_must_be_an_address(
        self, server: RunningServer, client: httpx.AsyncClient, remote_ip: str
    ) -> None:
        await server.add_user("bob")
        key = bearer(await new_service(server))
        body = {"username": "bob", "remote_ip": remote_ip}
        refused = await client.post(START, headers=key, json=body)
        assert "remote_ip" in assert_error(refused, 400, "invalid_request")["message"]


class TestHistory:
    async def test_every_call_is_in_the_users_history_with_the_service_and_address(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        secret, _, token = await user_with_2fa(server, client)
        await server.add_user("root", admin=True)
        key = bearer(await new_service(server))
        who = {"username": "alice", "remote_ip": "203.0.113.7"}
        await client.post(START, headers=key, json=who)
        await client.post(VERIFY, headers=key, json={**who, "code": "000000"})
        code = totp_code(secret, server.clock)
        await client.post(VERIFY, headers=key, json={**who, "code": code})
        rows = await history(client, token, service="sshd-bastion")
        assert [(row["event"], row["success"], row["reason"], row["method"]) for row in rows] == [
            ("verify", True, None, "totp"),
            ("verify", False, "bad_code" if code != "000000" else "code_reused", "totp"),
            ("verify_start", True, "totp_required", None),
        ]
        for row in rows:
            assert (row["service"], row["ip"], row["service_ip"]) == (
                "sshd-bastion",
                "203.0.113.7",
                "127.0.0.1",
            )
        everything = await history(client, token)
        assert len(everything) > len(rows)
        assert {row["service"] for row in everything} == {None, "sshd-bastion"}
        root = bearer((await login(client, "root"))["token"])
        admin = await client.get(
            "/api/v1/admin/history", headers=root, params={"service": "SSHD-bastion"}
        )
        assert [row["username"] for row in admin.json()["items"]] == ["alice"] * 3
