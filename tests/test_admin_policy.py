"""Administration over HTTP: the 2FA policy and its effects, accounts, resets, history and the
audit log, against the real server."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from .conftest import (
    PASSWORD,
    START,
    RunningServer,
    assert_error,
    bearer,
    enable_totp,
    login,
    sign_in_with_totp,
    totp_code,
)

DAY = 86_400.0
HISTORY = "/api/v1/me/history"
CLIENT = "tfa-tests/1.0"


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def admin_token(
    server: RunningServer, client: httpx.AsyncClient, *, with_2fa: bool = False
) -> str:
    """An administrator's session; with 2FA (the clock then moves 30 s) it keeps working
    after 2FA is forced, as a session of an administrator without 2FA does not."""
    await server.add_user("root", admin=True)
    token: str = (await login(client, "root"))["token"]
    if with_2fa:
        await enable_totp(client, token, server.clock)
    return token


async def put_policy(
    client: httpx.AsyncClient, token: str, force: bool, grace: int = 0
) -> dict[str, Any]:
    response = await client.put(
        "/api/v1/admin/policy",
        headers=bearer(token),
        json={"force_2fa": force, "grace_period_days": grace},
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def get_all(
    client: httpx.AsyncClient, token: str, url: str, **params: Any
) -> list[dict[str, Any]]:
    response = await client.get(url, headers=bearer(token), params={**params, "limit": 200})
    assert response.status_code == 200, response.text
    assert response.json()["next_before"] is None
    return response.json()["items"]  # type: ignore[no-any-return]


async def walk(
    client: httpx.AsyncClient, token: str, url: str, limit: int, **params: Any
) -> list[dict[str, Any]]:
    """Every entry via keyset paging, checking each page links to the next."""
    items: list[dict[str, Any]] = []
    before: int | None = None
    while True:
        query = {**params, "limit": limit}
        if before is not None:
            query["before"] = before
        response = await client.get(url, headers=bearer(token), params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        items.extend(page["items"])
        before = page["next_before"]
        if before is None:
            return items
        assert before == page["items"][-1]["id"]


# Every /admin endpoint with a body that would be valid, so only authorisation decides.
ADMIN_CALLS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/admin/policy", None),
    ("PUT", "/api/v1/admin/policy", {"force_2fa": True, "grace_period_days": 1}),
    ("GET", "/api/v1/admin/users", None),
    ("GET", "/api/v1/admin/users/alice", None),
    ("GET", "/api/v1/admin/activity", None),
    ("POST", "/api/v1/admin/users", {"username": "mallory", "password": PASSWORD}),
    ("POST", "/api/v1/admin/users/alice/reset-2fa", None),
    ("POST", "/api/v1/admin/users/alice/unlock", None),
    ("POST", "/api/v1/admin/users/alice/password", {"password": PASSWORD}),
    ("POST", "/api/v1/admin/users/alice/disable", None),
    ("POST", "/api/v1/admin/users/alice/enable", None),
    ("PUT", "/api/v1/admin/users/alice", {"is_admin": True}),
    ("DELETE", "/api/v1/admin/users/alice", None),
    ("GET", "/api/v1/admin/history", None),
    ("GET", "/api/v1/admin/audit", None),
    ("GET", "/api/v1/admin/services", None),
    ("POST", "/api/v1/admin/services", {"name": "sshd-mallory"}),
    ("DELETE", "/api/v1/admin/services/sshd", None),
]


class TestAdminAccess:
    def test_the_list_covers_every_admin_route(self, server: RunningServer) -> None:
        routes = {
            (route.method, route.path)
            for route in server.app.api.routes
            if route.path.startswith("/api/v1/admin")
        }
        listed = {
            (
                method,
                re.sub(r"/alice(/|$)", r"/{username}\1", path).replace("/sshd", "/{name}"),
            )
            for method, path, _ in ADMIN_CALLS
        }
        assert listed == routes

    async def test_non_admin_is_forbidden(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        root = await admin_token(server, client)
        await server.add_user("alice")
        alice = (await login(client, "alice"))["token"]
        for method, path, body in ADMIN_CALLS:
            response = await client.request(method, path, headers=bearer(alice), json=body)
            assert_error(response, 403, "forbidden")
        # Nothing happened on the way.
        policy = (await client.get("/api/v1/admin/policy", headers=bearer(root))).json()
        assert policy["force_2fa"] is False
        users = (await client.get("/api/v1/admin/users", headers=bearer(root))).json()
        assert [user["username"] for user in users["items"]] == ["alice", "root"]

    async def test_no_token_is_unauthorized(self, client: httpx.AsyncClient) -> None:
        for method, path, body in ADMIN_CALLS:
            response = await client.request(method, path, json=body)
            assert_error(response, 401, "unauthorized")
            bad = await client.request(method, path, json=body, headers=bearer("nonsense"))
            assert_error(bad, 401, "unauthorized")


class TestPolicy:
    async def test_defaults(self, server: RunningServer, client: httpx.AsyncClient) -> None:
        root = await admin_token(server, client)
        response = await client.get("/api/v1/admin/policy", headers=bearer(root))
        assert response.status_code == 200
        assert response.json() == {
            "force_2fa": False,
            "grace_period_days": 0,
            "forced_since": None,
            "updated_at": None,
        }

    async def test_change_and_read_back(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        root = await admin_token(server, client)
        on = await put_policy(client, root, force=True, grace=5)
        assert on == {
            "force_2fa": True,
            "grace_period_days": 5,
            "forced_since": iso(START),
            "updated_at": iso(START),
        }
        server.clock.advance(1800)
        # Editing the grace period keeps the moment force was switched on.
        edited = await put_policy(client, root, force=True, grace=2)
        assert (edited["forced_since"], edited["updated_at"]) == (iso(START), iso(START + 1800))
        got = (await client.get("/api/v1/admin/policy", headers=bearer(root))).json()
        assert got == edited
        off = await put_policy(client, root, force=False, grace=0)
        assert (off["force_2fa"], off["forced_since"]) == (False, None)

    @pytest.mark.parametrize(
        "body",
        [
            {"force_2fa": True, "grace_period_days": -1},
            {"force_2fa": True, "grace_period_days": 366},
            {"force_2fa": "yes", "grace_period_days": 0},
            {"force_2fa": 1, "grace_period_days": 0},
            {"force_2fa": True, "grace_period_days": "7"},
            {"force_2fa": True, "grace_period_days": 7.5},
            {"force_2fa": True, "grace_period_days": True},
            {"force_2fa": True, "grace_period_days": None},
            {"force_2fa": True},
            {"grace_period_days": 0},
            {},
            {"force_2fa": True, "grace_period_days": 0, "extra": 1},
            [True, 0],
        ],
    )
    async def test_invalid_bodies(
        self, server: RunningServer, client: httpx.AsyncClient, body: Any
    ) -> None:
        root = await admin_token(server, client)
        response = await client.put("/api/v1/admin/policy", headers=bearer(root), json=body)
        assert_error(response, 400, "invalid_request")
        policy = (await client.get("/api/v1/admin/policy", headers=bearer(root))).json()
        assert (policy["force_2fa"], policy["grace_period_days"]) == (False, 0)

    async def test_limits_are_accepted(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        root = await admin_token(server, client)
        assert (await put_policy(client, root, force=False, grace=365))["grace_period_days"] == 365
        assert (await put_policy(client, root, force=False, grace=0))["grace_period_days"] == 0

    async def test_every_change_is_audited(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        root = await admin_token(server, client)
        await put_policy(client, root, force=True, grace=7)
        server.clock.advance(60)
        await put_policy(client, root, force=False, grace=0)
        entries = [
            item
            for item in await get_all(client, root, "/api/v1/admin/audit")
            if item["action"] == "policy_changed"
        ]
        actor = "root"
        assert [
            (item["actor"], item["target"], item["detail"], item["ip"], item["client"], item["at"])
            for item in entries
        ] == [
            (
                actor,
                None,
                {
                    "before": {"force_2fa": True, "grace_period_days": 7},
                    "after": {"force_2fa": False, "grace_period_days": 0},
                },
                "127.0.0.1",
                CLIENT,
                iso(START + 60),
            ),
            (
                actor,
                None,
                {
                    "before": {"force_2fa": False, "grace_period_days": 0},
                    "after": {"force_2fa": True, "grace_period_days": 7},
                },
                "127.0.0.1",
                CLIENT,
                iso(START),
            ),
        ]


class TestForcedEnrollment:
    async def test_force_with_no_grace(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        root = await admin_token(server, client)
        await server.add_user("plain")
        await server.add_user("secure")
        before = (await login(client, "plain"))["token"]
        secure = (await login(client, "secure"))["token"]
        secret, _ = await enable_totp(client, secure, server.clock)
        await put_policy(client, root, force=True, grace=0)

        plain = await login(client, "plain")
        assert plain["status"] == "enrollment_required"
        assert plain["user"]["enrollment_deadline"] == iso(START + 30)  # enable_totp moved 30 s
        assert plain["user"]["policy"] == {"force_2fa": True, "grace_period_days": 0}
        assert (await login(client, "secure"))["status"] == "totp_required"
        # A session with 2FA behind it keeps full access; one without is held to the setup.
        response = await client.get("/api/v1/me/history", headers=bearer(secure))
        assert response.status_code == 200
        held = await client.get("/api/v1/me/history", headers=bearer(before))
        assert_error(held, 403, "enrollment_required")
        assert (await sign_in_with_totp(client, "secure", secret, server.clock))["status"] == (
            "authenticated"
        )

    async def test_grace_period(self, server: RunningServer, client: httpx.AsyncClient) -> None:
        root = await admin_token(server, client)
        await server.add_user("alice")
        policy = await put_policy(client, root, force=True, grace=7)
        deadline = iso(START + 7 * DAY)
        assert policy["forced_since"] == iso(START)

        within = await login(client, "alice")
        assert within["status"] == "authenticated"
        assert within["user"]["enrollment_deadline"] == deadline
        history = await client.get("/api/v1/me/history", headers=bearer(within["token"]))
        assert history.status_code == 200

        server.clock.advance(7 * DAY - 1)
        assert (await login(client, "alice"))["status"] == "authenticated"
        server.clock.advance(2)
        after = await login(client, "alice")
        assert after["status"] == "enrollment_required"
        assert after["user"]["enrollment_deadline"] == deadline

    async def test_switching_force_off_ends_enrollment(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        root = await admin_token(server, client, with_2fa=True)
        await server.add_user("alice")
        await put_policy(client, root, force=True, grace=0)
        assert (await login(client, "alice"))["status"] == "enrollment_required"
        await put_policy(client, root, force=False, grace=0)
        result = await login(client, "alice")
        assert result["status"] == "authenticated"
        assert result["user"]["enrollment_deadline"] is None


@pytest.mark.finding("F05")
class TestExistingSessionsUnderForce:
    async def test_sessions_without_2fa_are_restricted_once_the_grace_is_over(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """Administrators included: a session from before the switch can only set up 2FA,
        read /me and sign out; confirming the setup gives it full access again."""
        root = await admin_token(server, client)
        await server.add_user("plain")
        await put_policy(client, root, force=True, grace=1)
        server.clock.advance(DAY - 600)  # signed in on the last day of the grace period
        root = (await login(client, "root"))["token"]
        plain = (await login(client, "plain"))["token"]
        for token in (plain, root):
            assert (await client.get(HISTORY, headers=bearer(token))).status_code == 200
        server.clock.advance(600)
        for token in (plain, root):
            for method, path in (("GET", HISTORY), ("GET", "/api/v1/me/sessions")):
                assert_error(
                    await client.request(method, path, headers=bearer(token)),
                    403,
                    "enrollment_required",
                )
            assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 200
        assert_error(
            await client.get("/api/v1/admin/policy", headers=bearer(root)),
            403,
            "enrollment_required",
        )
        setup = await client.post(
            "/api/v1/me/totp/setup", headers=bearer(plain), json={"password": PASSWORD}
        )
        assert setup.status_code == 200, setup.text
        code = totp_code(setup.json()["secret"], server.clock)
        confirm = await client.post(
            "/api/v1/me/totp/confirm", headers=bearer(plain), json={"code": code}
        )
        assert confirm.status_code == 200, confirm.text
        assert (await client.get(HISTORY, headers=bearer(plain))).status_code == 200
        events = [
            (item["event"], item["reason"])
            for item in (await client.get(HISTORY, headers=bearer(plain))).json()["items"]
        ]
        assert ("session_restricted", "policy_requires_2fa") in events
        assert (await client.post("/api/v1/logout", headers=bearer(root))).status_code == 204

    async def test_sessions_with_2fa_keep_full_access(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        root = await admin_token(server, client, with_2fa=True)
        await put_policy(client, root, force=True, grace=0)
        server.clock.advance(60)
        assert (await client.get("/api/v1/admin/policy", headers=bearer(root))).status_code == 200


class TestForcedDisconnect:
    async def _forced_user_with_two_sessions(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> tuple[str, list[str], str]:
        root = await admin_token(server, client, with_2fa=True)
        await server.add_user("alice")
        first = (await login(client, "alice"))["token"]
        secret, _ = await enable_totp(client, first, server.clock)
        second = (await sign_in_with_totp(client, "alice", secret, server.clock))["token"]
        await put_policy(client, root, force=True, grace=0)
        return secret, [first, second], root

    async def test_without_acknowledgement_is_refused(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        secret, tokens, _ = await self._forced_user_with_two_sessions(server, client)
        for extra in ({}, {"acknowledge_forced_policy": False}):
            body = {"password": PASSWORD, "code": totp_code(secret, server.clock), **extra}
            response = await client.request(
                "DELETE", "/api/v1/me/totp", headers=bearer(tokens[0]), json=body
            )
            assert_error(response, 409, "policy_requires_2fa")
            assert "signed out" in response.json()["message"]
        me = (await client.get("/api/v1/me", headers=bearer(tokens[0]))).json()
        assert me["totp_enabled"] is True
        assert (await client.get("/api/v1/me", headers=bearer(tokens[1]))).status_code == 200

    async def test_acknowledged_disconnect_signs_out_everywhere(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        secret, tokens, root = await self._forced_user_with_two_sessions(server, client)
        response = await client.request(
            "DELETE",
            "/api/v1/me/totp",
            headers=bearer(tokens[0]),
            json={
                "password": PASSWORD,
                "code": totp_code(secret, server.clock),
                "acknowledge_forced_policy": True,
            },
        )
        assert response.status_code == 200
        assert response.json() == {"totp_enabled": False, "logged_out": True}
        for token in tokens:
            assert_error(await client.get("/api/v1/me", headers=bearer(token)), 401, "unauthorized")
        events = [
            (item["event"], item["success"], item["reason"])
            for item in await get_all(client, root, "/api/v1/admin/history", username="alice")
        ]
        assert events[:2] == [
            ("forced_sign_out", True, "policy_requires_2fa"),
            ("totp_disabled", True, None),
        ]
        again = await login(client, "alice")
        assert again["status"] == "enrollment_required"
        assert again["user"]["totp_enabled"] is False

    async def test_acknowledgement_still_needs_the_password(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        secret, tokens, _ = await self._forced_user_with_two_sessions(server, client)
        response = await client.request(
            "DELETE",
            "/api/v1/me/totp",
            headers=bearer(tokens[0]),
            json={
                "password": "not my password",
                "code": totp_code(secret, server.clock),
                "acknowledge_forced_policy": True,
            },
        )
        assert_error(response, 401, "invalid_credentials")
        for token in tokens:
            assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 200


class TestUsers:
    async def test_list(self, server: RunningServer, client: httpx.AsyncClient) -> None:
        root = await admin_token(server, client)
        await server.add_user("alice")
        server.clock.advance(60)
        alice = (await login(client, "alice"))["token"]
        await enable_totp(client, alice, server.clock)
        response = await client.get("/api/v1/admin/users", headers=bearer(root))
        assert response.status_code == 200
        items = {item["username"]: item for item in response.json()["items"]}
        assert set(items) == {"alice", "root"}
        assert items["alice"] == {
            "username": "alice",
            "is_admin": False,
            "totp_enabled": True,
            "totp_enabled_at": iso(START + 60),
            "created_at": iso(START),
            "last_login": {"at": iso(START + 60), "ip": "127.0.0.1", "client": CLIENT},
            "failed_attempts": 0,
            "locked_until": None,
            "disabled_at": None,
            "password_change_required": False,
            "recovery_codes_left": 10,
        }
        assert items["root"]["is_admin"] is True
        assert items["root"]["totp_enabled"] is False

    async def test_locked_user_shows_and_unlock_clears(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        root = await admin_token(server, client)
        await server.add_user("alice")
        for _ in range(5):
            wrong = await client.post(
                "/api/v1/login", json={"username": "alice", "password": "wrong wrong"}
            )
            assert_error(wrong, 401, "invalid_credentials")
        assert_error(
            await client.post("/api/v1/login", json={"username": "alice", "password": PASSWORD}),
            429,
            "too_many_attempts",
        )
        users = (await client.get("/api/v1/admin/users", headers=bearer(root))).json()["items"]
        alice = next(user for user in users if user["username"] == "alice")
        assert (alice["failed_attempts"], alice["locked_until"]) == (5, iso(START + 30))

        unlocked = await client.post("/api/v1/admin/users/alice/unlock", headers=bearer(root))
        assert unlocked.status_code == 200
        assert (unlocked.json()["failed_attempts"], unlocked.json()["locked_until"]) == (0, None)
        assert (await login(client, "alice"))["status"] == "authenticated"
        audit = (await client.get("/api/v1/admin/audit", headers=bearer(root))).json()["items"]
        assert (audit[0]["action"], audit[0]["target"], audit[0]["detail"]) == (
            "user_unlocked",
            "alice",
            {"failed_attempts": 5},
        )
        missing = await client.post("/api/v1/admin/users/nobody/unlock", headers=bearer(root))
        assert_error(missing, 404, "not_found")

    async def test_create(self, server: RunningServer, client: httpx.AsyncClient) -> None:
        root = await admin_token(server, client)
        response = await client.post(
            "/api/v1/admin/users",
            headers=bearer(root),
            json={"username": "Carol", "password": "eight ch", "is_admin": True},
        )
        assert response.status_code == 201
        created = response.json()
        assert (created["username"], created["is_admin"], created["totp_enabled"]) == (
            "carol",
            True,
            False,
        )
        assert created["last_login"] is None
        plain = await client.post(
            "/api/v1/admin/users",
            headers=bearer(root),
            json={"username": "dave", "password": PASSWORD},
        )
        assert plain.status_code == 201
        assert plain.json()["is_admin"] is False

        signed = await login(client, "carol", "eight ch")
        assert signed["status"] == "authenticated"
        assert signed["user"]["is_admin"] is True
        audit = (await client.get("/api/v1/admin/audit", headers=bearer(root))).json()["items"]
        assert [(item["action"], item["target"], item["detail"]) for item in audit[:2]] == [
            ("user_created", "dave", {"is_admin": False}),
            ("user_created", "carol", {"is_admin": True}),
        ]
        assert (audit[0]["actor"], audit[0]["ip"], audit[0]["client"]) == (
            "root",
            "127.0.0.1",
            CLIENT,
        )

    async def test_create_rejects_duplicates(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        root = await admin_token(server, client)
        await server.add_user("alice")
        for name in ("alice", "ALICE", "root"):
            response = await client.post(
                "/api/v1/admin/users",
                headers=bearer(root),
                json={"username": name, "password": PASSWORD},
            )
            assert_error(response, 409, "conflict")

    @pytest.mark.parametrize(
        "body",
        [
            {"username": "two words", "password": PASSWORD},
            {"username": "", "password": PASSWORD},
            {"username": "a" * 65, "password": PASSWORD},
            {"username": "-dash-first", "password": PASSWORD},
            {"username": "slash/name", "password": PASSWORD},
            {"username": "frank", "password": "seven c"},
            {"username": "frank", "password": ""},
            {"username": "frank"},
            {"password": PASSWORD},
            {"username": "frank", "password": PASSWORD, "is_admin": "yes"},
            {"username": 7, "password": PASSWORD},
            {"username": "frank", "password": PASSWORD, "role": "admin"},
        ],
    )
    async def test_create_rejects_invalid_input(
        self, server: RunningServer, client: httpx.AsyncClient, body: dict[str, Any]
    ) -> None:
        root = await admin_token(server, client)
        response = await client.post("/api/v1/admin/users", headers=bearer(root), json=body)
        assert_error(response, 400, "invalid_request")
        users = (await client.get("/api/v1/admin/users", headers=bearer(root))).json()["items"]
        assert [user["username"] for user in users] == ["root"]

    async def test_create_accepts_the_longest_name(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        root = await admin_token(server, client)
        name = "a" + "b" * 62 + "9"
        response = await client.post(
            "/api/v1/admin/users",
            headers=bearer(root),
            json={"username": name, "password": PASSWORD},
        )
        assert response.status_code == 201
        assert (await login(client, name))["status"] == "authenticated"


class TestReset2fa:
    async def test_removes_2fa_and_ends_sessions(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        root = await admin_token(server, client, with_2fa=True)
        await server.add_user("alice")
        first = (await login(client, "alice"))["token"]
        secret, _ = await enable_totp(client, first, server.clock)
        second = (await sign_in_with_totp(client, "alice", secret, server.clock))["token"]

        response = await client.post("/api/v1/admin/users/alice/reset-2fa", headers=bearer(root))
        assert response.status_code == 200
        assert (response.json()["username"], response.json()["totp_enabled"]) == ("alice", False)
        for token in (first, second):
            assert_error(await client.get("/api/v1/me", headers=bearer(token)), 401, "unauthorized")
        audit = (await client.get("/api/v1/admin/audit", headers=bearer(root))).json()["items"]
        assert (audit[0]["action"], audit[0]["target"], audit[0]["detail"]) == (
            "totp_reset",
            "alice",
            {"had_2fa": True, "sessions_ended": 2},
        )
        assert (audit[0]["ip"], audit[0]["client"]) == ("127.0.0.1", CLIENT)

        result = await login(client, "alice")
        assert result["status"] == "authenticated"
        assert result["user"]["totp_enabled"] is False
        assert result["user"]["recovery_codes_left"] == 0
        events = [item["event"] for item in await get_all(client, root, "/api/v1/admin/history")]
        assert "totp_reset_by_admin" in events

    async def test_unknown_user(self, server: RunningServer, client: httpx.AsyncClient) -> None:
        root = await admin_token(server, client)
        response = await client.post("/api/v1/admin/users/nobody/reset-2fa", headers=bearer(root))
        assert_error(response, 404, "not_found")

    async def test_without_2fa_nothing_changes(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """Issue 11: a reset of nothing is refused (409) and changes nothing: the user's
        session lives on and neither the audit log nor the history claim a reset."""
        root = await admin_token(server, client)
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]

        response = await client.post("/api/v1/admin/users/alice/reset-2fa", headers=bearer(root))
        assert_error(response, 409, "conflict")
        assert "no two-factor authentication to reset" in response.json()["message"]
        assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 200
        audit = (await client.get("/api/v1/admin/audit", headers=bearer(root))).json()["items"]
        assert "totp_reset" not in [entry["action"] for entry in audit]
        events = [item["event"] for item in await get_all(client, root, "/api/v1/admin/history")]
        assert "totp_reset_by_admin" not in events


class TestAdminHistory:
    async def _events(self, server: RunningServer, client: httpx.AsyncClient) -> str:
        root = await admin_token(server, client)
        await server.add_user("alice")
        await server.add_user("bob")
        for name, password in (
            ("alice", "wrong one"),
            ("alice", PASSWORD),
            ("bob", PASSWORD),
            ("mallory", "guess guess"),
            ("bob", "wrong two"),
        ):
            await client.post("/api/v1/login", json={"username": name, "password": password})
        return root

    async def test_everyone_newest_first(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        root = await self._events(server, client)
        items = await get_all(client, root, "/api/v1/admin/history")
        assert [
            (item["username"], item["success"], item["reason"], item["known_user"])
            for item in items
        ] == [
            ("bob", False, "bad_password", True),
            ("mallory", False, "unknown_user", False),
            ("bob", True, None, True),
            ("alice", True, None, True),
            ("alice", False, "bad_password", True),
            ("root", True, None, True),
        ]
        for item in items:
            assert (item["ip"], item["client"], item["event"]) == ("127.0.0.1", CLIENT, "password")

    async def test_filters(self, server: RunningServer, client: httpx.AsyncClient) -> None:
        root = await self._events(server, client)
        url = "/api/v1/admin/history"

        def names(items: list[dict[str, Any]]) -> list[tuple[str, bool]]:
            return [(item["username"], item["success"]) for item in items]

        assert names(await get_all(client, root, url, username="alice")) == [
            ("alice", True),
            ("alice", False),
        ]
        assert names(await get_all(client, root, url, username="ALICE")) == [
            ("alice", True),
            ("alice", False),
        ]
        assert names(await get_all(client, root, url, username="mallory")) == [("mallory", False)]
        assert names(await get_all(client, root, url, success="false")) == [
            ("bob", False),
            ("mallory", False),
            ("alice", False),
        ]
        assert names(await get_all(client, root, url, success="true")) == [
            ("bob", True),
            ("alice", True),
            ("root", True),
        ]
        assert names(await get_all(client, root, url, username="bob", success="false")) == [
            ("bob", False)
        ]
        assert await get_all(client, root, url, username="nobody") == []

    async def test_paging(self, server: RunningServer, client: httpx.AsyncClient) -> None:
        root = await self._events(server, client)
        url = "/api/v1/admin/history"
        everything = await get_all(client, root, url)
        for limit in (1, 2, 4):
            walked = await walk(client, root, url, limit)
            assert [item["id"] for item in walked] == [item["id"] for item in everything]
        failures = await walk(client, root, url, 1, success="false")
        assert [item["username"] for item in failures] == ["bob", "mallory", "alice"]

    @pytest.mark.parametrize(
        "params",
        [
            {"success": "yes"},
            {"success": "1"},
            {"limit": 0},
            {"limit": 201},
            {"limit": "x"},
            {"before": "x"},
            {"user": "alice"},
            {"username": "a" * 257},
        ],
    )
    async def test_bad_parameters(
        self, server: RunningServer, client: httpx.AsyncClient, params: dict[str, Any]
    ) -> None:
        root = await admin_token(server, client)
        response = await client.get("/api/v1/admin/history", headers=bearer(root), params=params)
        assert_error(response, 400, "invalid_request")


class TestAudit:
    async def test_paging_newest_first(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        root = await admin_token(server, client)
        for grace in range(1, 6):
            await put_policy(client, root, force=False, grace=grace)
        everything = await get_all(client, root, "/api/v1/admin/audit")
        # The fixture's own account creation is audited too, as the test actor.
        assert [item["action"] for item in everything] == ["policy_changed"] * 5 + ["user_created"]
        assert (everything[-1]["actor"], everything[-1]["target"]) == ("test", "root")
        graces = [item["detail"]["after"]["grace_period_days"] for item in everything[:5]]
        assert graces == [5, 4, 3, 2, 1]
        ids = [item["id"] for item in everything]
        assert ids == sorted(ids, reverse=True)
        for limit in (1, 4):
            walked = await walk(client, root, "/api/v1/admin/audit", limit)
            assert [item["id"] for item in walked] == ids
        default = (await client.get("/api/v1/admin/audit", headers=bearer(root))).json()
        assert len(default["items"]) == 6
        assert default["next_before"] is None
        for params in ({"limit": 0}, {"limit": 201}, {"before": "no"}):
            response = await client.get("/api/v1/admin/audit", headers=bearer(root), params=params)
            assert_error(response, 400, "invalid_request")
