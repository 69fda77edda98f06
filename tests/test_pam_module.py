"""Issue 13, "The PAM module": pam_tfa.py run in this process against the real server.

The module is loaded as pam_python loads it (a module named after the file, run from its
source, never entered in sys.modules) and called with a stand-in for pam_python's handle: PAM
itself belongs to the host, so the handle is faked here (names and values as pam_python's, a
conversation that answers from a list as a person at a terminal would, None at end of input
as misc_conv gives). The tfa server is the real one on 127.0.0.1, port 0, with its fake clock.
The OS's syslog is replaced by a recorder, so that every decision's one line can be read.

tests/system/test_pam_tfa.py proves the same module inside real programs (pamtester, sshd).
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import contextlib
import os
import re
import socket
import ssl
import sys
import syslog
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import httpx
import pytest

from tfa_server.admin import Actor, Admin
from tfa_server.app import Application, initialise, open_core
from tfa_server.pam import PAM_MODULE

from .certificates import write_self_signed
from .conftest import (
    FakeClock,
    RunningServer,
    bearer,
    make_settings,
    sqlite_only,
    totp_code,
    user_with_2fa,
)
from .system.harness import requires, throwaway_group, throwaway_user

# The PAM module's side of the verify API; what the server does with its calls runs on both
# backends in tests/test_verify.py.
pytestmark = sqlite_only

SERVICE = "sshd-test"  # the PAM service name pamh.service gives (the program's)
TFA_SERVICE = "sshd-bastion"  # the relying service registered in tfa
PROMPT = "Verification code: "
NOT_CONFIGURED = "Two-factor authentication is not configured properly here."
UNREACHABLE = "The two-factor service cannot be reached; try again later."
UNREACHABLE_SAFE = "The two-factor service cannot be reached; signing in without a code."
WRONG_TOTP = "That code is not right. Check the time on your device and try again."
REUSED_TOTP = "That code has already been used. Wait for the next code and try again."
ROOT = Actor("test", None)


# pam_python's handle, faked.


class FakePamh:
    """What pam_python hands a module: Linux-PAM's constants (values read from pam_python on
    Debian 12), Message and Response, `exception`, the items, and a conversation that types
    the next answer at each prompt (None once they run out, as misc_conv does at end of
    input). `shown` is the transcript: (kind, text) with kind prompt (echo off), prompt-echo,
    error or info."""

    PAM_SUCCESS = 0
    PAM_SERVICE_ERR = 3
    PAM_SYSTEM_ERR = 4
    PAM_AUTH_ERR = 7
    PAM_AUTHINFO_UNAVAIL = 9
    PAM_USER_UNKNOWN = 10
    PAM_MAXTRIES = 11
    PAM_CONV_ERR = 19
    PAM_IGNORE = 25
    PAM_PROMPT_ECHO_OFF = 1
    PAM_PROMPT_ECHO_ON = 2
    PAM_ERROR_MSG = 3
    PAM_TEXT_INFO = 4

    class exception(Exception):  # pam_python's name for it
        pass

    class Message:
        def __init__(self, msg_style: int, msg: str) -> None:
            self.msg_style = msg_style
            self.msg = msg

    class Response:
        def __init__(self, resp: str | None, resp_retcode: int) -> None:
            self.resp = resp
            self.resp_retcode = resp_retcode

    KINDS: ClassVar[dict[int, str]] = {1: "prompt", 2: "prompt-echo", 3: "error", 4: "info"}

    def __init__(
        self,
        user: str | None,
        answers: Sequence[str] = (),
        *,
        rhost: str | None = None,
        service: str = SERVICE,
    ) -> None:
        self.user = user
        self.rhost = rhost
        self.service = service
        self.answers = list(answers)
        self.shown: list[tuple[str, str]] = []

    def get_user(self, prompt: str | None = None) -> str:
        if self.user is None:
            raise self.exception("the program could not tell the user name")
        return self.user

    def conversation(self, message: FakePamh.Message) -> FakePamh.Response:
        assert isinstance(message, FakePamh.Message), "one Message at a time"
        assert isinstance(message.msg, str)
        self.shown.append((self.KINDS[message.msg_style], message.msg))
        if message.msg_style in (self.PAM_PROMPT_ECHO_OFF, self.PAM_PROMPT_ECHO_ON):
            return self.Response(self.answers.pop(0) if self.answers else None, 0)
        return self.Response(None, 0)


def load_as_pam_python() -> ModuleType:
    """pam_python 1.1 makes a new module named after the file (no .py), gives it __file__
    and __builtins__ and runs the file in it; it never enters sys.modules (checked on Debian
    12 with a probe module under pamtester), which is why pam_tfa avoids dataclasses."""
    module = ModuleType(PAM_MODULE.stem)
    module.__file__ = str(PAM_MODULE)
    module.__dict__["__builtins__"] = builtins
    exec(compile(PAM_MODULE.read_bytes(), str(PAM_MODULE), "exec"), module.__dict__)  # noqa: S102
    assert PAM_MODULE.stem not in sys.modules
    return module


# The recorder in place of the OS's syslog.


class SyslogRecorder:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.priorities: list[int] = []
        self.opened: list[tuple[Any, ...]] = []

    def openlog(self, *args: Any, **kwargs: Any) -> None:
        self.opened.append((*args, *kwargs.values()))

    def syslog(self, *args: Any) -> None:
        priority, message = args if len(args) == 2 else (syslog.LOG_INFO, args[0])
        self.priorities.append(priority)
        self.lines.append(message)


@dataclass
class Outcome:
    result: int
    shown: list[tuple[str, str]]
    line: str  # the one syslog line of this decision


class Door:
    """pam_tfa in front of the real server, as `auth required pam_python.so pam_tfa.py
    url=... key_file=...` would run it. Every call checks what must always hold: exactly one
    syslog line (auth facility), naming the service, user, remote host and outcome, and
    neither the service key nor any answer typed in a syslog line or on the screen."""

    def __init__(
        self, module: ModuleType, recorder: SyslogRecorder, url: str, key_file: Path, key: str
    ) -> None:
        self.module = module
        self.recorder = recorder
        self.url = url
        self.key_file = key_file
        self.key = key

    async def call(self, pamh: FakePamh, arguments: Sequence[str]) -> Outcome:
        before = len(self.recorder.lines)
        typed = [answer.strip() for answer in pamh.answers if answer.strip()]
        argv = [str(PAM_MODULE), *arguments]
        result = await asyncio.to_thread(self.module.pam_sm_authenticate, pamh, 0, argv)
        lines = self.recorder.lines[before:]
        assert len(lines) == 1, f"one syslog line per decision, not {lines}"
        assert self.recorder.opened[-1] == ("pam_tfa", syslog.LOG_PID, syslog.LOG_AUTH)
        line = lines[0]
        user = pamh.user or ""
        rhost = pamh.rhost or "-"
        assert line.startswith(f"{pamh.service}: user={user!r} rhost={rhost} "), line
        assert re.search(r" (allowed|denied): ", line), line
        screen = "\n".join(text for _, text in pamh.shown)
        for secret in [self.key, self.key.removeprefix("tfasvc_"), *typed]:
            assert secret not in line, f"a secret in the syslog line {line!r}"
            assert secret not in screen
        return Outcome(int(result), pamh.shown, line)

    async def sign_in(
        self,
        user: str,
        answers: Sequence[str] = (),
        *arguments: str,
        rhost: str | None = None,
    ) -> Outcome:
        """The module with url= and key_file= (later arguments win), for `user`."""
        base = [f"url={self.url}", f"key_file={self.key_file}"]
        return await self.call(FakePamh(user, answers, rhost=rhost), [*base, *arguments])


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> SyslogRecorder:
    recording = SyslogRecorder()
    monkeypatch.setattr(syslog, "openlog", recording.openlog)
    monkeypatch.setattr(syslog, "syslog", recording.syslog)
    return recording


@pytest.fixture
def pam_tfa() -> ModuleType:
    return load_as_pam_python()


def write_key_file(path: Path, key: str, mode: int = 0o600) -> Path:
    """The key alone on a line, in a file owned by root (these tests run as root) with `mode`."""
    requires("root")  # only root can make a root-owned file, which the module insists on
    path.write_text(key + "\n")
    os.chown(path, 0, 0)
    path.chmod(mode)
    return path


@pytest.fixture
async def door(
    server: RunningServer, pam_tfa: ModuleType, recorder: SyslogRecorder, tmp_path: Path
) -> Door:
    key = (await Admin(server.core).add_service(ROOT, TFA_SERVICE, "")).key
    key_file = write_key_file(tmp_path / "service.key", key)
    return Door(pam_tfa, recorder, server.base_url, key_file, key)


def wrong_code(secret: str, clock: FakeClock) -> str:
    """Six digits that match no step in the accepted window (+-1) right now."""
    valid = {totp_code(secret, clock, offset) for offset in (-1, 0, 1)}
    return next(code for code in ("123456", "654321", "111111", "222222") if code not in valid)


async def history(client: httpx.AsyncClient, token: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/me/history", headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()["items"]  # type: ignore[no-any-return]


async def verify_events(client: httpx.AsyncClient, token: str) -> list[tuple[Any, ...]]:
    """The user's verify-API events, oldest first: (event, success, ip, service)."""
    return [
        (item["event"], item["success"], item["ip"], item["service"])
        for item in reversed(await history(client, token))
        if item["event"] in ("verify_start", "verify")
    ]


# Loading and the PAM entry points.


def test_the_module_loads_as_pam_python_loads_it_and_imports_only_the_standard_library() -> None:
    """The module runs in the host's system Python inside pam_python: standard library only,
    and it works when it is not in sys.modules."""
    tree = ast.parse(PAM_MODULE.read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert imported - {"__future__"} <= sys.stdlib_module_names, imported
    module = load_as_pam_python()
    pamh = FakePamh("alice")
    for name in ("pam_sm_open_session", "pam_sm_close_session", "pam_sm_acct_mgmt"):
        assert getattr(module, name)(pamh, 0, [str(PAM_MODULE)]) == pamh.PAM_IGNORE
    assert module.pam_sm_chauthtok(pamh, 0, [str(PAM_MODULE)]) == pamh.PAM_IGNORE
    assert module.pam_sm_setcred(pamh, 0, [str(PAM_MODULE)]) == pamh.PAM_SUCCESS


# Module arguments.


@pytest.mark.parametrize(
    ("arguments", "logged"),
    [
        pytest.param([], "url= is required", id="no-url"),
        pytest.param(["url=http://127.0.0.1:9"], "key_file= is required", id="no-key-file"),
        pytest.param(["key_file=/k", "url="], "url= is required", id="empty-url"),
        pytest.param(["url=http://127.0.0.1:9", "key_file=/k", "debug"], "'debug'", id="flag"),
        pytest.param(["url=http://127.0.0.1:9", "key_file=/k", "urls=x"], "'urls'", id="typo"),
        pytest.param(
            ["url=http://tfa.example.org", "key_file=/k"], "plain http only", id="http-remote"
        ),
        pytest.param(
            ["url=http://127.0.0.1.example.org", "key_file=/k"],
            "plain http only",
            id="http-lookalike",
        ),
        pytest.param(["url=ftp://127.0.0.1", "key_file=/k"], "https://", id="scheme"),
        pytest.param(["url=https://", "key_file=/k"], "https://", id="no-host"),
        *(
            pytest.param(["url=https://127.0.0.1:9", "key_file=/k", argument], message, id=argument)
            for argument, message in [
                ("failmode=open", "failmode= must be secure or safe"),
                ("unknown_user=skip", "unknown_user= must be deny or allow"),
                ("timeout=0", "timeout= is 0 to 300"),
                ("timeout=301", "timeout= is 0 to 300"),
                ("timeout=nan", "timeout= is 0 to 300"),
                ("timeout=soon", "must be numbers"),
                ("tries=0", "tries= 1 to 10"),
                ("tries=11", "tries= 1 to 10"),
                ("tries=2.5", "must be numbers"),
            ]
        ),
    ],
)
async def test_a_wrong_argument_denies_and_says_why_in_syslog(
    pam_tfa: ModuleType,
    recorder: SyslogRecorder,
    tmp_path: Path,
    arguments: list[str],
    logged: str,
) -> None:
    """Module arguments: url= and key_file= are required, unknown ones are refused, plain
    http only to loopback, and the choices and ranges of the rest. Each is the
    administrator's to fix: denied, a short message to the person, the reason in syslog."""
    door = Door(pam_tfa, recorder, "", tmp_path / "unused", "tfasvc_unused")
    outcome = await door.call(FakePamh("alice"), arguments)
    assert outcome.result == FakePamh.PAM_AUTHINFO_UNAVAIL
    assert outcome.shown == [("error", NOT_CONFIGURED)]
    assert "denied: configuration: " in outcome.line
    assert logged in outcome.line


async def test_a_key_put_on_the_pam_line_by_mistake_is_not_logged(
    pam_tfa: ModuleType, recorder: SyslogRecorder, tmp_path: Path
) -> None:
    """The module never logs keys: an administrator who pastes the key itself onto the PAM
    line (not name=value) gets an unknown-argument error that does not repeat it."""
    key = "tfasvc_" + "k" * 43
    door = Door(pam_tfa, recorder, "", tmp_path / "unused", key)
    for argument in (key, f"{key}=", f"key={key}"):
        outcome = await door.call(FakePamh("alice"), ["url=http://127.0.0.1:9", argument])
        assert outcome.result == FakePamh.PAM_AUTHINFO_UNAVAIL
        assert "denied: configuration: " in outcome.line


@pytest.mark.parametrize(
    ("prepare", "logged"),
    [
        pytest.param(lambda path: os.chown(path, 1, 0), "must be owned by root", id="not-root"),
        pytest.param(lambda path: path.chmod(0o640), "not readable by group", id="group-read"),
        pytest.param(lambda path: path.chmod(0o604), "not readable by group", id="other-read"),
        pytest.param(lambda path: path.chmod(0o620), "not readable by group", id="group-write"),
        pytest.param(lambda path: path.unlink(), "No such file", id="missing"),
        pytest.param(lambda path: path.write_text("hunter2\n"), "does not hold", id="not-a-key"),
    ],
)
async def test_a_key_file_anyone_but_root_could_read_or_write_is_refused(
    door: Door, prepare: Any, logged: str
) -> None:
    """key_file: refused unless owned by root and not readable by group or others (nor
    writable: whoever can write it can point the module at a key of their own)."""
    prepare(door.key_file)
    outcome = await door.sign_in("alice", ["123456"])
    assert outcome.result == FakePamh.PAM_AUTHINFO_UNAVAIL
    assert outcome.shown == [("error", NOT_CONFIGURED)]
    assert "denied: configuration: " in outcome.line
    assert logged in outcome.line


async def test_a_key_file_that_is_a_link_a_folder_or_a_pipe_is_refused(
    door: Door, tmp_path: Path
) -> None:
    """key_file must be the file itself: a symbolic link is not followed, and a folder or a
    named pipe (which would block the sign-in forever) is refused at once."""
    link = tmp_path / "link.key"
    link.symlink_to(door.key_file)
    folder = tmp_path / "folder.key"
    folder.mkdir(mode=0o700)
    pipe = tmp_path / "pipe.key"
    os.mkfifo(pipe, 0o600)
    for path in (link, folder, pipe):
        outcome = await asyncio.wait_for(
            door.sign_in("alice", ["123456"], f"key_file={path}"), timeout=5
        )
        assert outcome.result == FakePamh.PAM_AUTHINFO_UNAVAIL, path
        assert outcome.shown == [("error", NOT_CONFIGURED)]
        assert "denied: configuration: " in outcome.line


async def test_a_root_key_file_with_mode_600_or_400_is_accepted(
    door: Door, server: RunningServer, client: httpx.AsyncClient
) -> None:
    """The key file as the README tells the administrator to make it works (0600, 0400)."""
    secret, _, _ = await user_with_2fa(server, client)
    for mode in (0o600, 0o400):
        door.key_file.chmod(mode)
        outcome = await door.sign_in("alice", [totp_code(secret, server.clock)])
        assert outcome.result == FakePamh.PAM_SUCCESS, outcome
        server.clock.advance(30)


# The conversation.


async def test_the_right_code_at_an_echo_off_prompt_is_accepted(
    door: Door, server: RunningServer, client: httpx.AsyncClient
) -> None:
    """The conversation: one prompt with echo off; the right code signs in, quietly."""
    secret, _, _ = await user_with_2fa(server, client)
    outcome = await door.sign_in("alice", [totp_code(secret, server.clock)])
    assert outcome.result == FakePamh.PAM_SUCCESS
    assert outcome.shown == [("prompt", PROMPT)]
    assert outcome.line.endswith(" allowed: totp")


async def test_a_refused_code_shows_the_servers_message_and_asks_again_up_to_tries(
    door: Door, server: RunningServer, client: httpx.AsyncClient
) -> None:
    """A refused code shows the server's message and asks again, up to tries= (3 by
    default), and prompt= sets the question; a right code on a later try still counts."""
    secret, _, _ = await user_with_2fa(server, client)
    wrong = wrong_code(secret, server.clock)
    three = await door.sign_in("alice", [wrong, wrong, wrong, wrong])
    assert three.result == FakePamh.PAM_MAXTRIES
    assert three.shown == [("prompt", PROMPT), ("error", WRONG_TOTP)] * 3
    assert three.line.endswith(" denied: 3 tries used")
    right = totp_code(secret, server.clock)
    two = await door.sign_in("alice", [wrong, right], "tries=2", "prompt=tfa code for sudo: ")
    assert two.result == FakePamh.PAM_SUCCESS
    assert two.shown == [
        ("prompt", "tfa code for sudo: "),
        ("error", WRONG_TOTP),
        ("prompt", "tfa code for sudo: "),
    ]


async def test_a_used_code_is_refused_with_the_servers_message(
    door: Door, server: RunningServer, client: httpx.AsyncClient
) -> None:
    """A code is spent once, wherever it was used: the same code at the next sign-in is
    refused with the server's message (code_reused), and the next prompt follows."""
    secret, _, _ = await user_with_2fa(server, client)
    code = totp_code(secret, server.clock)
    assert (await door.sign_in("alice", [code])).result == FakePamh.PAM_SUCCESS
    again = await door.sign_in("alice", [code], "tries=1")
    assert again.result == FakePamh.PAM_MAXTRIES
    assert again.shown == [("prompt", PROMPT), ("error", REUSED_TOTP)]


async def test_a_recovery_code_at_the_same_prompt_signs_in_once_and_says_how_many_are_left(
    door: Door, server: RunningServer, client: httpx.AsyncClient
) -> None:
    """A recovery code is accepted at the same prompt, once; "N recovery codes left" is
    shown as information; the same recovery code again is refused."""
    _, codes, _ = await user_with_2fa(server, client)
    used = await door.sign_in("alice", [codes[0]])
    assert used.result == FakePamh.PAM_SUCCESS
    assert used.shown == [
        ("prompt", PROMPT),
        ("info", "Recovery code accepted; 9 recovery codes left."),
    ]
    assert used.line.endswith(" allowed: recovery_code")
    again = await door.sign_in("alice", [codes[0]], "tries=1")
    assert again.result == FakePamh.PAM_MAXTRIES
    assert again.shown == [
        ("prompt", PROMPT),
        ("error", "That recovery code has already been used."),
    ]


async def test_the_last_recovery_codes_are_counted_in_words(
    door: Door, server: RunningServer, client: httpx.AsyncClient
) -> None:
    """The count of recovery codes left reads right for one and for none."""
    _, codes, _ = await user_with_2fa(server, client)
    for code in codes[:8]:
        assert (await door.sign_in("alice", [code])).result == FakePamh.PAM_SUCCESS
    one = await door.sign_in("alice", [codes[8]])
    assert one.shown[-1] == ("info", "Recovery code accepted; 1 recovery code left.")
    none = await door.sign_in("alice", [codes[9]])
    assert none.shown[-1] == ("info", "Recovery code accepted; no recovery codes left.")


async def test_too_many_attempts_stops_asking(
    door: Door, server: RunningServer, client: httpx.AsyncClient
) -> None:
    """too_many_attempts stops the conversation at once with the server's message (which
    says how long to wait), whatever tries= allows."""
    secret, _, _ = await user_with_2fa(server, client)
    wrong = wrong_code(secret, server.clock)
    outcome = await door.sign_in("alice", [wrong] * 10, "tries=10")
    assert outcome.result == FakePamh.PAM_MAXTRIES
    throttled = "Too many failed attempts. Try again in 30 seconds."
    assert outcome.shown == [
        *[("prompt", PROMPT), ("error", WRONG_TOTP)] * 5,
        ("prompt", PROMPT),
        ("error", throttled),
    ]
    assert outcome.line.endswith(" denied: too_many_attempts (retry after 30 s)")


async def test_an_empty_answer_uses_a_try_and_no_answer_ends_the_conversation(
    door: Door, server: RunningServer, client: httpx.AsyncClient
) -> None:
    """Enter alone asks again (and uses a try, without asking the server); end of input
    (Ctrl+D, or a program that cannot ask) ends with a conversation error."""
    await user_with_2fa(server, client)
    empty = await door.sign_in("alice", ["", " "], "tries=2")
    assert empty.result == FakePamh.PAM_MAXTRIES
    assert empty.shown == [("prompt", PROMPT), ("error", "No code entered.")] * 2
    gone = await door.sign_in("alice", [])
    assert gone.result == FakePamh.PAM_CONV_ERR
    assert gone.shown == [("prompt", PROMPT)]
    assert gone.line.endswith(" denied: no answer")


async def test_without_2fa_the_policy_decides_and_the_message_is_shown(
    door: Door, server: RunningServer
) -> None:
    """No 2FA: allowed with a hint when the policy allows it; during the grace period the
    grace-period message is shown as information; after it, a clear refusal that says how to
    set up 2FA, not a silent failure. No prompt in any case."""
    await server.add_user("bob")
    free = await door.sign_in("bob", ["123456"])
    assert free.result == FakePamh.PAM_SUCCESS
    assert len(free.shown) == 1
    assert free.shown[0][0] == "info"
    assert "not set up for this account" in free.shown[0][1]
    await Admin(server.core).set_policy(ROOT, True, 7)
    grace = await door.sign_in("bob", ["123456"])
    assert grace.result == FakePamh.PAM_SUCCESS
    assert grace.shown == [
        (
            "info",
            "Your administrator requires two-factor authentication in 7 days."
            " Set it up now from any terminal: tfa",
        )
    ]
    server.clock.advance(7 * 86400 + 1)
    required = await door.sign_in("bob", ["123456"])
    assert required.result == FakePamh.PAM_AUTH_ERR
    assert required.shown == [
        (
            "error",
            "Your administrator requires two-factor authentication, and it is not set up for"
            " this account. Set it up from any terminal: tfa and then sign in here again.",
        )
    ]
    assert required.line.endswith(" denied: enrollment_required")


async def test_a_disabled_account_is_denied_with_words_and_never_asked_for_a_code(
    door: Door, server: RunningServer, client: httpx.AsyncClient
) -> None:
    """An administrator disabled the account: sshd says so, without a prompt, even for a
    user with 2FA whose code would be right."""
    await user_with_2fa(server, client)
    await Admin(server.core).disable(ROOT, "alice")
    outcome = await door.sign_in("alice", ["123456"])
    assert outcome.result == FakePamh.PAM_AUTH_ERR
    assert outcome.shown == [("error", "This account is disabled. Contact your administrator.")]
    assert outcome.line.endswith(" denied: account_disabled")


async def test_unknown_user_denies_by_default_and_allow_lets_them_pass(door: Door) -> None:
    """unknown_user=deny (the default) refuses a person tfa does not know; allow lets them
    pass without a prompt."""
    denied = await door.sign_in("carol")
    assert denied.result == FakePamh.PAM_USER_UNKNOWN
    assert denied.shown == [("error", "There is no two-factor account for this user here.")]
    assert denied.line.endswith(" denied: no tfa account")
    allowed = await door.sign_in("carol", [], "unknown_user=allow")
    assert allowed.result == FakePamh.PAM_SUCCESS
    assert allowed.shown == []
    assert allowed.line.endswith(" allowed: no tfa account (unknown_user=allow)")


async def test_a_program_that_cannot_tell_the_user_is_denied_with_one_syslog_line(
    door: Door,
) -> None:
    """No user name from the program (pam_get_user fails): denied, and that decision too
    gets its syslog line."""
    outcome = await door.call(FakePamh(None), [f"url={door.url}", f"key_file={door.key_file}"])
    assert outcome.result == FakePamh.PAM_USER_UNKNOWN
    assert outcome.shown == []
    assert "denied: " in outcome.line


async def test_a_revoked_service_key_denies_as_a_configuration_problem(
    door: Door, server: RunningServer, client: httpx.AsyncClient
) -> None:
    """A revoked key is the service's own problem: denied (never failmode=safe's allow, which
    is for an unreachable server), and syslog says why."""
    await user_with_2fa(server, client)
    await Admin(server.core).revoke_service(ROOT, TFA_SERVICE)
    outcome = await door.sign_in("alice", ["123456"], "failmode=safe")
    assert outcome.result == FakePamh.PAM_AUTHINFO_UNAVAIL
    assert outcome.shown == [("error", NOT_CONFIGURED)]
    assert outcome.line.endswith(" denied: verify/start said unauthorized")


# Break-glass accounts.


async def test_skip_users_are_never_asked_even_when_tfa_is_out_of_order(
    door: Door, server: RunningServer, client: httpx.AsyncClient
) -> None:
    """skip_users (a comma list) is never asked and never sent to tfa, even with an unusable
    key file and the server stopped: a break-glass account gets in when tfa cannot help."""
    _, _, token = await user_with_2fa(server, client)
    listed = "skip_users=ops, alice ,backup"
    outcome = await door.sign_in("alice", [], listed)
    assert outcome.result == FakePamh.PAM_SUCCESS
    assert outcome.shown == []
    assert outcome.line.endswith(" allowed: skipped (skip_users/skip_groups)")
    assert await verify_events(client, token) == []
    await server.app.stop()
    door.key_file.chmod(0o644)
    broken = await door.sign_in("alice", [], listed)
    assert broken.result == FakePamh.PAM_SUCCESS
    assert broken.shown == []
    other = await door.sign_in("alicia", [], listed)
    assert other.result == FakePamh.PAM_AUTHINFO_UNAVAIL  # not skipped: the key file is bad


async def test_skip_groups_match_the_primary_and_the_supplementary_groups(
    door: Door, server: RunningServer
) -> None:
    """skip_groups: a member of a listed group, by primary group or as a supplementary
    member, is never asked; anyone else is."""
    with throwaway_user() as user, throwaway_group([user.name]) as extra:
        await server.add_user(user.name)  # no 2FA: asked means "allow" with the hint
        for groups in (user.name, extra, f"wheel,{extra}"):
            skipped = await door.sign_in(user.name, [], f"skip_groups={groups}")
            assert skipped.result == FakePamh.PAM_SUCCESS
            assert skipped.shown == [], groups
            assert skipped.line.endswith(" allowed: skipped (skip_users/skip_groups)")
        asked = await door.sign_in(user.name, [], "skip_groups=root,no-such-group")
        assert asked.line.endswith(" allowed: no 2FA required")
        assert asked.shown[0][0] == "info"


# The remote host.


async def test_the_remote_host_is_sent_when_it_is_an_ip_address(
    door: Door, server: RunningServer, client: httpx.AsyncClient
) -> None:
    """The module passes PAM_RHOST as remote_ip when it is an IP address: the user's
    history shows it with the service's name. A host name (sshd with UseDNS) is not sent, so
    the server counts the service's own address; syslog names the remote host either way."""
    secret, _, token = await user_with_2fa(server, client)
    by_ip = await door.sign_in("alice", [totp_code(secret, server.clock)], rhost="127.0.0.9")
    assert by_ip.result == FakePamh.PAM_SUCCESS
    assert " rhost=127.0.0.9 " in by_ip.line
    server.clock.advance(30)
    by_name = await door.sign_in(
        "alice", [totp_code(secret, server.clock)], rhost="workstation.example.org"
    )
    assert by_name.result == FakePamh.PAM_SUCCESS
    assert " rhost=workstation.example.org " in by_name.line
    server.clock.advance(30)
    ipv6 = await door.sign_in("alice", [totp_code(secret, server.clock)], rhost="::1")
    assert ipv6.result == FakePamh.PAM_SUCCESS
    assert await verify_events(client, token) == [
        ("verify_start", True, "127.0.0.9", TFA_SERVICE),
        ("verify", True, "127.0.0.9", TFA_SERVICE),
        ("verify_start", True, "127.0.0.1", TFA_SERVICE),
        ("verify", True, "127.0.0.1", TFA_SERVICE),
        ("verify_start", True, "::1", TFA_SERVICE),
        ("verify", True, "::1", TFA_SERVICE),
    ]


# When tfa cannot be reached.


@contextlib.contextmanager
def stub_server(reply: bytes | None) -> Iterator[Stub]:
    stub = Stub(reply)
    try:
        yield stub
    finally:
        stub.close()


class Stub:
    """A loopback listener standing for what the real server never is: a redirect, a proxy,
    another protocol. It answers each connection with `reply` once the request's head has
    arrived, then closes; with no reply it never even accepts (the kernel completes the
    connection, and the request waits forever)."""

    def __init__(self, reply: bytes | None) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        self.reply = reply
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        if reply is not None:
            self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                self.connections += 1
                conn.settimeout(2)
                received = b""
                with contextlib.suppress(OSError):
                    while b"\r\n\r\n" not in received and (chunk := conn.recv(4096)):
                        received += chunk
                    assert self.reply is not None
                    conn.sendall(self.reply)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.sock.close()


@pytest.mark.parametrize("failmode", ["secure", "safe"])
async def test_failmode_when_the_server_is_stopped(
    door: Door, server: RunningServer, client: httpx.AsyncClient, failmode: str
) -> None:
    """failmode=secure (the default) denies when tfa cannot be reached; safe allows and
    says so."""
    secret, _, _ = await user_with_2fa(server, client)
    await server.app.stop()
    code = totp_code(secret, server.clock)
    arguments = [] if failmode == "secure" else ["failmode=safe"]
    outcome = await door.sign_in("alice", [code], *arguments)
    if failmode == "secure":
        assert outcome.result == FakePamh.PAM_AUTHINFO_UNAVAIL
        assert outcome.shown == [("error", UNREACHABLE)]
        assert outcome.line.endswith(" denied: tfa unreachable (ConnectionRefusedError)")
    else:
        assert outcome.result == FakePamh.PAM_SUCCESS
        assert outcome.shown == [("info", UNREACHABLE_SAFE)]
        assert outcome.line.endswith(
            " allowed: tfa unreachable (ConnectionRefusedError), failmode=safe"
        )


async def test_a_server_that_does_not_answer_is_given_up_after_timeout(door: Door) -> None:
    """timeout=: a server that accepts but never answers is unreachable after that many
    seconds, not a sign-in that hangs."""
    with stub_server(None) as silent:
        started = asyncio.get_running_loop().time()
        outcome = await door.sign_in(
            "alice", ["123456"], f"url=http://127.0.0.1:{silent.port}", "timeout=0.3"
        )
        took = asyncio.get_running_loop().time() - started
    assert outcome.result == FakePamh.PAM_AUTHINFO_UNAVAIL
    assert outcome.shown == [("error", UNREACHABLE)]
    assert outcome.line.endswith(" denied: tfa unreachable (TimeoutError)")
    assert 0.3 <= took < 3


async def test_something_else_than_tfa_at_the_url_is_unreachable_not_a_crash(
    door: Door,
) -> None:
    """Another protocol at the URL (here an SSH banner) is "cannot be reached" under
    failmode, with its syslog line, not an exception out of the module."""
    with stub_server(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n") as ssh:
        outcome = await door.sign_in("alice", ["123456"], f"url=http://127.0.0.1:{ssh.port}")
    assert outcome.result == FakePamh.PAM_AUTHINFO_UNAVAIL
    assert outcome.shown == [("error", UNREACHABLE)]
    assert "denied: tfa unreachable" in outcome.line


async def test_redirects_are_never_followed(door: Door) -> None:
    """A redirect would carry the key elsewhere: it is not followed (the target never hears
    of it), and the sign-in is refused as tfa being unreachable."""
    with stub_server(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n") as target:
        location = f"http://127.0.0.1:{target.port}/api/v1/verify/start"
        for status in (301, 302, 303, 307, 308):
            redirect = (
                f"HTTP/1.1 {status} Moved\r\nLocation: {location}\r\n"
                "Content-Type: application/json\r\nContent-Length: 2\r\n"
                "Connection: close\r\n\r\n{}"
            ).encode()
            with stub_server(redirect) as moved:
                url = f"http://127.0.0.1:{moved.port}"
                outcome = await door.sign_in("alice", ["123456"], f"url={url}")
                assert moved.connections == 1
            assert outcome.result == FakePamh.PAM_AUTHINFO_UNAVAIL, status
            assert outcome.line.endswith(f" denied: tfa unreachable (HTTP {status})")
        assert target.connections == 0


async def test_proxy_variables_of_the_calling_program_are_ignored(
    door: Door,
    server: RunningServer,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The key goes to url= and nowhere else: http_proxy and friends in the calling
    program's environment (sudo keeps the invoking user's own) are not used, so a user cannot
    send the key through a proxy of theirs, nor make tfa unreachable to get failmode=safe."""
    secret, _, _ = await user_with_2fa(server, client)
    with stub_server(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n") as proxy:
        for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
        for name in ("no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        outcome = await door.sign_in("alice", [totp_code(secret, server.clock)], "failmode=safe")
        assert proxy.connections == 0
    assert outcome.result == FakePamh.PAM_SUCCESS
    assert outcome.line.endswith(" allowed: totp")


# TLS.


def self_signed(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """A throw-away certificate for 127.0.0.1: (the server's context, the certificate file)."""
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    write_self_signed(cert_file, key_file, "tfa pam test")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


async def test_tls_certificates_are_verified_and_ca_file_trusts_a_private_ca(
    pam_tfa: ModuleType, recorder: SyslogRecorder, tmp_path: Path
) -> None:
    """TLS is verified: a self-signed server is unreachable (under failmode) without
    ca_file, and works with ca_file naming its certificate (whatever the case of the URL's
    scheme); a ca_file that cannot be read is a configuration error, not a crash."""
    folder = tmp_path / "tls"
    folder.mkdir()
    context, cert_file = self_signed(folder)
    settings = make_settings(folder)
    initialise(settings)
    app = Application(open_core(settings, FakeClock()), ssl_context=context)
    await app.start("127.0.0.1", 0)
    try:
        await Admin(app.core).create_user(ROOT, "bob", "correct horse battery", False)
        key = (await Admin(app.core).add_service(ROOT, TFA_SERVICE, "")).key
        door = Door(
            pam_tfa,
            recorder,
            f"https://127.0.0.1:{app.port}",
            write_key_file(tmp_path / "service.key", key),
            key,
        )
        unverified = await door.sign_in("bob")
        assert unverified.result == FakePamh.PAM_AUTHINFO_UNAVAIL
        assert unverified.shown == [("error", UNREACHABLE)]
        assert unverified.line.endswith(" denied: tfa unreachable (SSLCertVerificationError)")
        trusted = await door.sign_in("bob", [], f"ca_file={cert_file}")
        assert trusted.result == FakePamh.PAM_SUCCESS
        assert trusted.line.endswith(" allowed: no 2FA required")
        capitals = f"url=HTTPS://127.0.0.1:{app.port}"  # the same URL: ca_file still applies
        assert (await door.sign_in("bob", [], capitals, f"ca_file={cert_file}")).result == 0
        for unusable in (tmp_path / "missing.pem", door.key_file):
            broken = await door.sign_in("bob", [], f"ca_file={unusable}")
            assert broken.result == FakePamh.PAM_AUTHINFO_UNAVAIL
            assert broken.shown == [("error", NOT_CONFIGURED)]
            assert "denied: configuration: " in broken.line
    finally:
        await app.stop()
