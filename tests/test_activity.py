"""Issue 15, "Charts": GET /me/activity and GET /admin/activity. Sign-ins completed and
attempts refused per day in the reader's time zone (every day present), the last refused
attempt, and for administrators the addresses and names refused most in the last 24 hours
and 7 days; from the rollup that schema version 5 keeps beside the history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tfa_server.storage import history
from tfa_server.storage.database import Connection, transaction
from tfa_server.storage.history import HistoryEvent
from tfa_server.storage.schema import LATEST, MIGRATIONS, migrate, version
from tfa_server.storage.schema_postgres import MIGRATIONS as POSTGRES_MIGRATIONS
from tfa_tui.api import TfaClient

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
from .scale import activity_scale

ME = "/api/v1/me/activity"
ADMIN = "/api/v1/admin/activity"
HOUR = 3600.0
DAY = 86_400.0
WRONG = {"password": "not the password"}


def _days(body: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [(day["day"], day["succeeded"], day["failed"]) for day in body["days"]]


async def _get(client: httpx.AsyncClient, path: str, token: str, **query: Any) -> dict[str, Any]:
    response = await client.get(path, params=query, headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _attempt(client: httpx.AsyncClient, name: str, password: str) -> int:
    body = {"username": name, "password": password}
    return (await client.post("/api/v1/login", json=body)).status_code


@pytest.fixture
async def alice_week(server: RunningServer, client: httpx.AsyncClient) -> None:
    """alice's sign-ins by the server's own rules, the clock placing them on known days:
    Thu 26 Nov 12:00 UTC two sign-ins and one wrong password; Fri 27 Nov 23:30 one wrong
    password; today, Sat 28 Nov 12:00, one sign-in, five wrong passwords (the fifth locks)
    and three attempts refused while locked (counted into one history row)."""
    server.clock.value = START - 2 * DAY
    await server.add_user("root", admin=True)
    await server.add_user("alice")
    assert await _attempt(client, "alice", PASSWORD) == 200
    assert await _attempt(client, "alice", PASSWORD) == 200
    assert await _attempt(client, "alice", "wrong one") == 401
    server.clock.value = START - 12.5 * HOUR
    assert await _attempt(client, "alice", "wrong one") == 401
    server.clock.value = START
    assert await _attempt(client, "alice", PASSWORD) == 200
    for _ in range(5):
        assert await _attempt(client, "alice", "wrong one") == 401
    for _ in range(3):
        assert await _attempt(client, "alice", PASSWORD) == 429


class TestPerDay:
    async def test_known_days_give_exactly_their_numbers(
        self, server: RunningServer, client: httpx.AsyncClient, alice_week: None
    ) -> None:
        """Per day, oldest first, today last; days without anything are there with zeros;
        refusals while throttled count as many as they were (the row's count)."""
        server.clock.advance(60)  # the lock is over
        token = (await login(client, "alice"))["token"]  # one more sign-in today
        body = await _get(client, ME, token, days=5)
        assert _days(body) == [
            ("2026-11-24", 0, 0),
            ("2026-11-25", 0, 0),
            ("2026-11-26", 2, 1),
            ("2026-11-27", 0, 1),
            ("2026-11-28", 2, 8),
        ]
        assert len((await _get(client, ME, token))["days"]) == 30  # the default
        assert len((await _get(client, ME, token, days=90))["days"]) == 90
        assert _days(await _get(client, ME, token, days=1)) == [("2026-11-28", 2, 8)]

    async def test_last_failure_is_the_newest_refused_attempt(
        self, server: RunningServer, client: httpx.AsyncClient, alice_week: None
    ) -> None:
        server.clock.advance(60)  # the lock is over
        token = (await login(client, "alice"))["token"]
        assert (await _get(client, ME, token))["last_failure"] == {
            "at": "2026-11-28T12:00:00Z",
            "ip": "127.0.0.1",
            "event": "password",
            "reason": "throttled",
        }

    @pytest.mark.parametrize(
        ("utc_offset", "expected"),
        [
            # UTC+1: Friday 23:30 UTC is Saturday 00:30 there.
            (60, [("2026-11-26", 2, 1), ("2026-11-27", 0, 0), ("2026-11-28", 1, 9)]),
            # UTC+14: it is already Sunday 02:00; Thursday 12:00 UTC was Friday 02:00.
            (840, [("2026-11-27", 2, 1), ("2026-11-28", 0, 1), ("2026-11-29", 1, 8)]),
            # UTC-13: it is still Friday 23:00; Thursday 12:00 UTC was Wednesday 23:00.
            (-780, [("2026-11-25", 2, 1), ("2026-11-26", 0, 0), ("2026-11-27", 1, 9)]),
            # UTC+5:45 (Nepal): quarter hours, as the buckets are.
            (345, [("2026-11-26", 2, 1), ("2026-11-27", 0, 0), ("2026-11-28", 1, 9)]),
        ],
    )
    async def test_utc_offset_moves_days_to_the_readers_midnight(
        self,
        server: RunningServer,
        client: httpx.AsyncClient,
        alice_week: None,
        utc_offset: int,
        expected: list[tuple[str, int, int]],
    ) -> None:
        server.clock.advance(60)
        admin = (await login(client, "root"))["token"]
        body = await _get(client, ADMIN, admin, days=3, utc_offset=utc_offset, username="alice")
        assert _days(body) == expected

    async def test_a_sign_in_with_2fa_counts_once_and_a_wrong_code_as_refused(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        """The password step of a 2FA sign-in is not a sign-in yet; the code completes it."""
        await server.add_user("bob")
        token = (await login(client, "bob"))["token"]  # 1: no 2FA yet
        secret, _ = await enable_totp(client, token, server.clock)
        await sign_in_with_totp(client, "bob", secret, server.clock)  # 2
        challenge = (await login(client, "bob"))["token"]
        wrong = str((int(totp_code(secret, server.clock)) + 1) % 1_000_000).zfill(6)
        refused = await client.post(
            "/api/v1/login/totp", headers=bearer(challenge), json={"code": wrong}
        )
        assert refused.status_code == 401
        body = await _get(client, ME, token, days=1)
        assert _days(body) == [("2026-11-28", 2, 1)]
        assert body["last_failure"]["event"] == "second_factor"
        assert body["last_failure"]["reason"] == "bad_code"

    async def test_a_new_account_has_zeros_and_no_last_failure(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("carol")
        server.clock.value = START + 5 * HOUR  # 17:00: the sign-in below is today's
        token = (await login(client, "carol"))["token"]
        body = await _get(client, ME, token, days=2)
        assert body == {
            "days": [
                {"day": "2026-11-27", "succeeded": 0, "failed": 0},
                {"day": "2026-11-28", "succeeded": 1, "failed": 0},
            ],
            "last_failure": None,
        }


class TestEveryone:
    async def test_admin_sees_everyone_or_one_account(
        self, server: RunningServer, client: httpx.AsyncClient, alice_week: None
    ) -> None:
        """Everyone's days add up all accounts and unknown names; with username, that
        account's alone, as it sees them itself."""
        server.clock.advance(60)
        assert await _attempt(client, "nobody", "guess") == 401  # an unknown name
        admin = (await login(client, "root"))["token"]
        everyone = await _get(client, ADMIN, admin, days=3)
        assert _days(everyone) == [
            ("2026-11-26", 2, 1),
            ("2026-11-27", 0, 1),
            ("2026-11-28", 2, 9),  # + root's sign-in, + nobody's refusal
        ]
        assert everyone["last_failure"]["reason"] == "unknown_user"
        alice = await _get(client, ADMIN, admin, days=3, username="ALICE")
        token = (await login(client, "alice"))["token"]
        own = await _get(client, ME, token, days=3)
        assert alice["days"][:2] == own["days"][:2]
        assert alice["last_failure"] == own["last_failure"]
        assert alice["last_failure"]["reason"] == "throttled"

    async def test_unknown_username_is_404(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("root", admin=True)
        admin = (await login(client, "root"))["token"]
        response = await client.get(ADMIN, params={"username": "ghost"}, headers=bearer(admin))
        assert_error(response, 404, "not_found")


async def _record(
    server: RunningServer,
    name: str,
    ip: str,
    times: int,
    at: float,
    *,
    success: bool = False,
    throttled: bool = False,
) -> None:
    """Refused attempts written by the server's own history functions at a chosen time."""

    def _write(conn: Connection) -> None:
        row = conn.execute("SELECT id FROM users WHERE username = $1", (name,)).fetchone()
        entry = HistoryEvent(
            row[0] if row else None,
            name,
            "password",
            success,
            "password",
            "throttled" if throttled else (None if success else "bad_password"),
            ip,
            "test",
        )
        with transaction(conn):
            for _ in range(times):
                if throttled:
                    history.record_refusal(conn, entry, at, 60.0)
                else:
                    history.record(conn, entry, at)

    await server.core.db.run(_write)


def _counts(leaders: list[dict[str, Any]]) -> list[tuple[str, int, bool]]:
    return [(item["name"], item["failed"], item["known_user"]) for item in leaders]


@pytest.fixture
async def attack(server: RunningServer) -> None:
    """Refused attempts from known addresses on known names, in and out of the windows."""
    for name in ("root", "bob", "alice"):  # alice last: a new alice gets her id again
        await server.add_user(name, admin=name == "root")
    await _record(server, "alice", "10.0.0.1", 7, START - 1 * HOUR)
    await _record(server, "ghost", "10.0.0.6", 6, START - 0.5 * HOUR, throttled=True)
    await _record(server, "alice", "10.0.0.3", 4, START - 50 * 60)
    await _record(server, "mallory", "10.0.0.2", 4, START - 2 * HOUR)
    await _record(server, "bob", "10.0.0.4", 3, START - 3 * HOUR)
    await _record(server, "eve", "10.0.0.5", 2, START - 4 * HOUR)
    await _record(server, "eve", "10.0.0.5", 9, START - 4 * HOUR, success=True)  # not refused
    await _record(server, "root", "10.0.0.9", 20, START - 3 * DAY)  # this week, not today
    await _record(server, "bob", "10.0.0.8", 50, START - 8 * DAY)  # neither window


class TestLeaders:
    async def test_top_five_addresses_and_names_per_window(
        self, server: RunningServer, client: httpx.AsyncClient, attack: None
    ) -> None:
        """Most refused first, the newest first among equals, five at most; `known_user`
        says which names are accounts; 24 hours and 7 days are separate windows."""
        admin = (await login(client, "root"))["token"]
        body = await _get(client, ADMIN, admin)
        day, week = body["last_24_hours"], body["last_7_days"]
        assert _counts(day["addresses"]) == [
            ("10.0.0.1", 7, False),
            ("10.0.0.6", 6, False),  # six refusals while throttled: one row, count 6
            ("10.0.0.3", 4, False),  # as many as 10.0.0.2, but more recent
            ("10.0.0.2", 4, False),
            ("10.0.0.4", 3, False),
        ]
        assert _counts(day["accounts"]) == [
            ("alice", 11, True),
            ("ghost", 6, False),
            ("mallory", 4, False),
            ("bob", 3, True),
            ("eve", 2, False),
        ]
        assert _counts(week["addresses"])[:2] == [("10.0.0.9", 20, False), ("10.0.0.1", 7, False)]
        assert len(week["addresses"]) == 5
        assert _counts(week["accounts"]) == [
            ("root", 20, True),
            ("alice", 11, True),
            ("ghost", 6, False),
            ("mallory", 4, False),
            ("bob", 3, True),
        ]
        assert day["addresses"][0]["last_at"] == "2026-11-28T11:00:00Z"
        assert body["last_failure"] == {
            "at": "2026-11-28T11:30:00Z",
            "ip": "10.0.0.6",
            "event": "password",
            "reason": "throttled",
        }
        # Every refused attempt is in the days, the one eight days ago too.
        days = _days(await _get(client, ADMIN, admin, days=9))
        assert days[0] == ("2026-11-20", 0, 50)
        assert days[5] == ("2026-11-25", 0, 20)
        assert days[-1] == ("2026-11-28", 9 + 1, 7 + 6 + 4 + 4 + 3 + 2)

    async def test_one_accounts_leaders_are_its_own_failures(
        self, server: RunningServer, client: httpx.AsyncClient, attack: None
    ) -> None:
        admin = (await login(client, "root"))["token"]
        body = await _get(client, ADMIN, admin, username="alice")
        assert _counts(body["last_24_hours"]["addresses"]) == [
            ("10.0.0.1", 7, False),
            ("10.0.0.3", 4, False),
        ]
        assert _counts(body["last_24_hours"]["accounts"]) == [("alice", 11, True)]
        assert body["last_failure"]["ip"] == "10.0.0.3"
        assert body["last_failure"]["at"] == "2026-11-28T11:10:00Z"

    async def test_a_deleted_accounts_activity_leaves_its_scope_not_everyones(
        self, server: RunningServer, client: httpx.AsyncClient, attack: None
    ) -> None:
        """Deleting alice drops her own sums (a new alice, even on the same id, starts at
        zero) while everyone's days and lists keep her refused attempts."""
        admin = (await login(client, "root"))["token"]
        before = await _get(client, ADMIN, admin, days=2)
        alice_id = await server.core.db.run(
            lambda conn: conn.execute("SELECT id FROM users WHERE username = 'alice'").fetchone()[0]
        )
        deleted = await client.delete("/api/v1/admin/users/alice", headers=bearer(admin))
        assert deleted.status_code == 204
        response = await client.get(ADMIN, params={"username": "alice"}, headers=bearer(admin))
        assert_error(response, 404, "not_found")
        after = await _get(client, ADMIN, admin, days=2)
        assert after["days"] == before["days"]
        assert ("alice", 11, False) in _counts(after["last_24_hours"]["accounts"])
        left = await server.core.db.run(
            lambda conn: conn.execute(
                "SELECT COUNT(*) FROM activity WHERE scope = $1", (alice_id,)
            ).fetchone()[0]
        )
        assert left == 0
        await server.add_user("alice")
        new_id = await server.core.db.run(
            lambda conn: conn.execute("SELECT id FROM users WHERE username = 'alice'").fetchone()[0]
        )
        # SQLite gives the freed id to the next account (the case that matters: her old rows
        # would be the new alice's); a PostgreSQL identity never comes back.
        assert (new_id == alice_id) == (server.settings.db_path is not None)
        fresh = await _get(client, ADMIN, admin, days=2, username="alice")
        assert _days(fresh) == [("2026-11-27", 0, 0), ("2026-11-28", 0, 0)]
        assert fresh["last_failure"] is None
        assert fresh["last_24_hours"] == {"addresses": [], "accounts": []}


class TestRefusals:
    @pytest.mark.parametrize(
        ("query", "words"),
        [
            ({"days": 0}, "'days' must be at least 1."),
            ({"days": 91}, "'days' must be at most 90."),
            ({"days": "-1"}, "'days' must be at least 1."),
            ({"utc_offset": 7}, "'utc_offset' must be a multiple of 15."),
            ({"utc_offset": -20}, "'utc_offset' must be a multiple of 15."),
            ({"utc_offset": 900}, "'utc_offset' must be at most 840."),
            ({"utc_offset": -855}, "'utc_offset' must be at least -840."),
            ({"utc_offset": "+60"}, "'utc_offset' must be a whole number."),
            ({"username": "alice"}, "Unknown query parameter 'username'."),
        ],
    )
    async def test_bad_queries_are_400_in_words(
        self,
        server: RunningServer,
        client: httpx.AsyncClient,
        query: dict[str, Any],
        words: str,
    ) -> None:
        await server.add_user("alice")
        token = (await login(client, "alice"))["token"]
        response = await client.get(ME, params=query, headers=bearer(token))
        assert assert_error(response, 400, "invalid_request")["message"] == words

    async def test_admin_bounds_are_the_same(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("root", admin=True)
        admin = bearer((await login(client, "root"))["token"])
        for query in ({"days": 0}, {"days": 91}, {"utc_offset": 10}):
            assert_error(
                await client.get(ADMIN, params=query, headers=admin), 400, "invalid_request"
            )

    async def test_only_administrators_see_everyones(
        self, server: RunningServer, client: httpx.AsyncClient
    ) -> None:
        await server.add_user("alice")
        token = bearer((await login(client, "alice"))["token"])
        assert_error(await client.get(ADMIN, headers=token), 403, "forbidden")
        assert_error(await client.get(ADMIN), 401, "unauthorized")
        assert_error(await client.get(ME), 401, "unauthorized")


class TestClient:
    async def test_activity_calls_decode_the_answers(
        self, server: RunningServer, alice_week: None
    ) -> None:
        """The terminal client's activity() and admin_activity() send days and utc_offset."""
        server.clock.advance(60)
        async with TfaClient(server.base_url) as api:
            await api.login("alice", PASSWORD)
            own = await api.activity(days=3, utc_offset=60)
            assert [(str(day.day), day.succeeded, day.failed) for day in own.days] == [
                ("2026-11-26", 2, 1),
                ("2026-11-27", 0, 0),
                ("2026-11-28", 2, 9),
            ]
            assert own.last_failure is not None
            assert own.last_failure.reason == "throttled"
            await api.login("root", PASSWORD)
            theirs = await api.admin_activity(days=2, utc_offset=-780, username="alice")
            assert [str(day.day) for day in theirs.days] == ["2026-11-26", "2026-11-27"]
            everyone = await api.admin_activity()
            assert everyone.last_24_hours.accounts[0].name == "alice"
            assert everyone.last_24_hours.accounts[0].known_user


# The rules, row by row: (event, success, reason) -> (succeeded, failed).
RULES = [
    ("password", True, None, 1, 0),
    ("password", True, "totp_required", 0, 0),
    ("password", True, "enrollment_required", 0, 0),
    ("password", True, "password_change_required", 0, 0),
    ("password", False, "bad_password", 0, 1),
    ("password", False, "throttled", 0, 1),
    ("second_factor", True, None, 1, 0),
    ("second_factor", False, "bad_code", 0, 1),
    ("reauthentication", True, None, 0, 0),
    ("reauthentication", False, "bad_password", 0, 1),
    ("verify_start", True, "not_required", 1, 0),
    ("verify_start", True, "grace_period", 1, 0),
    ("verify_start", True, "totp_required", 0, 0),
    ("verify_start", False, "enrollment_required", 0, 1),
    ("verify", True, None, 1, 0),
    ("verify", False, "bad_code", 0, 1),
    ("logout", True, None, 0, 0),
    ("totp_enabled", True, None, 0, 0),
    ("account_disabled", True, None, 0, 0),
]


def _insert(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    with transaction(conn):
        conn.executemany(
            "INSERT INTO login_history (user_id, username, at, event, success, reason, ip,"
            " client, count) VALUES ($1, $2, $3, $4, $5, $6, '10.0.0.1', 'test', $7)",
            rows,
        )


def _rollup(conn: Connection) -> list[tuple[int, int, int, int]]:
    return [tuple(row) for row in conn.execute("SELECT * FROM activity ORDER BY scope, bucket")]


def _at_version_4(conn: Connection) -> None:
    """An empty database as version 4 left it, by this backend's own scripts."""
    scripts = MIGRATIONS if conn.dialect.sqlite else POSTGRES_MIGRATIONS
    with transaction(conn):
        for script in scripts[:4]:
            conn.script(script)
        if conn.dialect.sqlite:
            conn.execute("PRAGMA user_version = 4")
        else:
            version(conn)  # makes the version table
            conn.execute("INSERT INTO tfa_schema (version) VALUES (4)")


class TestRollup:
    """The triggers of schema version 5 and its backfill, on both backends (schema.py and
    schema_postgres.py write them apart: the same rules must come out)."""

    def test_what_counts_as_a_sign_in_and_as_refused(self, connection: Connection) -> None:
        """Each rule's row in a quarter hour of its own, so one database checks them all."""
        migrate(connection)
        rows = [
            (None, "x", START + 900.0 * number, event, int(success), reason, 1)
            for number, (event, success, reason, _, _) in enumerate(RULES)
        ]
        _insert(connection, rows)
        buckets = {row[1]: (row[2], row[3]) for row in _rollup(connection)}
        counted = {
            rule[:3]: buckets.get(int(START // 900) + number, (0, 0))
            for number, rule in enumerate(RULES)
        }
        assert counted == {rule[:3]: rule[3:] for rule in RULES}
        assert len(buckets) == sum(1 for rule in RULES if rule[3] or rule[4])

    def test_the_v5_migration_backfills_what_the_triggers_keep(
        self, connection: Connection
    ) -> None:
        """A version 4 database with history gets, on upgrade, the rollup that a version 5
        one holds after the same writes (per account and for everyone, counts summed)."""
        rows = [
            (user_id, f"u{user_id}", START - offset * 1000.0, event, int(success), reason, count)
            for offset in range(200)
            for user_id in (1, 2, None)
            for event, success, reason, count in (
                ("password", True, None, 1),
                ("password", False, "throttled", offset % 4 + 1),
                ("second_factor", False, "bad_code", 1),
                ("password", True, "totp_required", 1),
            )
        ]
        _at_version_4(connection)
        for user_id in (1, 2):
            connection.execute(
                "INSERT INTO users (id, username, password_hash, created_at)"
                " VALUES ($1, $2, 'x', 0)",
                (user_id, f"u{user_id}"),
            )
        _insert(connection, rows)
        assert migrate(connection) == LATEST
        backfilled = _rollup(connection)
        everyone = connection.execute(
            "SELECT SUM(succeeded), SUM(failed) FROM activity WHERE scope = 0"
        ).fetchone()
        assert tuple(everyone) == (600, sum(offset % 4 + 1 for offset in range(200)) * 3 + 600)

        # The same history written again at version 5, as the server writes it: the counted
        # refusals as one row each, its count raised afterwards; the triggers keep the sums.
        connection.execute("DELETE FROM login_history")
        connection.execute("DELETE FROM activity")
        _insert(connection, [(*row[:6], 1) for row in rows])
        connection.execute(
            "UPDATE login_history SET count = count + ((CAST(($1 - at) / 1000 AS INTEGER)) % 4)"
            " WHERE reason = 'throttled'",
            (START,),
        )
        assert _rollup(connection) == backfilled
        assert {row[0] for row in backfilled} == {0, 1, 2}


class TestScaleScript:
    def test_the_scale_measurement_runs_at_a_tiny_size(self, tmp_path: Path) -> None:
        """tests/scale/activity_scale.py (run at 10^6 rows by `make stress`) still builds a
        version 4 database, upgrades it with the backfill, serves it and times every request."""
        figures = activity_scale.measure(300, [20, 40], 1, tmp_path)
        assert figures.rollup_rows > 0
        assert len(figures.timings) == 2 * 9
        assert {accounts for accounts, *_ in figures.timings} == {20, 40}
        assert "/admin/activity?days=90" in figures.table()
