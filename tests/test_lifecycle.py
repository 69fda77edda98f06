"""The account lifecycle (issue 14) against the real server: a person changes their password;
administrators set passwords (temporary ones force a change first), disable, enable, delete
and promote accounts, under the rules that keep someone able to administer tfa."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tfa_server.admin import Actor, Admin
from tfa_server.errors import Conflict

from .conftest import (
    PASSWORD,
    RunningServer,
    assert_error,
    bearer,
    enable_totp,
    login,
    totp_code,
    user_with_2fa,
)

API = "/api/v1"
NEW = "a brand new passphrase"
TEMPORARY = "temporary-7Hq2-xW9k"


async def admin(server: RunningServer, client: httpx.AsyncClient, name: str = "root") -> str:
    await server.add_user(name, admin=True)
    return str((await login(client, name))["token"])


async def login_as(
    client: httpx.AsyncClient, name: str, password: str = PASSWORD
) -> httpx.Response:
    return await client.post(f"{API}/login", json={"username": name, "password": password})


async def change(
    client: httpx.AsyncClient, token: str, current: str, new: str, code: str | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"current_password": current, "new_password": new}
    if code is not None:
        body["code"] = code
    return await client.post(f"{API}/me/password", headers=bearer(token), json=body)


async def reset(
    client: httpx.AsyncClient, root: str, name: str, password: str = TEMPORARY, **extra: Any
) -> httpx.Response:
    return await client.post(
        f"{API}/admin/users/{name}/password",
        headers=bearer(root),
        json={"password": password, **extra},
    )


async def act(client: httpx.AsyncClient, root: str, method: str, path: str) -> httpx.Response:
    return await client.request(method, f"{API}/admin/users/{path}", headers=bearer(root))


async def events(client: httpx.AsyncClient, token: str) -> list[str]:
    page = (await client.get(f"{API}/me/history", headers=bearer(token))).json()
    return [item["event"] for item in page["items"]]


async def admin_rows(client: httpx.AsyncClient, root: str, name: str) -> list[dict[str, Any]]:
    page = await client.get(f"{API}/admin/history", headers=bearer(root), params={"username": name})
    assert page.status_code == 200, page.text
    rows: list[dict[str, Any]] = page.json()["items"]
    return rows


async def audit(client: httpx.AsyncClient, root: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (
        await client.get(f"{API}/admin/audit", headers=bearer(root))
    ).json()["items"]
    return items


async def listed(client: httpx.AsyncClient, root: str, name: str) -> dict[str, Any]:
    items = (await client.get(f"{API}/admin/users", headers=bearer(root))).json()["items"]
    return next(item for item in items if item["username"] == name)


class TestChangePassword:
    async def test_without_2fa_the_new_password_works_and_other_sessions_end(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """Change my password: 204; the old one stops working, the current session stays,
        every other session ends, and the change is in the history."""
        await server.add_user("alice")
        here = (await login(client, "alice"))["token"]
        elsewhere = (await login(client, "alice"))["token"]
        assert (await change(client, here, PASSWORD, NEW)).status_code == 204
        assert (await client.get(f"{API}/me", headers=bearer(here))).status_code == 200
        gone = await client.get(f"{API}/me", headers=bearer(elsewhere))
        assert_error(gone, 401, "unauthorized")
        assert_error(await login_as(client, "alice"), 401, "invalid_credentials")
        assert (await login_as(client, "alice", NEW)).json()["status"] == "authenticated"
        assert (await events(client, here))[:3] == ["password", "password", "password_changed"]

    async def test_with_2fa_a_code_is_required_and_spent(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """`code` is required when the user has 2FA; a wrong one changes nothing, a right one
        (TOTP or recovery code) is spent with the change."""
        secret, codes, token = await user_with_2fa(server, client)
        missing = assert_error(await change(client, token, PASSWORD, NEW), 400, "invalid_request")
        assert "code" in missing["message"]
        assert_error(await change(client, token, PASSWORD, NEW, "000000"), 401, "invalid_code")
        assert_error(await login_as(client, "alice", NEW), 401, "invalid_credentials")
        code = totp_code(secret, server.clock)
        assert (await change(client, token, PASSWORD, NEW, code)).status_code == 204
        reused = await change(client, token, NEW, "yet another passphrase", code)
        assert_error(reused, 401, "code_reused")
        assert (await change(client, token, NEW, PASSWORD, codes[0])).status_code == 204
        assert (await login_as(client, "alice")).json()["status"] == "totp_required"

    async def test_the_password_rules_hold(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """Same rules as today (8 to 1024 characters), and the new one must differ."""
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]
        same = assert_error(await change(client, token, PASSWORD, PASSWORD), 400, "invalid_request")
        assert "differ" in same["message"]
        short = assert_error(await change(client, token, PASSWORD, "short"), 400, "invalid_request")
        assert short["message"] == "Passwords need at least 8 characters."
        assert_error(await change(client, token, PASSWORD, "x" * 1025), 400, "invalid_request")
        assert (await change(client, token, PASSWORD, "x" * 1024)).status_code == 204

    async def test_wrong_current_passwords_count_against_the_sign_in_throttle(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """A wrong current password is a failed guess like at sign-in: after the free ones the
        account is locked, for the change and for signing in alike."""
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]
        free = server.settings.throttle.account_free_failures
        for _ in range(free):
            wrong = await change(client, token, "not the password", NEW)
            assert_error(wrong, 401, "invalid_credentials")
        locked = await change(client, token, PASSWORD, NEW)
        assert_error(locked, 429, "too_many_attempts")
        assert_error(await login_as(client, "alice"), 429, "too_many_attempts")
        history = await client.get(
            f"{API}/me/history", headers=bearer(token), params={"success": "false"}
        )
        reasons = [item["reason"] for item in history.json()["items"]]
        assert reasons.count("bad_password") == free


class TestTemporaryPassword:
    async def test_a_temporary_password_forces_the_change_before_anything_else(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """Reset (temporary by default): sessions end; the next sign-in is
        password_change_required with a session that opens only /me, the change and logout;
        the change then continues the sign-in."""
        root = await admin(server, client)
        await server.add_user("alice")
        before = (await login(client, "alice"))["token"]
        answer = await reset(client, root, "alice")
        assert answer.status_code == 200, answer.text
        assert answer.json()["password_change_required"] is True
        assert_error(await client.get(f"{API}/me", headers=bearer(before)), 401, "unauthorized")
        assert_error(await login_as(client, "alice"), 401, "invalid_credentials")

        signed = (await login_as(client, "alice", TEMPORARY)).json()
        assert signed["status"] == "password_change_required"
        assert signed["user"] == {"username": "alice"}
        restricted = bearer(signed["token"])
        me = await client.get(f"{API}/me", headers=restricted)
        assert me.json()["password_change_required"] is True
        for method, path in [
            ("GET", "/me/history"),
            ("GET", "/me/sessions"),
            ("POST", "/me/totp/setup"),
            ("GET", "/admin/users"),
        ]:
            refused = await client.request(method, f"{API}{path}", headers=restricted)
            assert_error(refused, 403, "password_change_required")
        same = await change(client, signed["token"], TEMPORARY, TEMPORARY)
        assert_error(same, 400, "invalid_request")

        done = await change(client, signed["token"], TEMPORARY, NEW)
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "authenticated"
        assert done.json()["user"]["password_change_required"] is False
        full = bearer(done.json()["token"])
        assert (await client.get(f"{API}/me/sessions", headers=full)).status_code == 200
        assert_error(await client.get(f"{API}/me", headers=restricted), 401, "unauthorized")
        assert_error(await login_as(client, "alice", TEMPORARY), 401, "invalid_credentials")
        assert (await login_as(client, "alice", NEW)).json()["status"] == "authenticated"

    async def test_after_the_change_the_second_factor_follows(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """A user with 2FA changes a temporary password without a code, and then the sign-in
        asks for the code: the temporary password alone never gives a full session."""
        root = await admin(server, client)
        secret, _, _ = await user_with_2fa(server, client)
        await reset(client, root, "alice")
        signed = (await login_as(client, "alice", TEMPORARY)).json()
        assert signed["status"] == "password_change_required"
        done = (await change(client, signed["token"], TEMPORARY, NEW)).json()
        assert done["status"] == "totp_required"
        assert done["user"] == {"username": "alice"}
        second = await client.post(
            f"{API}/login/totp",
            headers=bearer(done["token"]),
            json={"code": totp_code(secret, server.clock)},
        )
        assert second.json()["status"] == "authenticated"

    async def test_after_the_change_a_forced_policy_takes_the_user_to_setup(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        root = await admin(server, client)
        await enable_totp(client, root, server.clock)
        await server.add_user("alice")
        policy = {"force_2fa": True, "grace_period_days": 0}
        await client.put(f"{API}/admin/policy", headers=bearer(root), json=policy)
        await reset(client, root, "alice")
        signed = (await login_as(client, "alice", TEMPORARY)).json()
        done = (await change(client, signed["token"], TEMPORARY, NEW)).json()
        assert done["status"] == "enrollment_required"

    async def test_a_permanent_reset_signs_in_as_usual_and_the_session_is_short(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """temporary=false: the next sign-in is the usual one. A temporary password's session
        lasts as long as a sign-in's challenge."""
        root = await admin(server, client)
        await server.add_user("alice")
        await server.add_user("bob")
        await reset(client, root, "alice", temporary=False)
        assert (await login_as(client, "alice", TEMPORARY)).json()["status"] == "authenticated"
        await reset(client, root, "bob")
        restricted = (await login_as(client, "bob", TEMPORARY)).json()["token"]
        server.clock.advance(server.settings.sessions.challenge_lifetime + 1)
        late = await change(client, restricted, TEMPORARY, NEW)
        assert_error(late, 401, "unauthorized")

    async def test_the_reset_is_audited_and_in_the_users_history(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        root = await admin(server, client)
        await server.add_user("alice")
        await reset(client, root, "alice")
        entry = (await audit(client, root))[0]
        assert entry["actor"] == "root"
        assert entry["action"] == "password_reset"
        assert entry["target"] == "alice"
        assert entry["ip"] == "127.0.0.1"
        assert entry["detail"] == {"temporary": True, "sessions_ended": 0}
        row = (await admin_rows(client, root, "alice"))[0]
        assert (row["event"], row["reason"]) == ("password_reset_by_admin", "temporary")
        short = await reset(client, root, "alice", password="short")
        assert_error(short, 400, "invalid_request")
        assert_error(await reset(client, root, "nobody"), 404, "not_found")


async def test_a_temporary_password_is_no_first_factor_for_a_relying_service(
    server: RunningServer, client: httpx.AsyncClient
) -> None:
    """A service that sends the password too (it has no first factor of its own) is refused
    a temporary one until it is replaced, even with the right code."""
    root = await admin(server, client)
    secret, _, _ = await user_with_2fa(server, client)
    key = (await Admin(server.core).add_service(Actor("test", None), "vpn", "")).key
    await reset(client, root, "alice")
    body = {"username": "alice", "password": TEMPORARY, "code": totp_code(secret, server.clock)}
    refused = await client.post(f"{API}/verify", headers=bearer(key), json=body)
    assert "temporary password" in assert_error(refused, 403, "password_change_required")["message"]
    row = (await admin_rows(client, root, "alice"))[0]
    assert (row["event"], row["reason"], row["service"]) == (
        "verify",
        "password_change_required",
        "vpn",
    )


class TestDisable:
    async def test_a_disabled_users_live_session_stops_at_once(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        root = await admin(server, client)
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]
        answer = await act(client, root, "POST", "alice/disable")
        assert answer.status_code == 200, answer.text
        assert answer.json()["disabled_at"] is not None
        assert_error(await client.get(f"{API}/me", headers=bearer(token)), 401, "unauthorized")
        assert (await listed(client, root, "alice"))["disabled_at"] is not None

    async def test_only_the_right_password_learns_the_account_is_disabled(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """Right password: 403 account_disabled with words; wrong password: the same
        invalid_credentials a stranger gets."""
        root = await admin(server, client)
        await server.add_user("alice")
        await act(client, root, "POST", "alice/disable")
        right = assert_error(await login_as(client, "alice"), 403, "account_disabled")
        assert "administrator" in right["message"]
        wrong = await login_as(client, "alice", "not the password")
        stranger = await login_as(client, "nobody", "not the password")
        assert_error(wrong, 401, "invalid_credentials")
        assert wrong.json() == stranger.json()
        rows = await admin_rows(client, root, "alice")
        assert [(r["event"], r["success"], r["reason"]) for r in rows[:3]] == [
            ("password", False, "bad_password"),
            ("password", False, "account_disabled"),
            ("account_disabled", True, None),
        ]
        enabled = await act(client, root, "POST", "alice/enable")
        assert enabled.json()["disabled_at"] is None
        assert (await login_as(client, "alice")).json()["status"] == "authenticated"

    async def test_a_sign_in_in_progress_ends_too(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        root = await admin(server, client)
        secret, _, _ = await user_with_2fa(server, client)
        challenge = (await login(client, "alice"))["token"]
        await act(client, root, "POST", "alice/disable")
        late = await client.post(
            f"{API}/login/totp",
            headers=bearer(challenge),
            json={"code": totp_code(secret, server.clock)},
        )
        assert late.status_code == 401, late.text

    async def test_relying_services_are_told(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """verify/start answers deny with account_disabled; verify answers 403."""
        root = await admin(server, client)
        secret, _, _ = await user_with_2fa(server, client)
        key = (await Admin(server.core).add_service(Actor("test", None), "sshd", "")).key
        await act(client, root, "POST", "alice/disable")
        start = await client.post(
            f"{API}/verify/start", headers=bearer(key), json={"username": "alice"}
        )
        assert start.json()["next"] == "deny"
        assert start.json()["reason"] == "account_disabled"
        code = totp_code(secret, server.clock)
        verify = await client.post(
            f"{API}/verify", headers=bearer(key), json={"username": "alice", "code": code}
        )
        assert_error(verify, 403, "account_disabled")

    async def test_twice_is_a_conflict_in_words(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        root = await admin(server, client)
        await server.add_user("alice")
        not_disabled = await act(client, root, "POST", "alice/enable")
        assert "not disabled" in assert_error(not_disabled, 409, "conflict")["message"]
        await act(client, root, "POST", "alice/disable")
        again = await act(client, root, "POST", "alice/disable")
        assert "already disabled" in assert_error(again, 409, "conflict")["message"]
        actions = [entry["action"] for entry in await audit(client, root)]
        assert actions.count("user_disabled") == 1
        assert "user_enabled" not in actions


class TestDelete:
    async def test_history_stays_for_administrators_and_not_for_a_new_account(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """The account, secrets, codes and sessions go; its history stays readable to
        administrators under the old name, marked deleted; a new account with the same name
        starts with none of it."""
        root = await admin(server, client)
        secret, codes, token = await user_with_2fa(server, client)
        await login_as(client, "alice", "a wrong guess")
        answer = await act(client, root, "DELETE", "alice")
        assert answer.status_code == 204, answer.text
        assert_error(await client.get(f"{API}/me", headers=bearer(token)), 401, "unauthorized")
        users = (await client.get(f"{API}/admin/users", headers=bearer(root))).json()["items"]
        assert [user["username"] for user in users] == ["root"]
        old = await admin_rows(client, root, "alice")
        assert old[0]["event"] == "account_deleted"
        assert {"password", "totp_enabled", "account_deleted"} <= {row["event"] for row in old}
        assert all(row["account_deleted"] and not row["known_user"] for row in old)

        await server.add_user("alice", "another passphrase")
        fresh = await login(client, "alice", "another passphrase")
        assert fresh["status"] == "authenticated"
        assert fresh["user"]["totp_enabled"] is False
        assert fresh["user"]["last_login"] is None
        assert await events(client, fresh["token"]) == ["password"]
        both = await admin_rows(client, root, "alice")
        assert len(both) == len(old) + 1
        assert both[0]["account_deleted"] is False
        assert both[0]["known_user"] is True
        assert (await login_as(client, "alice")).status_code == 401  # the old password
        del secret, codes

    async def test_unknown_and_audited(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        root = await admin(server, client)
        assert_error(await act(client, root, "DELETE", "nobody"), 404, "not_found")
        await server.add_user("alice")
        await act(client, root, "DELETE", "alice")
        entry = (await audit(client, root))[0]
        assert (entry["actor"], entry["action"], entry["target"]) == (
            "root",
            "user_deleted",
            "alice",
        )
        assert entry["detail"] == {"was_admin": False, "had_2fa": False, "sessions_ended": 0}
        assert_error(await act(client, root, "DELETE", "alice"), 404, "not_found")


class TestAdministratorRights:
    async def test_grant_and_remove_take_effect_at_once(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        root = await admin(server, client)
        await server.add_user("alice")
        alice = bearer((await login(client, "alice"))["token"])
        put = await client.put(
            f"{API}/admin/users/alice", headers=bearer(root), json={"is_admin": True}
        )
        assert put.json()["is_admin"] is True
        assert (await client.get(f"{API}/admin/users", headers=alice)).status_code == 200
        await client.put(f"{API}/admin/users/alice", headers=bearer(root), json={"is_admin": False})
        assert_error(await client.get(f"{API}/admin/users", headers=alice), 403, "forbidden")
        actions = [entry["action"] for entry in await audit(client, root)][:2]
        assert actions == ["admin_revoked", "admin_granted"]
        history = [row["event"] for row in await admin_rows(client, root, "alice")][:2]
        assert history == ["admin_revoked", "admin_granted"]
        before = len(await audit(client, root))
        same = await client.put(
            f"{API}/admin/users/alice", headers=bearer(root), json={"is_admin": False}
        )
        assert same.status_code == 200
        assert len(await audit(client, root)) == before  # asking for what holds records nothing

    async def test_the_last_enabled_administrator_is_protected(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """Nobody disables, deletes or demotes the last enabled administrator, and nobody
        disables or deletes their own account: each a 409 with words, nothing changed."""
        root = await admin(server, client)
        demote = await client.put(
            f"{API}/admin/users/root", headers=bearer(root), json={"is_admin": False}
        )
        assert "last enabled administrator" in assert_error(demote, 409, "conflict")["message"]
        for method, path in [("POST", "root/disable"), ("DELETE", "root")]:
            own = assert_error(await act(client, root, method, path), 409, "conflict")
            assert "your own account" in own["message"]

        boss = await admin(server, client, "boss")
        # Another administrator may act on root; a disabled administrator does not count.
        assert (await act(client, boss, "POST", "root/disable")).status_code == 200
        last = await client.put(
            f"{API}/admin/users/boss", headers=bearer(boss), json={"is_admin": False}
        )
        assert "boss is the last" in assert_error(last, 409, "conflict")["message"]
        assert (await listed(client, boss, "boss"))["is_admin"] is True
        # A second enabled administrator: now one may step down.
        await act(client, boss, "POST", "root/enable")
        stepped = await client.put(
            f"{API}/admin/users/boss", headers=bearer(boss), json={"is_admin": False}
        )
        assert stepped.status_code == 200
        users = await client.get(f"{API}/admin/users", headers=bearer(boss))
        assert_error(users, 403, "forbidden")


async def test_the_console_may_act_on_any_account_but_the_last_administrator(
    server: RunningServer,
) -> None:
    """The console's actor (cli:<login>) owns no account, so only the last-administrator rule
    can stop it."""
    await server.add_user("alice", admin=True)
    await server.add_user("bob", admin=True)
    console, actor = Admin(server.core), Actor("cli:root", None)
    await console.disable(actor, "alice")
    await console.enable(actor, "alice")
    await console.delete(actor, "bob")
    with pytest.raises(Conflict, match="alice is the last enabled administrator"):
        await console.delete(actor, "alice")
    with pytest.raises(Conflict, match="alice is the last enabled administrator"):
        await console.set_admin(actor, "alice", False)
