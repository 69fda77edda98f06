"""The `tfa-server` command, run for real as a subprocess against files under tmp_path."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import ssl
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import pyotp
import pytest

from tfa_server import __version__
from tfa_server.app import initialise
from tfa_server.config import Settings, default_key_path
from tfa_server.storage.schema import LATEST

from .certificates import serial_of, write_self_signed
from .conftest import PASSWORD, bearer

COMMAND = [sys.executable, "-m", "tfa_server"]
FAST = ["--argon2-memory-kib", "1024", "--argon2-time-cost", "1"]
LOGIN = "tfa-tester"  # what getpass.getuser() reports inside the subprocess
SERVING = re.compile(r"serving on http://127\.0\.0\.1:(\d+)")


# --- running the command --------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: no TFA_* from the developer, HOME and data dirs inside tmp_path."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("TFA_")}
    for name in ("home", "tmp"):
        (tmp_path / name).mkdir()
    clean.update(
        HOME=str(tmp_path / "home"),
        XDG_DATA_HOME=str(tmp_path / "xdg"),
        TMPDIR=str(tmp_path / "tmp"),
        LOGNAME=LOGIN,
        USER=LOGIN,
    )
    return clean


def run(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def assert_error(result: subprocess.CompletedProcess[str], status: int, *fragments: str) -> None:
    """A refusal is exactly one line on stderr, `tfa-server: error: ...`, and no traceback."""
    assert result.returncode == status, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tfa-server: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0]


def add_user(
    env: dict[str, str], db: Path, name: str, *, admin: bool = False
) -> subprocess.CompletedProcess[str]:
    flags = ["--admin"] if admin else []
    return run(
        env, "user", "add", name, *flags, "--password-stdin", "--db", str(db), stdin=PASSWORD
    )


def user_list(env: dict[str, str], db: Path) -> list[dict[str, Any]]:
    result = run(env, "user", "list", "--json", "--db", str(db))
    assert result.returncode == 0, result.stderr
    listed: list[dict[str, Any]] = json.loads(result.stdout)
    return listed


def policy_json(env: dict[str, str], db: Path) -> dict[str, Any]:
    result = run(env, "policy", "show", "--json", "--db", str(db))
    assert result.returncode == 0, result.stderr
    shown: dict[str, Any] = json.loads(result.stdout)
    return shown


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """An initialised database, made in-process as `init` does (TestInit runs the command)."""
    path = tmp_path / "data" / "tfa.db"
    initialise(Settings(db_path=path, key_path=default_key_path(path)))
    return path


# --- long-running commands ------------------------------------------------------------------


@dataclass
class Running:
    process: asyncio.subprocess.Process
    stdout: Path
    stderr: Path
    port: int = 0
    exit_code: int | None = field(default=None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.stdout.read_text() + self.stderr.read_text()

    async def wait_for(
        self, pattern: re.Pattern[str] | str, seconds: float = 20.0
    ) -> re.Match[str]:
        """Poll the output files until `pattern` shows up; fail if the process ends first."""
        async with asyncio.timeout(seconds):
            while True:
                found = re.search(pattern, self.output())
                if found:
                    return found
                if self.process.returncode is not None:
                    pytest.fail(f"exited {self.process.returncode} early:\n{self.output()}")
                await asyncio.sleep(0.02)

    async def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        return await self.wait()

    async def wait(self) -> int:
        async with asyncio.timeout(20):
            return await self.process.wait()


class Launch(Protocol):
    async def __call__(self, env: dict[str, str], *args: str) -> Running: ...


@pytest.fixture
async def launch(tmp_path: Path) -> AsyncIterator[Launch]:
    """Start a long-running command with its output in files (no pipe can fill up)."""
    started: list[Running] = []

    async def _launch(env: dict[str, str], *args: str) -> Running:
        number = len(started)
        out, err = tmp_path / f"run{number}.out", tmp_path / f"run{number}.err"
        with out.open("wb") as out_file, err.open("wb") as err_file:
            process = await asyncio.create_subprocess_exec(
                *COMMAND,
                *args,
                stdin=subprocess.DEVNULL,
                stdout=out_file,
                stderr=err_file,
                env=env,
            )
        running = Running(process, out, err)
        started.append(running)
        return running

    yield _launch
    for running in started:
        if running.process.returncode is None:
            running.process.kill()
            await running.process.wait()


async def serve(launch: Launch, env: dict[str, str], *args: str) -> Running:
    running = await launch(env, "serve", *args)
    running.port = int((await running.wait_for(SERVING)).group(1))
    return running


async def sign_in(http: httpx.AsyncClient, name: str, password: str = PASSWORD) -> httpx.Response:
    return await http.post("/api/v1/login", json={"username": name, "password": password})


# --- init -----------------------------------------------------------------------------------


class TestInit:
    def test_creates_private_database_and_key(self, tmp_path: Path, env: dict[str, str]) -> None:
        db = tmp_path / "data" / "tfa.db"
        key = tmp_path / "data" / "tfa.db.key"
        result = run(env, "init", "--db", str(db))
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"initialised: database {db}, key {key}\n"
        assert result.stderr == ""
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert len(key.read_bytes()) == 32
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
        conn.close()

    def test_second_run_keeps_everything(self, db: Path, env: dict[str, str]) -> None:
        key = db.with_name("tfa.db.key").read_bytes()
        result = run(env, "init", "--db", str(db))
        assert result.returncode == 0
        assert result.stdout.startswith("already initialised: database ")
        assert len(result.stdout.splitlines()) == 1
        assert db.with_name("tfa.db.key").read_bytes() == key

    def test_database_without_its_key_is_refused(self, db: Path, env: dict[str, str]) -> None:
        key = db.with_name("tfa.db.key")
        key.unlink()
        assert_error(run(env, "init", "--db", str(db)), 1, "key file", str(key))
        assert not key.exists()  # a new key would make the stored secrets unreadable

    def test_defaults_to_xdg_data_home(self, tmp_path: Path, env: dict[str, str]) -> None:
        result = run(env, "init")
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "xdg" / "tfa" / "tfa.db").exists()
        assert (tmp_path / "xdg" / "tfa" / "tfa.db.key").exists()
        assert list((tmp_path / "home").iterdir()) == []

    def test_environment_chooses_paths(self, tmp_path: Path, env: dict[str, str]) -> None:
        db, key = tmp_path / "e" / "my.db", tmp_path / "keys" / "server.key"
        result = run({**env, "TFA_DB": str(db), "TFA_KEY_FILE": str(key)}, "init")
        assert result.returncode == 0, result.stderr
        assert db.exists()
        assert key.exists()
        assert not db.with_name("my.db.key").exists()


# --- user -----------------------------------------------------------------------------------


class TestUserCommands:
    def test_add_and_list(self, db: Path, env: dict[str, str]) -> None:
        admin = add_user(env, db, "Alice", admin=True)
        assert (admin.returncode, admin.stdout) == (0, "created administrator alice\n")
        user = add_user(env, db, "bob")
        assert (user.returncode, user.stdout) == (0, "created user bob\n")

        listed = {item["username"]: item for item in user_list(env, db)}
        assert set(listed) == {"alice", "bob"}
        assert listed["alice"]["is_admin"] is True
        assert listed["bob"]["is_admin"] is False
        for item in listed.values():
            assert item["totp_enabled"] is False
            assert item["last_login"] is None
            assert item["locked_until"] is None

        table = run(env, "user", "list", "--db", str(db))
        assert table.returncode == 0
        lines = table.stdout.splitlines()
        assert lines[0].split() == [
            "USERNAME",
            "ADMIN",
            "2FA",
            "STATE",
            "LOCKED",
            "UNTIL",
            "LAST",
            "SIGN-IN",
        ]
        assert sorted(line.split() for line in lines[1:]) == [
            ["alice", "yes", "off", "-", "-", "never"],
            ["bob", "no", "off", "-", "-", "never"],
        ]

    def test_password_is_not_echoed_or_stored_in_clear(self, db: Path, env: dict[str, str]) -> None:
        result = add_user(env, db, "carol")
        assert PASSWORD not in result.stdout + result.stderr
        assert PASSWORD.encode() not in db.read_bytes()
        with sqlite3.connect(db) as conn:
            [stored] = conn.execute("SELECT password_hash FROM users").fetchone()
        conn.close()
        assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")

    def test_duplicate_is_refused(self, db: Path, env: dict[str, str]) -> None:
        assert add_user(env, db, "alice").returncode == 0
        assert_error(add_user(env, db, "ALICE", admin=True), 1, "'alice' is taken")
        assert [item["is_admin"] for item in user_list(env, db)] == [False]

    @pytest.mark.parametrize(
        ("stdin", "message"),
        [
            ("short\n", "at least 8 characters"),
            ("\n", "no password on standard input"),
            ("", "no password on standard input"),
        ],
    )
    def test_bad_password_is_refused(
        self, db: Path, env: dict[str, str], stdin: str, message: str
    ) -> None:
        result = run(env, "user", "add", "dave", "--password-stdin", "--db", str(db), stdin=stdin)
        assert_error(result, 1, message)
        assert user_list(env, db) == []

    def test_bad_username_is_refused(self, db: Path, env: dict[str, str]) -> None:
        assert_error(add_user(env, db, "no spaces please"), 1, "Usernames are 1 to 64 characters")

    def test_without_database_points_to_init(self, tmp_path: Path, env: dict[str, str]) -> None:
        missing = tmp_path / "nowhere" / "tfa.db"
        assert_error(add_user(env, missing, "alice"), 1, str(missing), "tfa-server init")
        assert not missing.exists()

    def test_password_prompt_needs_a_terminal(self, db: Path, env: dict[str, str]) -> None:
        result = run(env, "user", "add", "erin", "--db", str(db))  # stdin is /dev/null
        assert_error(result, 1, "not a terminal", "--password-stdin")

    @pytest.mark.parametrize("command", ["reset-2fa", "unlock"])
    def test_unknown_user(self, db: Path, env: dict[str, str], command: str) -> None:
        assert_error(run(env, "user", command, "ghost", "--db", str(db)), 1, "no user 'ghost'")

    def test_unlock_reports_what_it_did(self, db: Path, env: dict[str, str]) -> None:
        """(reset-2fa's report: test_cli_changes_reach_a_running_server.)"""
        add_user(env, db, "frank")
        unlock = run(env, "user", "unlock", "frank", "--db", str(db))
        assert (unlock.returncode, unlock.stdout) == (0, "frank unlocked\n")


# --- policy ---------------------------------------------------------------------------------


class TestPolicyCommands:
    def test_defaults(self, db: Path, env: dict[str, str]) -> None:
        shown = run(env, "policy", "show", "--db", str(db))
        assert (shown.returncode, shown.stdout) == (0, "force 2FA: off\ngrace period: 0 days\n")
        assert policy_json(env, db) == {
            "force_2fa": False,
            "grace_period_days": 0,
            "forced_since": None,
            "updated_at": None,
        }

    def test_set_and_keep_grace(self, db: Path, env: dict[str, str]) -> None:
        on = run(env, "policy", "set", "--force-2fa", "on", "--grace-days", "3", "--db", str(db))
        assert on.returncode == 0, on.stderr
        assert on.stdout.startswith("force 2FA: on\ngrace period: 3 days\nforced since: ")
        current = policy_json(env, db)
        assert (current["force_2fa"], current["grace_period_days"]) == (True, 3)
        assert current["forced_since"] is not None

        off = run(env, "policy", "set", "--force-2fa", "off", "--db", str(db))
        assert off.returncode == 0, off.stderr
        current = policy_json(env, db)
        assert (current["force_2fa"], current["grace_period_days"]) == (False, 3)
        assert current["forced_since"] is None

        assert run(env, "policy", "set", "--force-2fa", "on", "--db", str(db)).returncode == 0
        current = policy_json(env, db)
        assert (current["force_2fa"], current["grace_period_days"]) == (True, 3)

    @pytest.mark.parametrize("days", ["-1", "366"])
    def test_grace_out_of_range(self, db: Path, env: dict[str, str], days: str) -> None:
        result = run(
            env, "policy", "set", "--force-2fa", "on", "--grace-days", days, "--db", str(db)
        )
        assert_error(result, 1, "0 to 365 days")
        assert policy_json(env, db)["force_2fa"] is False


# --- argument errors and version ------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["policy", "set", "--force-2fa", "maybe"], "invalid choice: 'maybe'"),
        (["policy", "set"], "--force-2fa"),
        (["policy", "set", "--force-2fa", "on", "--grace-days", "x"], "--grace-days"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "command"),
        (["user"], "user_command"),
        (["user", "add"], "name"),
        (["user", "rename", "alice"], "invalid choice: 'rename'"),
        (["serve", "--port", "http"], "--port"),
        (["serve", "--lock-after", "0"], "greater than 0"),
        (["serve", "--log-level", "LOUD"], "--log-level"),
        (["serve", "--log-format", "xml"], "--log-format"),
        (["serve", "--shutdown-delay", "soon"], "not a number of seconds"),
        (["serve", "--shutdown-delay", "-1"], "between 0 and 3600"),
        (["init", "--unknown"], "unrecognized arguments: --unknown"),
    ],
)
def test_bad_arguments_exit_2(env: dict[str, str], args: list[str], fragment: str) -> None:
    assert_error(run(env, *args), 2, fragment)


def test_bad_environment_value_exits_1(env: dict[str, str]) -> None:
    assert_error(run({**env, "TFA_PORT": "http"}, "serve"), 1, "TFA_PORT must be a whole number")


def test_version(env: dict[str, str]) -> None:
    result = run(env, "--version")
    assert (result.returncode, result.stdout) == (0, f"tfa-server {__version__}\n")


# --- serve ----------------------------------------------------------------------------------


class TestServeRefusals:
    def test_non_loopback_needs_tls(self, db: Path, env: dict[str, str]) -> None:
        result = run(env, "serve", "--db", str(db), "--host", "0.0.0.0", "--port", "0")
        assert_error(result, 1, "refusing plain HTTP on 0.0.0.0", "--insecure-http")

    def test_tls_needs_cert_and_key(self, db: Path, env: dict[str, str]) -> None:
        result = run(env, "serve", "--db", str(db), "--port", "0", "--tls-cert", str(db))
        assert_error(result, 1, "--tls-cert and --tls-key go together")

    def test_unreadable_tls_files(self, db: Path, env: dict[str, str]) -> None:
        args = ["--tls-cert", str(db), "--tls-key", str(db)]  # not PEM
        result = run(env, "serve", "--db", str(db), "--port", "0", *args)
        assert_error(result, 1, "cannot load the TLS certificate or key")

    def test_missing_database(self, tmp_path: Path, env: dict[str, str]) -> None:
        missing = tmp_path / "absent.db"
        result = run(env, "serve", "--db", str(missing), "--port", "0")
        assert_error(result, 1, "does not exist", "tfa-server init")
        assert not missing.exists()

    def test_missing_key(self, db: Path, env: dict[str, str]) -> None:
        db.with_name("tfa.db.key").unlink()
        result = run(env, "serve", "--db", str(db), "--port", "0")
        assert_error(result, 1, "key file", "not found")


class TestServe:
    async def test_serves_logs_and_drains_on_sigterm(
        self, db: Path, env: dict[str, str], launch: Launch
    ) -> None:
        add_user(env, db, "alice", admin=True)
        server = await serve(launch, env, "--db", str(db), "--port", "0", *FAST)
        tokens: list[str] = []
        body = json.dumps({"username": "alice", "password": PASSWORD}).encode()
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            health = await http.get("/healthz")
            assert (health.status_code, health.json()) == (200, {"status": "ok"})
            signed = await sign_in(http, "alice")
            assert signed.status_code == 200
            assert signed.json()["status"] == "authenticated"
            tokens.append(signed.json()["token"])
            me = await http.get("/api/v1/me", headers=bearer(tokens[0]))
            assert (me.status_code, me.json()["username"]) == (200, "alice")

            # In flight when the signal lands: a request whose body is still arriving, and a
            # few sign-ins racing it.
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(
                b"POST /api/v1/login HTTP/1.1\r\nHost: tfa\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body[:10])
            )
            await writer.drain()
            burst = [asyncio.create_task(sign_in(http, "alice")) for _ in range(3)]
            await asyncio.sleep(0.3)
            server.process.send_signal(signal.SIGTERM)
            await server.wait_for("shutting down")

            # No new connections, while the half-sent request is still being waited for.
            async with asyncio.timeout(5):
                while True:
                    try:
                        _, probe = await asyncio.open_connection("127.0.0.1", server.port)
                    except ConnectionRefusedError:
                        break
                    probe.close()
                    await probe.wait_closed()
                    await asyncio.sleep(0.05)

            writer.write(body[10:])
            await writer.drain()
            async with asyncio.timeout(10):
                raw = await reader.read()  # until the server closes
            writer.close()
            await writer.wait_closed()
            head, _, payload = raw.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 "), raw
            assert b"connection: close" in head.lower()
            tokens.append(json.loads(payload)["token"])
            for response in await asyncio.gather(*burst):
                assert response.status_code == 200
                tokens.append(response.json()["token"])

        assert await server.wait() == 0
        log = server.output()
        assert "Traceback" not in log
        for line in ("GET /healthz 200", "POST /api/v1/login 200", "GET /api/v1/me 200"):
            assert line in log
        assert log.count("POST /api/v1/login 200") == 5
        assert PASSWORD not in log
        for token in tokens:
            assert token not in log

    async def test_json_log_lines(self, db: Path, env: dict[str, str], launch: Launch) -> None:
        """Every line one JSON object a collector can parse: the access lines with their
        request's fields, the route as its template; never a password or a token."""
        add_user(env, db, "alice", admin=True)
        server = await serve(
            launch, {**env, "TFA_LOG_FORMAT": "json"}, "--db", str(db), "--port", "0", *FAST
        )
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            signed = await sign_in(http, "alice")
            token = signed.json()["token"]
            wrong = await sign_in(http, "alice", "not-her-password")
            detail = await http.get("/api/v1/admin/users/alice", headers=bearer(token))
            assert (signed.status_code, wrong.status_code, detail.status_code) == (200, 401, 200)
            request_id = detail.headers["x-request-id"]
            missing = await http.get("/nowhere")
        assert missing.status_code == 404
        assert await server.stop(signal.SIGTERM) == 0
        log = server.stderr.read_text()
        lines = [json.loads(line) for line in log.splitlines()]
        assert all({"time", "level", "logger", "event"} <= set(line) for line in lines)
        assert all(
            re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"]) for line in lines
        )
        requests = [line for line in lines if line["event"] == "request"]
        assert [(line["method"], line.get("route"), line["status"]) for line in requests] == [
            ("POST", "/api/v1/login", 200),
            ("POST", "/api/v1/login", 401),
            ("GET", "/api/v1/admin/users/{username}", 200),
            ("GET", None, 404),
        ]
        assert requests[2]["path"] == "/api/v1/admin/users/alice"
        assert requests[2]["request_id"] == request_id
        assert all(line["peer"] == "127.0.0.1" for line in requests)
        assert all(isinstance(line["duration_ms"], float) for line in requests)
        assert any(line["event"].startswith("serving on") for line in lines)
        for secret in (PASSWORD, "not-her-password", token):
            assert secret not in log

    async def test_sighup_reloads_the_certificate_without_dropping_connections(
        self, db: Path, env: dict[str, str], launch: Launch, tmp_path: Path
    ) -> None:
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        first = write_self_signed(cert, key, "first")
        tls = ["--tls-cert", str(cert), "--tls-key", str(key)]
        running = await launch(env, "serve", "--db", str(db), "--port", "0", *tls, *FAST)
        port = int((await running.wait_for(r"serving on https://127\.0\.0\.1:(\d+)")).group(1))

        def served() -> int:
            return serial_of(ssl.get_server_certificate(("127.0.0.1", port), timeout=10))

        client = ssl.create_default_context()
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)

        async def health() -> bytes:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: tfa\r\n\r\n")
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"content-length: (\d+)", head.lower())
            assert length is not None
            return head.split(b"\r\n")[0] + b" " + await reader.readexactly(int(length[1]))

        assert await health() == b'HTTP/1.1 200 OK {"status":"ok"}'
        assert await asyncio.to_thread(served) == first

        # Renewed in place, as certbot does: new connections get the new one at once.
        second = write_self_signed(cert, key, "second")
        running.process.send_signal(signal.SIGHUP)
        await running.wait_for("reloaded the TLS certificate")
        assert await asyncio.to_thread(served) == second
        assert await health() == b'HTTP/1.1 200 OK {"status":"ok"}'  # the open one stays

        # A broken pair, a new certificate whose key is not (yet) in the key file: refused,
        # and the one in use stays, whole.
        write_self_signed(cert, tmp_path / "third-key.pem", "third")
        running.process.send_signal(signal.SIGHUP)
        await running.wait_for("kept the certificate in use")
        assert await asyncio.to_thread(served) == second
        assert await health() == b'HTTP/1.1 200 OK {"status":"ok"}'
        writer.close()
        assert await running.stop(signal.SIGTERM) == 0
        log = running.output()
        assert "Traceback" not in log
        assert "BEGIN" not in log  # no key or certificate material in the log

    async def test_sighup_without_tls_is_harmless(
        self, db: Path, env: dict[str, str], launch: Launch
    ) -> None:
        server = await serve(launch, env, "--db", str(db), "--port", "0", *FAST)
        server.process.send_signal(signal.SIGHUP)
        await server.wait_for("no certificate to reload")
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            assert (await http.get("/healthz")).status_code == 200
        assert await server.stop(signal.SIGTERM) == 0

    async def test_environment_variables(
        self, db: Path, env: dict[str, str], launch: Launch
    ) -> None:
        add_user(env, db, "alice")
        settings = {
            "TFA_DB": str(db),
            "TFA_PORT": "0",
            "TFA_ISSUER": "Example Corp",
            "TFA_ARGON2_MEMORY_KIB": "1024",
            "TFA_ARGON2_TIME_COST": "1",
        }
        server = await serve(launch, {**env, **settings})
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            signed = await sign_in(http, "alice")
            assert signed.status_code == 200, signed.text
            setup = await http.post("/api/v1/me/totp/setup", headers=bearer(signed.json()["token"]))
        assert setup.status_code == 200
        assert setup.json()["issuer"] == "Example Corp"
        assert "issuer=Example%20Corp" in setup.json()["otpauth_uri"]
        assert await server.stop(signal.SIGTERM) == 0

    async def test_cli_changes_reach_a_running_server(
        self, db: Path, env: dict[str, str], launch: Launch
    ) -> None:
        """The CLI writes the same database the server reads; every change is audited."""
        add_user(env, db, "root", admin=True)
        add_user(env, db, "alice")
        add_user(env, db, "bob")
        server = await serve(launch, env, "--db", str(db), "--port", "0", *FAST)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            # alice connects an app; reset-2fa removes it and ends her session.
            token = (await sign_in(http, "alice")).json()["token"]
            setup = (await http.post("/api/v1/me/totp/setup", headers=bearer(token))).json()
            code = pyotp.TOTP(setup["secret"]).now()
            confirm = await http.post(
                "/api/v1/me/totp/confirm", headers=bearer(token), json={"code": code}
            )
            assert confirm.status_code == 200
            assert (await sign_in(http, "alice")).json()["status"] == "totp_required"
            reset = run(env, "user", "reset-2fa", "Alice", "--db", str(db))
            assert (reset.returncode, reset.stdout) == (
                0,
                "2FA removed for alice; their sessions are ended\n",
            )
            gone = await http.get("/api/v1/me", headers=bearer(token))
            assert (gone.status_code, gone.json()["error"]) == (401, "unauthorized")
            again = await sign_in(http, "alice")
            assert again.json()["status"] == "authenticated"
            assert again.json()["user"]["totp_enabled"] is False

            # bob is throttled after five wrong passwords; unlock lets him in at once.
            for _ in range(5):
                wrong = await sign_in(http, "bob", "not the password")
                assert wrong.status_code == 401
            locked = await sign_in(http, "bob")
            assert (locked.status_code, locked.json()["error"]) == (429, "too_many_attempts")
            [bob] = [item for item in user_list(env, db) if item["username"] == "bob"]
            assert bob["locked_until"] is not None
            assert run(env, "user", "unlock", "bob", "--db", str(db)).returncode == 0
            assert (await sign_in(http, "bob")).status_code == 200

            # Forcing 2FA from the console applies to the next sign-in.
            assert run(env, "policy", "set", "--force-2fa", "on", "--db", str(db)).returncode == 0
            forced = await sign_in(http, "bob")
            assert forced.json()["status"] == "enrollment_required"

            root = await sign_in(http, "root")
            assert root.json()["status"] == "enrollment_required"  # root has no 2FA either
            secret = (
                await http.post("/api/v1/me/totp/setup", headers=bearer(root.json()["token"]))
            ).json()["secret"]
            enrolled = await http.post(
                "/api/v1/me/totp/confirm",
                headers=bearer(root.json()["token"]),
                json={"code": pyotp.TOTP(secret).now()},
            )
            assert enrolled.status_code == 200
            audit = await http.get("/api/v1/admin/audit", headers=bearer(root.json()["token"]))
        assert audit.status_code == 200
        entries = [
            (item["actor"], item["action"], item["target"]) for item in audit.json()["items"]
        ]
        actor = f"cli:{LOGIN}"
        assert entries == [
            (actor, "policy_changed", None),
            (actor, "user_unlocked", "bob"),
            (actor, "totp_reset", "alice"),
            (actor, "user_created", "bob"),
            (actor, "user_created", "alice"),
            (actor, "user_created", "root"),
        ]
        assert await server.stop(signal.SIGTERM) == 0


# --- demo -----------------------------------------------------------------------------------


async def test_demo_serves_a_throwaway_database(
    tmp_path: Path, env: dict[str, str], launch: Launch
) -> None:
    demo = await launch(env, "demo", "--port", "0")
    await demo.wait_for("Press Ctrl\\+C to stop")
    banner = demo.stdout.read_text()
    url = re.search(r"tfa demo server on (http://127\.0\.0\.1:\d+) ", banner)
    credentials = re.search(r"^ +(\S+) / (\S+) +administrator", banner, re.MULTILINE)
    assert url
    assert credentials
    [folder] = (tmp_path / "tmp").glob("tfa-demo-*")
    assert (folder / "demo.db").exists()

    async with httpx.AsyncClient(base_url=url.group(1), timeout=10) as http:
        signed = await sign_in(http, credentials.group(1), credentials.group(2))
        assert signed.status_code == 200, signed.text
        assert signed.json()["status"] == "authenticated"
        assert signed.json()["user"]["is_admin"] is True
        users = await http.get("/api/v1/admin/users", headers=bearer(signed.json()["token"]))
        # The demo accounts of tfa --demo (tests/test_cli_agrees.py compares them).
        assert [item["username"] for item in users.json()["items"]] == ["admin", "alice", "bob"]

    assert await demo.stop(signal.SIGINT) == 0
    assert not folder.exists()
    assert "Traceback" not in demo.output()
