"""Pure building blocks, without a server: codes, TOTP, keys, body parsing, hashing, schema."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import stat
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pyotp
import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import given
from hypothesis import strategies as st
from msgspec import UNSET, Meta, UnsetType

from tfa_protocol.types import SHORT_PASSWORD, USERNAME_RULE, CreateUserRequest, Request
from tfa_server import recovery, totp
from tfa_server.config import PasswordHashing, Settings, TotpRules
from tfa_server.crypto import (
    KEY_BYTES,
    KeyFileError,
    ServerKeys,
    create_key_file,
    key_fingerprint,
    load_key_file,
)
from tfa_server.errors import InvalidRequest
from tfa_server.passwords import Passwords
from tfa_server.storage import history
from tfa_server.storage.database import Connection, SqliteConnection
from tfa_server.storage.history import HistoryEvent
from tfa_server.storage.schema import LATEST, SchemaTooNew, migrate, version
from tfa_server.validation import decode_body

from .conftest import sqlite_only

RULES = TotpRules()


# --- recovery codes -------------------------------------------------------------------------

CODE_SHAPE = re.compile(
    f"[{recovery.ALPHABET}]{{4}}-[{recovery.ALPHABET}]{{4}}-[{recovery.ALPHABET}]{{4}}"
)
raw_codes = st.text(alphabet=recovery.ALPHABET, min_size=12, max_size=12)
separators = st.sampled_from(["", "", " ", "-", "  ", "--", " - "])


class TestRecoveryCodes:
    def test_alphabet_has_no_look_alikes(self) -> None:
        assert not set("0O1IL") & set(recovery.ALPHABET)
        assert len(set(recovery.ALPHABET)) == len(recovery.ALPHABET) == 31

    def test_generate_gives_distinct_formatted_codes(self) -> None:
        codes = recovery.generate(10)
        assert len(codes) == 10
        assert len(set(codes)) == 10
        for code in codes:
            assert CODE_SHAPE.fullmatch(code), code

    def test_normalize_examples(self) -> None:
        assert recovery.normalize("ABCD-EFGH-JKMN") == "ABCDEFGHJKMN"
        assert recovery.normalize("abcd efgh jkmn") == "ABCDEFGHJKMN"
        assert recovery.normalize("  abcdEFGHjkmn ") == "ABCDEFGHJKMN"
        assert recovery.normalize("ABCD-EFGH-JKM") is None  # too short
        assert recovery.normalize("ABCD-EFGH-JKMNP") is None  # too long
        assert recovery.normalize("ABCD-EFGH-JKM0") is None  # look-alike digit
        assert recovery.normalize("") is None
        # Letters that upper-case into the alphabet are still not in it.
        assert recovery.normalize("ßABC-DEFG-HJK") is None
        assert recovery.normalize("\u017fABC-DEFG-HJKM") is None  # long s

    @given(raw=raw_codes, data=st.data())
    def test_any_case_and_separators_normalize_back(self, raw: str, data: st.DataObject) -> None:
        entered = ""
        for char in raw:
            entered += data.draw(separators)
            entered += char.lower() if data.draw(st.booleans()) else char
        entered += data.draw(separators)
        assert recovery.normalize(entered) == raw
        assert recovery.normalize(recovery.format_code(raw)) == raw

    @given(
        before=st.text(alphabet=recovery.ALPHABET + recovery.ALPHABET.lower(), max_size=12),
        after=st.text(alphabet=recovery.ALPHABET + recovery.ALPHABET.lower(), max_size=12),
        intruder=st.characters().filter(
            lambda char: (
                char not in " -\t"
                and char not in recovery.ALPHABET
                and char not in recovery.ALPHABET.lower()
            )
        ),
    )
    def test_a_character_outside_the_alphabet_is_refused(
        self, before: str, after: str, intruder: str
    ) -> None:
        assert recovery.normalize(before + intruder + after) is None


# --- TOTP -----------------------------------------------------------------------------------

# RFC 6238 Appendix B, SHA1 key "12345678901234567890"; 6-digit codes are the last 6 of 8.
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]
# The window around t=59 would reach before the epoch, where no clock of a server stands.
WINDOW_VECTORS = RFC_VECTORS[1:]


class TestTotp:
    def test_new_secret_is_160_bits_of_base32(self) -> None:
        first, second = totp.new_secret(RULES), totp.new_secret(RULES)
        assert re.fullmatch("[A-Z2-7]{32}", first)
        assert len(base64.b32decode(first)) == 20
        assert first != second

    @pytest.mark.parametrize(
        ("entered", "expected"),
        [
            ("123456", "123456"),
            ("123 456", "123456"),
            (" 012345 ", "012345"),
            ("12345", None),
            ("1234567", None),
            ("12345a", None),
            ("12-456", None),
            ("١٢٣٤٥٦", None),  # Arabic-Indic digits: isdigit() but not ASCII
            ("", None),
        ],
    )
    def test_normalize_code(self, entered: str, expected: str | None) -> None:
        assert totp.normalize_code(entered, RULES) == expected

    @pytest.mark.parametrize(("at", "code8"), RFC_VECTORS)
    def test_rfc6238_vectors(self, at: int, code8: str) -> None:
        step = at // 30
        assert totp.code_at(RFC_SECRET, step, RULES) == code8[-6:]
        assert totp.matching_step(RFC_SECRET, code8[-6:], at, RULES) == step

    @pytest.mark.parametrize(("at", "code8"), WINDOW_VECTORS)
    @pytest.mark.parametrize("offset", [-1, 0, 1])
    def test_window_accepts_one_step_either_side(self, at: int, code8: str, offset: int) -> None:
        # The code belongs to `at`; the server's clock is `offset` steps away from it.
        now = at - offset * 30
        assert totp.matching_step(RFC_SECRET, code8[-6:], now, RULES) == at // 30

    @pytest.mark.parametrize(("at", "code8"), WINDOW_VECTORS)
    @pytest.mark.parametrize("offset", [-2, 2])
    def test_two_steps_away_is_refused(self, at: int, code8: str, offset: int) -> None:
        assert totp.matching_step(RFC_SECRET, code8[-6:], at - offset * 30, RULES) is None

    def test_matching_step_rejects_non_codes(self) -> None:
        assert totp.matching_step(RFC_SECRET, "", 59, RULES) is None
        assert totp.matching_step(RFC_SECRET, "2870820", 59, RULES) is None
        assert totp.matching_step(RFC_SECRET, "287 082", 59, RULES) == 1

    def test_provisioning_uri_is_what_authenticator_apps_expect(self) -> None:
        uri = totp.provisioning_uri(RFC_SECRET, "alice", "tfa", RULES)
        parsed = pyotp.parse_uri(uri)
        assert isinstance(parsed, pyotp.TOTP)
        assert (parsed.secret, parsed.name, parsed.issuer) == (RFC_SECRET, "alice", "tfa")
        assert (parsed.digits, parsed.interval) == (6, 30)


# --- server keys ----------------------------------------------------------------------------


@pytest.fixture
def keys() -> ServerKeys:
    return ServerKeys(os.urandom(KEY_BYTES))


class TestServerKeys:
    def test_secret_roundtrip(self, keys: ServerKeys) -> None:
        blob = keys.encrypt_secret("JBSWY3DPEHPK3PXP", 7)
        assert b"JBSWY3DPEHPK3PXP" not in blob
        assert keys.decrypt_secret(blob, 7) == "JBSWY3DPEHPK3PXP"

    def test_secret_is_bound_to_the_user(self, keys: ServerKeys) -> None:
        blob = keys.encrypt_secret("JBSWY3DPEHPK3PXP", 7)
        with pytest.raises(InvalidTag):
            keys.decrypt_secret(blob, 8)

    def test_secret_needs_the_same_key(self, keys: ServerKeys) -> None:
        blob = keys.encrypt_secret("JBSWY3DPEHPK3PXP", 7)
        with pytest.raises(InvalidTag):
            ServerKeys(os.urandom(KEY_BYTES)).decrypt_secret(blob, 7)

    def test_tampering_is_detected(self, keys: ServerKeys) -> None:
        blob = bytearray(keys.encrypt_secret("JBSWY3DPEHPK3PXP", 7))
        blob[-1] ^= 1
        with pytest.raises(InvalidTag):
            keys.decrypt_secret(bytes(blob), 7)

    def test_nonce_is_fresh_each_time(self, keys: ServerKeys) -> None:
        blobs = {keys.encrypt_secret("JBSWY3DPEHPK3PXP", 7) for _ in range(20)}
        assert len(blobs) == 20
        assert len({blob[:12] for blob in blobs}) == 20

    def test_recovery_digest_depends_on_user_and_key(self, keys: ServerKeys) -> None:
        digest = keys.recovery_code_digest("ABCDEFGHJKMN", 1)
        assert re.fullmatch("[0-9a-f]{64}", digest)
        assert keys.recovery_code_digest("ABCDEFGHJKMN", 1) == digest
        assert keys.recovery_code_digest("ABCDEFGHJKMN", 2) != digest
        assert keys.recovery_code_digest("ABCDEFGHJKMP", 1) != digest
        assert ServerKeys(os.urandom(KEY_BYTES)).recovery_code_digest("ABCDEFGHJKMN", 1) != digest

    def test_a_rotated_digest_needs_every_key_since_the_code_was_made(
        self, keys: ServerKeys
    ) -> None:
        """Stored digest under key 1, re-MACed by key 2 then key 3 (two rotations): checking
        needs key 1's and key 2's MAC keys (kept sealed) and key 3, and nothing less."""
        second, third = ServerKeys(os.urandom(KEY_BYTES)), ServerKeys(os.urandom(KEY_BYTES))
        stored = third.rewrap(second.rewrap(keys.recovery_code_digest("ABCDEFGHJKMN", 1)))
        mac_keys = [
            third.unseal_retired(third.seal_retired(older, generation), generation)
            for generation, older in ((1, keys), (2, second))
        ]
        assert third.recovery_code_digest("ABCDEFGHJKMN", 1, mac_keys) == stored
        assert third.recovery_code_digest("ABCDEFGHJKMP", 1, mac_keys) != stored
        assert third.recovery_code_digest("ABCDEFGHJKMN", 1, mac_keys[1:]) != stored
        assert third.recovery_code_digest("ABCDEFGHJKMN", 1) != stored

    def test_a_sealed_retired_key_opens_only_as_its_generation(self, keys: ServerKeys) -> None:
        sealed = keys.seal_retired(ServerKeys(os.urandom(KEY_BYTES)), 1)
        with pytest.raises(InvalidTag):
            keys.unseal_retired(sealed, 2)
        newer = ServerKeys(os.urandom(KEY_BYTES))
        moved = keys.reseal(sealed, 1, newer)
        assert newer.unseal_retired(moved, 1) == keys.unseal_retired(sealed, 1)
        with pytest.raises(InvalidTag):
            keys.unseal_retired(moved, 1)

    def test_the_fingerprint_tells_keys_apart_and_is_not_a_key(self, keys: ServerKeys) -> None:
        master = os.urandom(KEY_BYTES)
        assert ServerKeys(master).fingerprint == key_fingerprint(master)
        assert re.fullmatch("[0-9a-f]{32}", keys.fingerprint)
        assert keys.fingerprint != key_fingerprint(master)
        assert master.hex()[:32] != key_fingerprint(master)


class TestKeyFile:
    def test_create_makes_a_private_32_byte_file(self, tmp_path: Path) -> None:
        path = tmp_path / "sub" / "tfa.db.key"
        create_key_file(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert len(path.read_bytes()) == KEY_BYTES
        assert load_key_file(path) == path.read_bytes()

    def test_create_refuses_to_overwrite(self, tmp_path: Path) -> None:
        path = tmp_path / "tfa.db.key"
        create_key_file(path)
        before = path.read_bytes()
        with pytest.raises(KeyFileError, match="already exists"):
            create_key_file(path)
        assert path.read_bytes() == before

    def test_missing_key_points_to_init(self, tmp_path: Path) -> None:
        with pytest.raises(KeyFileError, match=r"not found \(run 'tfa-server init'\)"):
            load_key_file(tmp_path / "absent.key")

    def test_wrong_size_is_not_a_key(self, tmp_path: Path) -> None:
        path = tmp_path / "short.key"
        path.write_bytes(b"x" * 31)
        with pytest.raises(KeyFileError, match=r"is not a tfa key \(31 bytes\)"):
            load_key_file(path)

    def test_unreadable_key_says_why(self, tmp_path: Path) -> None:
        with pytest.raises(KeyFileError, match="cannot read key file"):
            load_key_file(tmp_path)  # a directory


# --- request bodies -------------------------------------------------------------------------


class Sample(Request):
    name: Annotated[str, Meta(max_length=8)]
    count: Annotated[int, Meta(ge=0, le=10)]
    flag: bool | UnsetType = UNSET


def parse_body(raw: bytes) -> dict[str, Any]:
    """The fields sent, decoded."""
    decoded = msgspec.structs.asdict(decode_body(raw, Sample))
    return {name: value for name, value in decoded.items() if value is not UNSET}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["name", "count", "flag", "other"]) | st.text(max_size=8),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


def _parse(raw: bytes) -> dict[str, Any] | None:
    """The parsed body, or None when refused; anything but InvalidRequest escapes."""
    try:
        return parse_body(raw)
    except InvalidRequest:
        return None


class TestBody:
    def test_valid_body(self) -> None:
        assert parse_body(b'{"name": "ab", "count": 3}') == {"name": "ab", "count": 3}
        assert parse_body(b'{"name": "ab", "count": 0, "flag": true}') == {
            "name": "ab",
            "count": 0,
            "flag": True,
        }

    @given(json_values)
    def test_any_json_value_is_parsed_or_refused_cleanly(self, value: Any) -> None:
        parsed = _parse(json.dumps(value).encode())
        if parsed is not None:
            assert set(parsed) <= {"name", "count", "flag"}
            assert type(parsed["name"]) is str
            assert type(parsed["count"]) is int

    def test_a_whole_number_written_with_a_point_is_a_whole_number(self) -> None:
        """JSON Schema says 1.0 is an integer; schemathesis found the server refusing it."""
        parsed = parse_body(b'{"name": "ab", "count": 1.0}')
        assert parsed["count"] == 1
        assert type(parsed["count"]) is int

    @given(st.binary(max_size=64))
    def test_any_bytes_are_parsed_or_refused_cleanly(self, raw: bytes) -> None:
        _parse(raw)

    @pytest.mark.parametrize(
        ("raw", "message"),
        [
            (b'{"name": "ab", "count": true}', "'count' must be a whole number"),
            (b'{"name": "ab", "count": 1, "flag": 1}', "'flag' must be true or false"),
            (b'{"name": "ab", "count": 1.5}', "'count' must be a whole number"),
            (b'{"name": 5, "count": 1}', "'name' must be a string"),
            (b'{"name": "ab"}', "'count' is required"),
            (b'{"name": "ab", "count": 1, "admin": true}', "Unknown field 'admin'"),
            (b'{"name": "toolongname", "count": 1}', "longer than 8"),
            (b'{"name": "ab", "count": 11}', "at most 10"),
            (b'{"name": "ab", "count": -1}', "at least 0"),
            (b'["name", "count"]', "must be a JSON object"),
            (b"", "not valid UTF-8 JSON"),
            (b'{"name": "ab", "count": 1', "not valid UTF-8 JSON"),
            (b'{"name": "ab", "count": NaN}', "'count' must be a whole number"),
        ],
    )
    def test_refused(self, raw: bytes, message: str) -> None:
        with pytest.raises(InvalidRequest, match=re.escape(message)):
            parse_body(raw)

    def test_deep_nesting(self) -> None:
        with pytest.raises(InvalidRequest):
            parse_body(b"[" * 100_000 + b"]" * 100_000)
        with pytest.raises(InvalidRequest):
            parse_body(b'{"name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")

    def test_huge_integer(self) -> None:
        with pytest.raises(InvalidRequest):
            parse_body(b'{"name": "ab", "count": ' + b"7" * 5000 + b"}")

    def test_invalid_utf8(self) -> None:
        with pytest.raises(InvalidRequest, match="UTF-8"):
            parse_body(b'{"name": "\xff\xfe", "count": 1}')

    @pytest.mark.parametrize(
        ("raw", "message"),
        [
            (b'{"username": "-x", "password": "long enough"}', USERNAME_RULE),
            (b'{"username": "bob", "password": "short"}', SHORT_PASSWORD),
            (b'{"username": "bob", "password": "long enough\\ud800"}', "'password' is not valid"),
            (b'{"username": "bob", "password": "long enough", "\\udc80x": 1}', "field '\\udc80x'"),
            (b'{"username": "bob", "password": "long enough", "is_admin": 1}', "true or false"),
        ],
    )
    def test_refused_in_the_words_of_the_protocol(self, raw: bytes, message: str) -> None:
        """Issue 12: msgspec checks the constraints, the person reads words, and a name that
        cannot be written in UTF-8 is written escaped rather than breaking the answer."""
        with pytest.raises(InvalidRequest) as refused:
            decode_body(raw, CreateUserRequest)
        assert message in refused.value.message
        refused.value.message.encode("utf-8")


# --- password hashing -----------------------------------------------------------------------


class TestPasswordHashing:
    def test_defaults_are_owasp_argon2id(self, tmp_path: Path) -> None:
        assert PasswordHashing() == PasswordHashing(memory_kib=19456, time_cost=2, parallelism=1)
        assert Settings(tmp_path / "db", tmp_path / "key").passwords == PasswordHashing()

    async def test_default_hash_and_verify_off_the_loop(self) -> None:
        passwords = Passwords(PasswordHashing())
        try:
            stored = await passwords.hash("correct horse battery")
            assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")

            ticks = 0
            done = asyncio.Event()

            async def ticker() -> None:
                nonlocal ticks
                while not done.is_set():
                    ticks += 1
                    await asyncio.sleep(0)

            async def verify() -> bool:
                try:
                    return await passwords.verify(stored, "correct horse battery")
                finally:
                    done.set()

            ok, _ = await asyncio.gather(verify(), ticker())
            assert ok is True
            # The loop kept running while Argon2 worked in the pool.
            assert ticks > 10
            assert await passwords.verify(stored, "wrong horse battery") is False
            assert await passwords.verify(None, "correct horse battery") is False
        finally:
            passwords.close()


# --- schema and storage ---------------------------------------------------------------------


def _schema(conn: Connection) -> list[tuple[str, ...]]:
    """What the schema is made of: SQLite's own text of each object; on PostgreSQL every
    column, index and trigger (the version table aside)."""
    if conn.dialect.sqlite:
        rows = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name <> 'tfa_schema'"
            " UNION ALL SELECT tablename, indexname, indexdef FROM pg_indexes"
            " WHERE schemaname = 'public' AND tablename <> 'tfa_schema'"
            " UNION ALL SELECT event_object_table, trigger_name, event_manipulation"
            " FROM information_schema.triggers WHERE trigger_schema = 'public'"
            " ORDER BY 1, 2, 3"
        ).fetchall()
    return [tuple(row) for row in rows]


class TestSchema:
    """Migrations on both backends: schema.py and schema_postgres.py, version for version."""

    def test_new_database_reaches_latest(self, connection: Connection) -> None:
        assert version(connection) == 0
        assert migrate(connection) == LATEST
        assert version(connection) == LATEST
        names = {row[0] for row in _schema(connection)}
        assert {
            "users",
            "sessions",
            "totp_secrets",
            "pending_totp_secrets",
            "recovery_codes",
            "login_history",
            "policy",
            "audit_log",
            "services",
            "activity",
        } <= names

    def test_rerun_is_a_no_op(self, connection: Connection) -> None:
        migrate(connection)
        before = _schema(connection)
        assert migrate(connection) == LATEST
        assert _schema(connection) == before
        assert connection.execute("SELECT COUNT(*) FROM policy").fetchone()[0] == 1

    def test_newer_schema_is_refused(self, connection: Connection) -> None:
        if connection.dialect.sqlite:
            connection.execute(f"PRAGMA user_version = {LATEST + 1}")
        else:
            version(connection)  # makes the version table
            connection.execute("INSERT INTO tfa_schema (version) VALUES ($1)", (LATEST + 1,))
        with pytest.raises(SchemaTooNew, match=f"version {LATEST + 1} is newer"):
            migrate(connection)
        assert _schema(connection) == []

    @sqlite_only  # PRAGMAs: what SQLite needs to survive a crash and share the file
    def test_connect_sets_durability_pragmas(self, connection: Connection) -> None:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1


class TestHistoryPaging:
    @pytest.fixture
    def filled(self, connection: Connection) -> Connection:
        migrate(connection)
        for user_id, name in ((1, "alice"), (2, "bob")):
            connection.execute(
                "INSERT INTO users (id, username, password_hash, created_at)"
                " VALUES ($1, $2, 'x', 0)",
                (user_id, name),
            )
        for number in range(300):
            user_id = 1 if number % 3 else 2
            event = HistoryEvent(
                user_id, "alice" if user_id == 1 else "bob", "password", True, None, None, "", ""
            )
            history.record(connection, event, float(number))
        connection.execute("ANALYZE")
        return connection

    def _plan_of_page(self, conn: Connection, **query: Any) -> tuple[str, list[str]]:
        assert isinstance(conn, SqliteConnection)
        statements: list[str] = []
        conn.raw.set_trace_callback(statements.append)
        try:
            history.page(conn, **query)
        finally:
            conn.raw.set_trace_callback(None)
        [sql] = [text for text in statements if "login_history" in text]
        plan = [row[3] for row in conn.raw.execute(f"EXPLAIN QUERY PLAN {sql}")]
        return sql, plan

    # SQLite's planner only: PostgreSQL's rightly scans a 300-row table by its primary key,
    # and a table big enough to change its mind would cost more than the check is worth.
    @sqlite_only
    @pytest.mark.parametrize("before", [None, 150])
    def test_user_page_is_an_index_search(self, filled: Connection, before: int | None) -> None:
        sql, plan = self._plan_of_page(filled, limit=50, before=before, user_id=1)
        assert "OFFSET" not in sql.upper()
        assert any("SEARCH login_history USING" in step for step in plan), plan
        assert any("history_by_user" in step for step in plan), plan
        assert not any(step.startswith("SCAN") for step in plan), plan
        assert not any("TEMP B-TREE" in step for step in plan), plan  # no sort step

    @sqlite_only  # as above
    def test_admin_username_filter_is_an_index_search(self, filled: Connection) -> None:
        _, plan = self._plan_of_page(filled, limit=50, before=200, username="bob")
        assert any("history_by_name" in step for step in plan), plan
        assert not any(step.startswith("SCAN") for step in plan), plan

    def test_keyset_pages_walk_newest_first(self, filled: Connection) -> None:
        seen: list[int] = []
        before = None
        while True:
            rows = history.page(filled, limit=40, before=before, user_id=2)
            if not rows:
                break
            seen += [row["id"] for row in rows]
            before = rows[-1]["id"]
        assert seen == sorted(seen, reverse=True)
        assert len(seen) == 100
        assert all(
            row["user_id"] == 2
            for row in filled.execute(
                f"SELECT user_id FROM login_history WHERE id IN ({','.join(map(str, seen))})"  # noqa: S608
            )
        )
