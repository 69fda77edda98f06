"""Issue 15, "Administrators: one place per user": the users list paged and searched on the
server (GET /admin/users with q, limit, after and state filters), one account by name (GET
/admin/users/{username}) with its recovery codes left, and the client calls on top of them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tfa_server.auth import canonical_username
from tfa_server.storage import users
from tfa_server.storage.database import Connection, SqliteConnection, transaction
from tfa_server.storage.schema import migrate
from tfa_tui.api import NotFound, TfaClient

from .conftest import RunningServer, assert_error, bearer, enable_totp, login, sqlite_only

USERS = "/api/v1/admin/users"


async def _admin(server: RunningServer, client: httpx.AsyncClient) -> dict[str, str]:
    await server.add_user("root", admin=True)
    return bearer((await login(client, "root"))["token"])


async def _names(client: httpx.AsyncClient, auth: dict[str, str], **query: Any) -> list[str]:
    response = await client.get(USERS, params=query, headers=auth)
    assert response.status_code == 200, response.text
    return [item["username"] for item in response.json()["items"]]


class TestSearch:
    async def test_q_is_a_case_insensitive_part_of_the_name(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """`?q=` narrows by any part of the name, whatever its case."""
        auth = await _admin(server, client)
        for name in ("alice", "Malice", "bob", "alicia"):
            await server.add_user(name)
        assert await _names(client, auth, q="ALI") == ["alice", "alicia", "malice"]
        assert await _names(client, auth, q="lic") == ["alice", "alicia", "malice"]
        assert await _names(client, auth, q="zzz") == []
        # Longer than the parts kept of names (3 characters): every part must be there, in order.
        assert await _names(client, auth, q="alic") == ["alice", "alicia", "malice"]
        assert await _names(client, auth, q="malice") == ["malice"]
        assert await _names(client, auth, q="licia") == ["alicia"]
        assert await _names(client, auth, q="alicb") == []
        assert await _names(client, auth, q="icea") == []
        # An empty q is no filter, as every empty query value is.
        assert await _names(client, auth, q="") == ["alice", "alicia", "bob", "malice", "root"]

    async def test_wildcards_are_plain_characters(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """'%' and '_' in q match themselves: LIKE would make '_' any character and '%' any
        text, so 'a_b' would find 'axb' and '%' every account."""
        auth = await _admin(server, client)
        for name in ("a_b", "axb", "a.b"):
            await server.add_user(name)
        assert await _names(client, auth, q="a_b") == ["a_b"]
        assert await _names(client, auth, q="_") == ["a_b"]
        assert await _names(client, auth, q="%") == []
        assert await _names(client, auth, q=".") == ["a.b"]


class TestPaging:
    async def test_after_walks_every_account_once_in_name_order(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """Keyset paging by name: each page starts after the last name of the one before, and
        `next_after` is null on the last."""
        auth = await _admin(server, client)
        made = [f"user{number:02d}" for number in range(23)]
        for name in made:
            await server.add_user(name)
        seen: list[str] = []
        after: str | None = None
        pages = 0
        while True:
            query: dict[str, Any] = {"limit": 7} | ({"after": after} if after else {})
            body = (await client.get(USERS, params=query, headers=auth)).json()
            pages += 1
            seen += [item["username"] for item in body["items"]]
            after = body["next_after"]
            if after is None:
                break
            assert after == body["items"][-1]["username"]
        assert seen == sorted([*made, "root"])
        assert pages == 4  # 24 accounts: 7 + 7 + 7 + 3

    async def test_after_and_q_together(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        auth = await _admin(server, client)
        for name in ("ann", "anna", "bob", "joanne", "zane"):
            await server.add_user(name)
        first = (await client.get(USERS, params={"q": "an", "limit": 2}, headers=auth)).json()
        assert [item["username"] for item in first["items"]] == ["ann", "anna"]
        assert first["next_after"] == "anna"
        rest = await _names(client, auth, q="an", limit=2, after="ANNA")
        assert rest == ["joanne", "zane"]

    @pytest.mark.parametrize(
        ("query", "words"),
        [
            ({"limit": 0}, "'limit' must be at least 1."),
            ({"limit": 201}, "'limit' must be at most 200."),
            ({"limit": "ten"}, "'limit' must be a whole number."),
            ({"admin": "yes"}, "'admin' must be true or false."),
            ({"q": "x" * 65}, "'q' is longer than 64 characters."),
            ({"sort": "name"}, "Unknown query parameter 'sort'."),
        ],
    )
    async def test_bad_queries_are_400_in_words(
        self,
        server: RunningServer,
        client: httpx.AsyncClient,
        query: dict[str, Any],
        words: str,
    ) -> None:
        auth = await _admin(server, client)
        body = assert_error(
            await client.get(USERS, params=query, headers=auth), 400, "invalid_request"
        )
        assert body["message"] == words

    async def test_limit_200_is_allowed(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        auth = await _admin(server, client)
        assert await _names(client, auth, limit=200) == ["root"]

    async def test_only_administrators(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("bob")
        auth = bearer((await login(client, "bob"))["token"])
        assert_error(await client.get(USERS, headers=auth), 403, "forbidden")
        assert_error(await client.get(f"{USERS}/bob", headers=auth), 403, "forbidden")
        assert_error(await client.get(USERS), 401, "unauthorized")


class TestFilters:
    async def test_each_state_filter_both_ways(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """admin, two_factor, locked and disabled: true keeps those, false the others; a lock
        that ran out is not locked any more."""
        auth = await _admin(server, client)
        for name in ("boss", "carol", "dave", "erin", "frank"):
            await server.add_user(name, admin=name == "boss")
        await enable_totp(client, (await login(client, "carol"))["token"], server.clock)
        assert (await client.post(f"{USERS}/erin/disable", headers=auth)).status_code == 200
        for _ in range(5):  # the fifth wrong password in a row locks for 30 s
            wrong = {"username": "dave", "password": "not the password"}
            assert (await client.post("/api/v1/login", json=wrong)).status_code == 401
        everyone = ["boss", "carol", "dave", "erin", "frank", "root"]

        assert await _names(client, auth, admin="true") == ["boss", "root"]
        assert await _names(client, auth, admin="false") == ["carol", "dave", "erin", "frank"]
        assert await _names(client, auth, two_factor="true") == ["carol"]
        assert await _names(client, auth, two_factor="false") == [
            name for name in everyone if name != "carol"
        ]
        assert await _names(client, auth, disabled="true") == ["erin"]
        assert await _names(client, auth, disabled="false") == [
            name for name in everyone if name != "erin"
        ]
        assert await _names(client, auth, locked="true") == ["dave"]
        assert await _names(client, auth, locked="false") == [
            name for name in everyone if name != "dave"
        ]
        assert await _names(client, auth, admin="false", q="a") == ["carol", "dave", "frank"]

        server.clock.advance(31)
        assert await _names(client, auth, locked="true") == []
        assert "dave" in await _names(client, auth, locked="false")


class TestOneUser:
    async def test_get_one_account_and_its_recovery_codes_left(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """GET /admin/users/{name} answers the same account the list shows, recovery codes
        left included; a used code counts down in both."""
        auth = await _admin(server, client)
        await server.add_user("carol")
        one = (await client.get(f"{USERS}/CAROL", headers=auth)).json()
        assert one["username"] == "carol"
        assert one["recovery_codes_left"] == 0
        token = (await login(client, "carol"))["token"]
        _, codes = await enable_totp(client, token, server.clock)
        assert (await client.get(f"{USERS}/carol", headers=auth)).json()[
            "recovery_codes_left"
        ] == 10
        challenge = (await login(client, "carol"))["token"]
        used = await client.post(
            "/api/v1/login/recovery", headers=bearer(challenge), json={"code": codes[0]}
        )
        assert used.status_code == 200, used.text
        one = (await client.get(f"{USERS}/carol", headers=auth)).json()
        assert one["recovery_codes_left"] == 9
        listed = (await client.get(USERS, params={"q": "carol"}, headers=auth)).json()["items"]
        assert listed == [one]
        # Every answer about an account carries it, an action's too.
        unlocked = (await client.post(f"{USERS}/carol/unlock", headers=auth)).json()
        assert unlocked["recovery_codes_left"] == 9

    async def test_unknown_account_is_404(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        auth = await _admin(server, client)
        assert_error(await client.get(f"{USERS}/nobody", headers=auth), 404, "not_found")


class TestClient:
    async def test_user_page_and_user(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """The terminal client's calls: user_page narrows and pages, user reads one, and
        users() still returns every account (through the pages)."""
        await server.add_user("root", admin=True)
        for number in range(5):
            await server.add_user(f"member{number}")
        async with TfaClient(server.base_url) as api:
            await api.login("root", "correct horse battery")
            page = await api.user_page(q="MEMBER", limit=3)
            assert [item.username for item in page.items] == ["member0", "member1", "member2"]
            assert page.next_after == "member2"
            rest = await api.user_page(q="member", after=page.next_after)
            assert [item.username for item in rest.items] == ["member3", "member4"]
            assert rest.next_after is None
            admins = await api.user_page(admin=True)
            assert [item.username for item in admins.items] == ["root"]
            assert (await api.user("member3")).recovery_codes_left == 0
            with pytest.raises(NotFound):
                await api.user("nobody")
            assert len(await api.users()) == 6


class TestQueryPlan:
    @pytest.fixture
    def many(self, connection: Connection) -> SqliteConnection:
        assert isinstance(connection, SqliteConnection)
        migrate(connection)
        with transaction(connection):
            connection.executemany(
                "INSERT INTO users (username, password_hash, created_at) VALUES ($1, 'x', 0)",
                [(f"user{number:05d}",) for number in range(2000)],
            )
        return connection  # no ANALYZE: the server never runs it, so the planner has no statistics

    def _plan(self, conn: SqliteConnection, **where: Any) -> list[str]:
        statements: list[str] = []
        conn.raw.set_trace_callback(statements.append)
        try:
            users.page(conn, 51, None, users.UserFilter(**where), 0.0)
        finally:
            conn.raw.set_trace_callback(None)
        [sql] = [text for text in statements if "FROM users" in text]
        return [row[3] for row in conn.raw.execute(f"EXPLAIN QUERY PLAN {sql}")]

    # SQLite's planner, which has no statistics here (the server never runs ANALYZE); the
    # PostgreSQL schema gives the name the same UNIQUE index (users_username_key) to walk.
    @sqlite_only
    @pytest.mark.parametrize(
        "where", [{}, {"contains": "user0"}, {"locked": True}, {"two_factor": False}]
    )
    def test_a_page_walks_the_name_index_without_sorting(
        self, many: SqliteConnection, where: dict[str, Any]
    ) -> None:
        """The page stops after `limit` matches along the name index: no sort of every row."""
        plan = self._plan(many, **where)
        assert any("sqlite_autoindex_users" in step for step in plan), plan
        assert not any("TEMP B-TREE" in step for step in plan), plan

    @sqlite_only
    @pytest.mark.parametrize("term", ["user1", "zq", "01999", "x"])
    def test_a_rare_term_starts_from_the_parts_of_names(
        self, many: SqliteConnection, term: str
    ) -> None:
        """A term in few names (none here, or one) is looked up in name_parts and only those
        names are sorted, instead of a walk over every name (issue 17, B8)."""
        plan = self._plan(many, contains=term)
        assert any("name_parts USING PRIMARY KEY (part=?)" in step for step in plan), plan
        assert not any(step.startswith("SCAN u") for step in plan), plan

    def test_names_are_stored_in_lower_case(self) -> None:
        """The search lower-cases q and compares exactly: true only while names are lower."""
        assert canonical_username("MiXeD") == "mixed"
