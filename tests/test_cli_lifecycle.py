"""Issue 14, CLI: `tfa-server user passwd | disable | enable | delete | admin`, and `user list`
showing each account's state. Most commands run in-process through `main()` (the same code
the `tfa-server` script runs, without an interpreter start each time) on a real database;
the confirmation of `delete` runs the real command on a pseudo-terminal."""

from __future__ import annotations

import asyncio
import io
import json
import os
import pty
import sqlite3
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from tfa_server.app import open_core
from tfa_server.auth import SignIn
from tfa_server.cli import main
from tfa_server.config import Settings, default_key_path
from tfa_server.core import Origin
from tfa_server.errors import AccountDisabled, InvalidCredentials

from . import test_cli, test_cli_agrees
from .conftest import FAST_HASHING, PASSWORD
from .test_cli import FAST, LOGIN
from .test_cli_agrees import Console

# The CLI tests' fixtures: a clean environment, an initialised database, the pty console.
db, env, console = test_cli.db, test_cli.env, test_cli_agrees.console

ACTOR = f"cli:{LOGIN}"
NEW_PASSWORD = "a whole new password"
DELETE_PROMPT = (
    "Delete alice? Their 2FA, recovery codes and sessions go; their sign-in history stays for"
    " administrators. Type the name to confirm: "
)


@dataclass
class Ran:
    status: int
    out: str
    err: str

    def refused(self, *fragments: str) -> None:
        """One plain line on stderr, exit 1, nothing on stdout."""
        assert (self.status, self.out) == (1, ""), self
        lines = self.err.splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("tfa-server: error: "), lines[0]
        for fragment in fragments:
            assert fragment in lines[0], lines[0]


Cli = Callable[..., Ran]


@pytest.fixture
def cli(db: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """`tfa-server ARGS --db DB` in-process; standard input is `stdin` (text, or a file such as
    a pseudo-terminal), and the console login is LOGIN, as in tests/test_cli.py."""
    for key in [key for key in os.environ if key.startswith("TFA_")]:
        monkeypatch.delenv(key)
    for key in ("LOGNAME", "USER"):
        monkeypatch.setenv(key, LOGIN)

    def _run(*args: str, stdin: str | IO[str] = "") -> Ran:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin) if isinstance(stdin, str) else stdin)
        capsys.readouterr()
        status = main([*args, "--db", str(db), *FAST])
        out, err = capsys.readouterr()
        return Ran(status, out, err)

    return _run


@pytest.fixture
def terminal() -> Iterator[tuple[int, IO[str]]]:
    """A pseudo-terminal: (the keyboard's end, standard input's end)."""
    keyboard, child = pty.openpty()
    with os.fdopen(child, "r") as stdin:
        yield keyboard, stdin
    os.close(keyboard)


def add(cli: Cli, name: str, *, admin: bool = False) -> None:
    flags = ["--admin"] if admin else []
    assert cli("user", "add", name, *flags, "--password-stdin", stdin=PASSWORD).status == 0


def listed(cli: Cli) -> dict[str, dict[str, Any]]:
    ran = cli("user", "list", "--json")
    assert ran.status == 0, ran
    return {item["username"]: item for item in json.loads(ran.out)}


def table(cli: Cli) -> dict[str, list[str]]:
    ran = cli("user", "list")
    assert ran.status == 0, ran
    header, *lines = ran.out.splitlines()
    assert header.split() == [
        "USERNAME",
        "ADMIN",
        "2FA",
        "STATE",
        "LOCKED",
        "UNTIL",
        "LAST",
        "SIGN-IN",
    ]
    # Columns of fixed width: USERNAME 24, ADMIN 5, 2FA 3, STATE 12 ("new password").
    return {
        line[:24].strip(): [line[25:30].strip(), line[31:34].strip(), line[35:47].strip()]
        for line in lines
    }


def rows(db: Path, query: str, *params: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        found = conn.execute(query, params).fetchall()
    conn.close()
    return found


def audited(db: Path) -> list[tuple[str, str, str, dict[str, Any]]]:
    found = rows(db, "SELECT actor, action, target, detail FROM audit_log ORDER BY id")
    return [(actor, action, target, json.loads(detail)) for actor, action, target, detail in found]


def sign_in(db: Path, name: str, password: str = PASSWORD) -> str:
    """The server's own sign-in on the same database; the status it answers."""

    async def _go() -> str:
        settings = Settings(db_path=db, key_path=default_key_path(db), passwords=FAST_HASHING)
        core = open_core(settings)
        try:
            signed = await SignIn(core).login(name, password, Origin("127.0.0.1", "test"))
        finally:
            core.passwords.close()
            core.db.close()
        return signed.status

    return asyncio.run(_go())


def sessions_of(db: Path, name: str) -> list[Any]:
    """revoked_at of each of the user's sessions."""
    query = (
        "SELECT s.revoked_at FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.username = ?"
    )
    return [revoked for (revoked,) in rows(db, query, name)]


# --- passwd ---------------------------------------------------------------------------------


def test_passwd_from_stdin_sets_it_and_ends_sessions(db: Path, cli: Cli) -> None:
    """Issue 14, `user passwd NAME --password-stdin`: the new password works, the old one does
    not, every session ends, it is not temporary by default, and the audit log says `cli:`."""
    add(cli, "alice")
    assert sign_in(db, "alice") == "authenticated"

    ran = cli("user", "passwd", "Alice", "--password-stdin", stdin=NEW_PASSWORD + "\n")

    assert (ran.status, ran.out) == (0, "password set for alice; their sessions are ended\n")
    assert NEW_PASSWORD not in ran.out + ran.err
    [revoked] = sessions_of(db, "alice")
    assert revoked is not None
    with pytest.raises(InvalidCredentials):
        sign_in(db, "alice", PASSWORD)
    assert sign_in(db, "alice", NEW_PASSWORD) == "authenticated"
    assert listed(cli)["alice"]["password_change_required"] is False
    assert audited(db)[-1] == (
        ACTOR,
        "password_reset",
        "alice",
        {"temporary": False, "sessions_ended": 1},
    )


def test_passwd_temporary_forces_a_change_at_the_next_sign_in(db: Path, cli: Cli) -> None:
    """Issue 14, `user passwd --temporary`: the next sign-in answers password_change_required,
    the report says so, and `user list` shows that a new password is required."""
    add(cli, "alice")

    ran = cli("user", "passwd", "alice", "--temporary", "--password-stdin", stdin=NEW_PASSWORD)

    assert ran.status == 0, ran
    assert ran.out == (
        "temporary password set for alice; their sessions are ended and they must choose"
        " a new one at their next sign-in\n"
    )
    assert sign_in(db, "alice", NEW_PASSWORD) == "password_change_required"
    assert listed(cli)["alice"]["password_change_required"] is True
    assert table(cli)["alice"] == ["no", "off", "new password"]
    assert audited(db)[-1] == (
        ACTOR,
        "password_reset",
        "alice",
        {"temporary": True, "sessions_ended": 0},
    )


@pytest.mark.parametrize(
    ("args", "stdin", "fragments"),
    [
        (["ghost", "--password-stdin"], NEW_PASSWORD, ["There is no user 'ghost'"]),
        (["alice", "--password-stdin"], "short\n", ["at least 8 characters"]),
        (["alice"], NEW_PASSWORD, ["not a terminal", "--password-stdin"]),
    ],
    ids=["unknown user", "too short", "no terminal, no --password-stdin"],
)
def test_passwd_refusals_change_nothing(
    db: Path, cli: Cli, args: list[str], stdin: str, fragments: list[str]
) -> None:
    """Issue 14, `user passwd` refused in one plain line, exit 1: the password stays."""
    add(cli, "alice")
    cli("user", "passwd", *args, stdin=stdin).refused(*fragments)
    assert sign_in(db, "alice") == "authenticated"
    assert [action for _, action, _, _ in audited(db)] == ["user_created"]


def test_passwd_on_a_terminal_checks_the_name_before_asking(
    db: Path, console: Callable[..., Console]
) -> None:
    """Issue 14, `user passwd` on a terminal: an unknown name is refused before a password is
    asked for. (The real command: getpass reads the controlling terminal, not stdin.)"""
    session = console("user", "passwd", "ghost", "--db", str(db))
    assert session.finish() == 1, session.seen
    assert session.seen.strip() == "tfa-server: error: There is no user 'ghost'."


# --- disable, enable ------------------------------------------------------------------------


def test_disable_then_enable(db: Path, cli: Cli) -> None:
    """Issue 14, `user disable` / `user enable`: sessions end at once, sign-in is refused
    (account_disabled), the list shows it; enabling lets them in again; both audited."""
    add(cli, "root", admin=True)
    add(cli, "alice")
    assert sign_in(db, "alice") == "authenticated"

    disabled = cli("user", "disable", "ALICE")

    assert (disabled.status, disabled.out) == (0, "alice disabled; their sessions are ended\n")
    assert sessions_of(db, "alice")[0] is not None
    with pytest.raises(AccountDisabled):
        sign_in(db, "alice")
    assert listed(cli)["alice"]["disabled_at"] is not None
    assert table(cli)["alice"] == ["no", "off", "disabled"]
    assert table(cli)["root"] == ["yes", "off", "-"]
    cli("user", "disable", "alice").refused("alice is already disabled")

    enabled = cli("user", "enable", "alice")

    assert (enabled.status, enabled.out) == (0, "alice enabled\n")
    assert sign_in(db, "alice") == "authenticated"
    assert listed(cli)["alice"]["disabled_at"] is None
    cli("user", "enable", "alice").refused("alice is not disabled")
    assert [entry[:3] for entry in audited(db)[-2:]] == [
        (ACTOR, "user_disabled", "alice"),
        (ACTOR, "user_enabled", "alice"),
    ]


@pytest.mark.parametrize("command", ["disable", "enable", "delete", "admin"])
def test_unknown_user_is_one_line(cli: Cli, command: str) -> None:
    """Issue 14: each new command refuses an unknown name in one plain line, exit 1."""
    extra = {"delete": ["--yes"], "admin": ["on"]}.get(command, [])
    cli("user", command, "ghost", *extra).refused("There is no user 'ghost'")


# --- the last administrator -----------------------------------------------------------------


def test_the_last_administrator_is_protected(db: Path, cli: Cli) -> None:
    """Issue 14, safety rule: the console cannot disable, delete or demote the last enabled
    administrator either; each is refused in words, and nothing changes."""
    add(cli, "root", admin=True)
    add(cli, "alice")
    for args in (["disable", "root"], ["delete", "root", "--yes"], ["admin", "root", "off"]):
        cli("user", *args).refused("root is the last enabled administrator")
    assert listed(cli)["root"]["is_admin"] is True
    assert listed(cli)["root"]["disabled_at"] is None
    assert [action for _, action, _, _ in audited(db)] == ["user_created", "user_created"]

    # With a second administrator, the first can go.
    assert cli("user", "admin", "alice", "on").status == 0
    assert cli("user", "disable", "root").status == 0
    cli("user", "admin", "alice", "off").refused("alice is the last enabled administrator")


# --- admin on|off ---------------------------------------------------------------------------


def test_admin_on_and_off(db: Path, cli: Cli) -> None:
    """Issue 14, `user admin NAME on|off`: grants and removes the rights, says when nothing
    changed, and is audited as `cli:`."""
    add(cli, "root", admin=True)
    add(cli, "bob")

    assert cli("user", "admin", "Bob", "on").out == "bob is now an administrator\n"
    assert listed(cli)["bob"]["is_admin"] is True
    assert cli("user", "admin", "bob", "on").out == (
        "bob already is an administrator; nothing changed\n"
    )
    assert cli("user", "admin", "bob", "off").out == "bob is no longer an administrator\n"
    assert listed(cli)["bob"]["is_admin"] is False
    assert cli("user", "admin", "bob", "off").out == (
        "bob is not an administrator; nothing changed\n"
    )
    assert [entry[:3] for entry in audited(db)[2:]] == [
        (ACTOR, "admin_granted", "bob"),
        (ACTOR, "admin_revoked", "bob"),
    ]


def test_admin_takes_on_or_off(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 14, `user admin NAME on|off`: anything else is a usage error, exit 2."""
    with pytest.raises(SystemExit) as exited:
        cli("user", "admin", "bob", "yes")
    assert exited.value.code == 2
    assert "invalid choice: 'yes'" in capsys.readouterr().err


# --- delete ---------------------------------------------------------------------------------


def test_delete_with_yes(db: Path, cli: Cli) -> None:
    """Issue 14, `user delete NAME --yes`: the account and its sessions go, its sign-in history
    stays (marked), the name is free again, and the audit log has it."""
    add(cli, "alice")
    assert sign_in(db, "alice") == "authenticated"

    ran = cli("user", "delete", "alice", "--yes")

    assert (ran.status, ran.out) == (
        0,
        "alice deleted; their sign-in history stays for administrators\n",
    )
    assert "alice" not in listed(cli)
    assert rows(db, "SELECT COUNT(*) FROM sessions") == [(0,)]
    assert rows(db, "SELECT DISTINCT username, account_deleted FROM login_history") == [
        ("alice", 1)
    ]
    assert audited(db)[-1][:3] == (ACTOR, "user_deleted", "alice")
    add(cli, "alice")


def test_delete_without_a_terminal_needs_yes(cli: Cli) -> None:
    """Issue 14, `user delete`: with no terminal to ask on and no --yes, refuse and keep it."""
    add(cli, "alice")
    cli("user", "delete", "alice", stdin="alice\n").refused("--yes")
    assert "alice" in listed(cli)


def test_delete_of_an_unknown_name_asks_nothing(cli: Cli, terminal: tuple[int, IO[str]]) -> None:
    """Issue 14, `user delete` on a terminal: the name is checked before the question."""
    keyboard, stdin = terminal
    os.write(keyboard, b"ghost\n")  # if it asked anyway
    ran = cli("user", "delete", "ghost", stdin=stdin)
    ran.refused("There is no user 'ghost'")
    assert "Delete" not in ran.err


def test_delete_of_the_last_administrator_asks_nothing(
    cli: Cli, terminal: tuple[int, IO[str]]
) -> None:
    """A delete that the rules refuse is refused before the question, not after the name."""
    add(cli, "root", admin=True)
    keyboard, stdin = terminal
    os.write(keyboard, b"root\n")  # if it asked anyway
    ran = cli("user", "delete", "root", stdin=stdin)
    ran.refused("root is the last enabled administrator")
    assert "Delete" not in ran.err
    assert "root" in listed(cli)


@pytest.mark.parametrize(
    ("typed", "status", "kept"),
    [("alice", 0, False), ("yes", 1, True), ("Alice", 1, True)],
)
def test_delete_on_a_terminal_asks_for_the_name(
    db: Path,
    cli: Cli,
    console: Callable[..., Console],
    typed: str,
    status: int,
    kept: bool,
) -> None:
    """Issue 14, `user delete NAME` on a terminal: the real command asks, in words, and only
    the exact name typed deletes; anything else says "not deleted", exit 1."""
    add(cli, "alice")
    session = console("user", "delete", "alice", "--db", str(db))
    session.answer(DELETE_PROMPT, typed)
    assert session.finish() == status, session.seen
    if kept:
        assert "tfa-server: error: not deleted" in session.seen
        assert "alice" in listed(cli)
    else:
        assert "alice deleted" in session.seen
        assert "alice" not in listed(cli)


# --- help -----------------------------------------------------------------------------------


def test_user_help_lists_the_new_commands(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 14: `tfa-server user --help` names each new command with a line of help."""
    with pytest.raises(SystemExit) as exited:
        main(["user", "--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    for command in ("passwd", "disable", "enable", "delete", "admin"):
        assert f"\n    {command} " in shown, shown
