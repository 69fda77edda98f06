"""The `tfa-server` command line agrees with the client and the README (issue 11, "The
server's command line agrees with the client"): run for real, as in tests/test_cli.py."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tfa_server.app import open_core
from tfa_server.auth import SignIn
from tfa_server.config import Settings, default_key_path
from tfa_server.core import Origin
from tfa_tui.demo import DemoServer

from . import test_cli
from .conftest import FAST_HASHING, PASSWORD
from .test_cli import (
    COMMAND,
    FAST,
    Launch,
    add_user,
    assert_error,
    run,
    user_list,
)

# The fixtures of the CLI tests: a clean environment, a database, long-running commands.
db, env, launch = test_cli.db, test_cli.env, test_cli.launch

README = Path(__file__).parents[1] / "README.md"


def rows(db: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        found = conn.execute(query).fetchall()
    conn.close()
    return found


# --- reset-2fa ------------------------------------------------------------------------------


async def test_reset_2fa_without_2fa_says_so_and_changes_nothing(
    db: Path, env: dict[str, str]
) -> None:
    """Issue 11, CLI point 1: the console refuses what the client refuses ("has no two-factor
    authentication to reset"), and ends no session nor claims a reset in the audit log."""
    assert add_user(env, db, "frank").returncode == 0
    core = open_core(Settings(db_path=db, key_path=default_key_path(db)))
    try:
        await SignIn(core).login("frank", PASSWORD, Origin("127.0.0.1", "test"))
    finally:
        core.passwords.close()
        core.db.close()

    result = run(env, "user", "reset-2fa", "Frank", "--db", str(db))

    assert_error(result, 1, "frank has no two-factor authentication to reset")
    assert rows(db, "SELECT revoked_at FROM sessions") == [(None,)]
    assert rows(db, "SELECT action FROM audit_log") == [("user_created",)]
    events = [event for (event,) in rows(db, "SELECT event FROM login_history")]
    assert "totp_reset_by_admin" not in events


# --- policy set -----------------------------------------------------------------------------


def test_each_policy_setting_can_change_alone(db: Path, env: dict[str, str]) -> None:
    """Issue 11, CLI point 2: `policy set --grace-days 3` alone keeps the force setting (and
    `--force-2fa` alone keeps the grace period: tests/test_cli.py)."""
    assert run(env, "policy", "set", "--force-2fa", "on", "--db", str(db)).returncode == 0
    grace = run(env, "policy", "set", "--grace-days", "3", "--db", str(db))
    assert grace.returncode == 0, grace.stderr
    assert grace.stdout.startswith("force 2FA: on\ngrace period: 3 days\nforced since: ")


def test_policy_set_needs_a_setting(env: dict[str, str]) -> None:
    """Issue 11, CLI point 2: with neither setting there is nothing to change; one line, exit 2."""
    assert_error(run(env, "policy", "set"), 2, "--force-2fa", "--grace-days")


# --- user add on a terminal -----------------------------------------------------------------

# The child takes the pseudo-terminal as its controlling terminal, so getpass reads /dev/tty
# with echo off, as on a real console.
LAUNCH = (
    "import fcntl, os, sys, termios;"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0);"
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)


class Console:
    """`tfa-server` on a pseudo-terminal: read what it writes, answer its prompts."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.master, child = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, *COMMAND[1:], *args],
            stdin=child,
            stdout=child,
            stderr=child,
            env=env,
            start_new_session=True,
        )
        os.close(child)
        self.seen = ""

    def _read(self) -> bool:
        ready, _, _ = select.select([self.master], [], [], 0.05)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 4096)
        except OSError:  # EIO: the process closed its side
            return False
        self.seen += chunk.decode(errors="replace")
        return bool(chunk)

    def answer(self, prompt: str, text: str) -> None:
        """Wait for a new `prompt` (getpass flushes what was typed before it), then type."""
        deadline = time.monotonic() + 30
        while not self.seen.endswith(prompt):
            assert time.monotonic() < deadline, f"no {prompt!r} in {self.seen!r}"
            assert self._read(), f"ended before {prompt!r}: {self.seen!r}"
        self.seen += "\n"  # what the terminal would show after Enter; the next prompt is new
        os.write(self.master, f"{text}\r".encode())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1

    def finish(self) -> int:
        """Read to the end of the output; the exit status."""
        deadline = time.monotonic() + 30
        while self._read():
            assert time.monotonic() < deadline, f"still running: {self.seen!r}"
        return self.process.wait(timeout=10)


@pytest.fixture
def console(env: dict[str, str]) -> Iterator[Callable[..., Console]]:
    """Start `tfa-server` on a pseudo-terminal; whatever a test leaves running is ended."""
    started: list[Console] = []

    def _start(*args: str) -> Console:
        started.append(Console(env, *args))
        return started[-1]

    yield _start
    for each in started:
        each.close()


def test_user_add_asks_again_after_a_mismatch(
    db: Path, env: dict[str, str], console: Callable[..., Console]
) -> None:
    """Issue 11, CLI point 3: two different passwords ask again instead of exiting; the
    second pair that matches creates the account."""
    terminal = console("user", "add", "grace", "--db", str(db), *FAST)
    terminal.answer("Password: ", PASSWORD)
    terminal.answer("Repeat password: ", PASSWORD + " typo")
    terminal.answer("Password: ", PASSWORD)
    terminal.answer("Repeat password: ", PASSWORD)
    assert terminal.finish() == 0, terminal.seen
    assert "do not match" in terminal.seen
    assert "created user grace" in terminal.seen
    assert PASSWORD not in terminal.seen  # echo stays off
    assert [item["username"] for item in user_list(env, db)] == ["grace"]


def test_user_add_gives_up_after_three_tries(
    db: Path, env: dict[str, str], console: Callable[..., Console]
) -> None:
    """Issue 11, CLI point 3: three failed tries (a mismatch, a password too short) end with
    one error line and exit 1, and no account."""
    terminal = console("user", "add", "heidi", "--db", str(db), *FAST)
    terminal.answer("Password: ", PASSWORD)
    terminal.answer("Repeat password: ", "other one")
    terminal.answer("Password: ", "short")  # refused before it is repeated
    terminal.answer("Password: ", PASSWORD)
    terminal.answer("Repeat password: ", "")
    assert terminal.finish() == 1, terminal.seen
    errors = [line for line in terminal.seen.splitlines() if "error" in line]
    assert errors == ["tfa-server: error: no password set after 3 tries"], terminal.seen
    assert "at least 8 characters" in terminal.seen
    assert user_list(env, db) == []


# --- one set of demo credentials ------------------------------------------------------------


def readme_demo_accounts() -> list[tuple[str, str, str]]:
    """The README's table of demo accounts: (user, password, state)."""
    text = README.read_text()
    table = text[text.index("| user | password | state |") :].split("\n\n")[0]
    found = re.findall(r"^\| `([^`]+)` \| `([^`]+)` \| ([^|]+) \|$", table, re.MULTILINE)
    assert found, table
    return [(user, password, state.strip()) for user, password, state in found]


async def check_demo_accounts(url: str, accounts: list[tuple[str, str, str]]) -> None:
    """Every README account signs in to the demo at `url` with its password, in its state."""
    async with httpx.AsyncClient(base_url=f"{url}/api/v1", timeout=10) as http:
        for user, password, state in accounts:
            signed = await http.post("/login", json={"username": user, "password": password})
            assert signed.status_code == 200, (url, user, signed.text)
            expected = "totp_required" if state.startswith("2FA on") else "authenticated"
            assert signed.json()["status"] == expected, (user, state)
            if expected == "authenticated":
                assert signed.json()["user"]["is_admin"] == state.startswith("administrator")
            if user == "admin":
                token = signed.json()["token"]
                listed = await http.get(
                    "/admin/users", headers={"Authorization": f"Bearer {token}"}
                )
                names = [item["username"] for item in listed.json()["items"]]
                assert names == [user for user, _, _ in accounts]


async def test_both_demos_seed_the_accounts_the_readme_lists(
    env: dict[str, str], launch: Launch
) -> None:
    """Issue 11, CLI point 4: `tfa-server demo` and `tfa --demo` seed the same accounts with the
    same passwords, those the README lists (once), and the README's command table has `demo`."""
    accounts = readme_demo_accounts()
    readme = README.read_text()
    assert "admin-demo-password" not in readme
    assert re.search(r"^\| `tfa-server demo[ `]", readme, re.MULTILINE)

    server_demo = await launch(env, "demo", "--port", "0")
    banner = await server_demo.wait_for(r"tfa demo server on (http://127\.0\.0\.1:\d+) ")
    await server_demo.wait_for("Press Ctrl\\+C to stop")
    for user, password, _ in accounts:
        assert re.search(rf"\b{user} +/ {re.escape(password)}(?!\S)", server_demo.output())
    await check_demo_accounts(banner.group(1), accounts)
    assert await server_demo.stop(signal.SIGINT) == 0

    client_demo = DemoServer(passwords=FAST_HASHING)
    url = await asyncio.to_thread(client_demo.start)
    try:
        shown = [(account.username, account.password) for account in client_demo.accounts.accounts]
        assert shown == [(user, password) for user, password, _ in accounts]
        await check_demo_accounts(url, accounts)
    finally:
        await asyncio.to_thread(client_demo.stop)
