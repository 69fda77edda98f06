"""What an operator runs the server with: readiness beside liveness, a shutdown that says
"not ready" before it stops accepting, a backup taken while it serves, and metrics."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from tfa_protocol.types import RECOVERY_ALPHABET
from tfa_server.admin import Actor, Admin
from tfa_server.app import initialise

from . import postgres
from .conftest import (
    PASSWORD,
    RunningServer,
    assert_error,
    bearer,
    login,
    make_settings,
    sign_in_with_totp,
    start_server,
    totp_code,
    user_with_2fa,
)
from .test_database_faults import restartable

CLI = [sys.executable, "-m", "tfa_server"]


def clean_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("TFA_")}


async def test_ready_while_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_not_ready_while_shutting_down_but_still_serving(
    tmp_path: Path, database_url: str | None
) -> None:
    running = await start_server(tmp_path, db_url=database_url)
    running.app.shutdown_delay = 1.0
    async with running.client() as http:
        assert (await http.get("/readyz")).status_code == 200
        stopping = asyncio.create_task(running.app.stop())
        await asyncio.sleep(0.1)
        started = time.monotonic()
        not_ready = await http.get("/readyz")
        body = assert_error(not_ready, 503, "service_unavailable")
        assert "shutting down" in body["message"]
        assert int(not_ready.headers["Retry-After"]) > 0
        # Alive and serving meanwhile: a load balancer moves traffic away, nothing is cut off.
        assert (await http.get("/healthz")).status_code == 200
        assert time.monotonic() - started < 1.0
        await stopping
    try:
        async with httpx.AsyncClient() as fresh:
            await fresh.get(f"{running.base_url}/readyz")
    except httpx.ConnectError:
        pass
    else:
        raise AssertionError("the server still accepted connections after stopping")


async def test_not_ready_while_postgresql_is_down_and_ready_again_after(tmp_path: Path) -> None:
    cluster = restartable()
    with postgres.server().database() as url:
        server: RunningServer = await start_server(tmp_path, db_url=url)
        try:
            async with server.client() as http:
                assert (await http.get("/readyz")).status_code == 200
                await asyncio.to_thread(cluster.stop)
                try:
                    down = await http.get("/readyz")
                    body = assert_error(down, 503, "service_unavailable")
                    assert "database" in body["message"]
                    # Liveness asks nothing of the database: the process is fine.
                    assert (await http.get("/healthz")).status_code == 200
                finally:
                    await asyncio.to_thread(cluster.start)
                async with asyncio.timeout(30):  # by itself, as the pool reconnects
                    while True:
                        if (await http.get("/readyz")).status_code == 200:
                            break
                        await asyncio.sleep(0.2)
        finally:
            await server.app.stop()


async def _sign_ins(server: RunningServer, name: str, stop: asyncio.Event) -> list[float]:
    """Sign in again and again until told to stop; when each was acknowledged."""
    done = []
    async with server.client() as http:
        while not stop.is_set():
            answer = await http.post("/api/v1/login", json={"username": name, "password": PASSWORD})
            assert answer.status_code == 200, answer.text
            done.append(time.monotonic())
    return done


async def test_backup_under_load_then_restore_and_sign_in_with_codes_from_before(
    tmp_path: Path,
) -> None:
    live = tmp_path / "live"
    live.mkdir()
    server = await start_server(live)
    try:
        async with server.client() as http:
            secret, codes, _ = await user_with_2fa(server, http)
        for name in ("bob", "carol"):
            await server.add_user(name)
        stop = asyncio.Event()
        load = [asyncio.create_task(_sign_ins(server, name, stop)) for name in ("bob", "carol")]
        await asyncio.sleep(0.3)
        copy = tmp_path / "backups" / "tfa-backup.db"
        copy.parent.mkdir()
        started = time.monotonic()
        backup = await asyncio.create_subprocess_exec(
            *CLI,
            "backup",
            "--db",
            str(server.settings.db_path),
            str(copy),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=clean_environment(),
        )
        out, err = await backup.communicate()
        finished = time.monotonic()
        await asyncio.sleep(0.2)
        await server.add_user("dave")  # after the copy: not in it
        stop.set()
        acknowledged = [at for task in load for at in await task]
    finally:
        await server.app.stop()
    assert backup.returncode == 0, err.decode()
    assert err == b""
    said = out.decode()
    assert "key file" in said
    assert "separately" in said
    assert str(server.settings.key_path) in said
    assert ", 3 accounts, mode 0600" in said  # alice, bob and carol: dave came after
    # Serving went on: sign-ins were acknowledged while the copy was being taken and after.
    assert any(at > finished for at in acknowledged)
    assert len(acknowledged) > 10, (len(acknowledged), finished - started)
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert sorted(path.name for path in copy.parent.iterdir()) == ["tfa-backup.db"]

    # Restore as the README says: the copy where the database goes, the key file beside it.
    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copy2(copy, restored / "tfa.db")
    shutil.copy2(server.settings.key_path, restored / "tfa.db.key")
    again = await start_server(restored, clock=server.clock)
    try:
        async with again.client() as http:
            signed = await sign_in_with_totp(http, "alice", secret, again.clock)
            assert signed["status"] == "authenticated"
            first = await login(http, "alice")
            recovered = await http.post(
                "/api/v1/login/recovery",
                headers=bearer(first["token"]),
                json={"code": codes[0]},
            )
            assert recovered.status_code == 200, recovered.text
            assert recovered.json()["recovery_codes_left"] == len(codes) - 1
            for name in ("bob", "carol"):
                assert (await login(http, name))["status"] == "authenticated"
            dave = await http.post("/api/v1/login", json={"username": "dave", "password": PASSWORD})
            assert dave.status_code == 401  # made after the copy was taken
    finally:
        await again.app.stop()


def test_backup_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    initialise(settings)
    taken = tmp_path / "taken.db"
    taken.write_bytes(b"keep me")
    cases = [
        (["--db", str(settings.db_path), str(taken)], "already exists"),
        (["--db", str(settings.db_path), str(tmp_path / "no" / "such.db")], "does not exist"),
        (["--db", str(tmp_path / "absent.db"), str(tmp_path / "x.db")], "tfa-server init"),
        (["--db", "postgresql://db.example/tfa", str(tmp_path / "y.db")], "pg_dump"),
    ]
    for args, fragment in cases:
        done = subprocess.run(
            [*CLI, "backup", *args],
            capture_output=True,
            text=True,
            env=clean_environment(),
            timeout=60,
            check=False,
        )
        assert done.returncode == 1, done.stderr
        assert done.stdout == ""
        assert done.stderr.startswith("tfa-server: error: ")
        assert fragment in done.stderr
        assert len(done.stderr.splitlines()) == 1
    assert taken.read_bytes() == b"keep me"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["taken.db", "tfa.db", "tfa.db.key"]


def _another(code: str) -> str:
    """The same recovery code with its last character changed: a wrong one."""
    last = code[-1].upper()
    return code[:-1] + next(char for char in RECOVERY_ALPHABET if char != last)


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, read by prometheus_client's own parser."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_count_sign_ins_verify_calls_throttles_and_requests(
    tmp_path: Path, database_url: str | None
) -> None:
    server = await start_server(tmp_path, db_url=database_url, metrics_at=("127.0.0.1", 0))
    scrape_url = f"http://127.0.0.1:{server.app.metrics_port}/metrics"
    try:
        async with server.client() as http:
            secret, codes, first_token = await user_with_2fa(server, http)
            await server.add_user("bob")
            await server.add_user("carol")
            signed = await sign_in_with_totp(http, "alice", secret, server.clock)
            challenge = await login(http, "alice")
            wrong_code = await http.post(
                "/api/v1/login/totp", headers=bearer(challenge["token"]), json={"code": "000000"}
            )
            assert wrong_code.status_code == 401
            for _ in range(2):
                wrong = await http.post(
                    "/api/v1/login", json={"username": "bob", "password": "wrong-password-1"}
                )
                assert wrong.status_code == 401
            assert (await login(http, "bob"))["status"] == "authenticated"
            statuses = []
            for _ in range(6):  # the 5th failure in a row locks: the 6th is refused
                attempt = await http.post(
                    "/api/v1/login", json={"username": "carol", "password": "wrong-password-1"}
                )
                statuses.append(attempt.status_code)
            assert statuses == [401] * 5 + [429]
            key = (await Admin(server.core).add_service(Actor("root", None), "sshd-web1", "")).key
            server.clock.advance(30)
            allowed = await http.post(
                "/api/v1/verify",
                headers=bearer(key),
                json={"username": "alice", "code": totp_code(secret, server.clock)},
            )
            assert allowed.status_code == 200, allowed.text
            refused = await http.post(
                "/api/v1/verify",
                headers=bearer(key),
                json={"username": "alice", "code": _another(codes[0])},
            )
            assert refused.status_code == 401
            assert (await http.get("/no/such/page")).status_code == 404
            assert (await http.get("/metrics")).status_code == 404  # never on the API's port
            async with httpx.AsyncClient() as scraper:
                scraped = await scraper.get(scrape_url)
                elsewhere = await scraper.get(scrape_url.replace("/metrics", "/api/v1/me"))
    finally:
        await server.app.stop()
    assert scraped.status_code == 200
    assert scraped.headers["content-type"] == CONTENT_TYPE_LATEST  # the text format's
    assert elsewhere.status_code == 404  # the metrics listener serves nothing else
    text = scraped.text
    samples = _samples(text)
    steps = "tfa_sign_in_steps_total"
    assert _value(samples, steps, step="password", outcome="success", reason="authenticated") == 2
    assert _value(samples, steps, step="password", outcome="success", reason="totp_required") == 2
    assert (
        _value(samples, steps, step="password", outcome="failure", reason="invalid_credentials")
        == 7
    )
    assert (
        _value(samples, steps, step="password", outcome="failure", reason="too_many_attempts") == 1
    )
    assert _value(samples, steps, step="totp", outcome="success", reason="authenticated") == 1
    assert _value(samples, steps, step="totp", outcome="failure", reason="invalid_code") == 1
    calls = "tfa_verify_calls_total"
    assert _value(samples, calls, service="sshd-web1", outcome="allow") == 1
    assert _value(samples, calls, service="sshd-web1", outcome="invalid_code") == 1
    assert _value(samples, "tfa_throttled_total", route="/api/v1/login") == 1
    requests = "tfa_http_requests_total"
    assert _value(samples, requests, method="POST", route="/api/v1/login", status="401") == 7
    assert _value(samples, requests, method="GET", route="unmatched", status="404") == 2
    login_count = _value(samples, "tfa_http_request_duration_seconds_count", route="/api/v1/login")
    assert login_count == 12
    assert (
        _value(
            samples, "tfa_http_request_duration_seconds_bucket", route="/api/v1/login", le="+Inf"
        )
        == 12
    )
    # alice's first session, her sign-in with a code, bob's: the challenges are no sessions.
    assert _value(samples, "tfa_active_sessions") == 3
    assert _value(samples, "tfa_http_open_connections") >= 1
    assert _value(samples, "tfa_database_errors_total") == 0
    for secret_text in (
        "alice",
        "bob",
        "carol",
        PASSWORD,
        key,
        signed["token"],
        first_token,
        secret,
    ):
        assert secret_text not in text
