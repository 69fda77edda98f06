"""Issue 13, "Proof with real programs that no one here wrote": pam_tfa inside Linux-PAM through
Debian's pam_python, driven by pamtester on a pseudo-terminal and by a real OpenSSH sshd with
paramiko as the client, against the real tfa server on 127.0.0.1 (port 0, fake clock).

Each test makes a throw-away Unix user and a tfa account of the same name (the module sends
PAM_USER as the username), registers a relying service and writes its key to a root-owned
0600 file. Codes are computed as an authenticator app would, by oathtool at the server's
(fake) time, never by tfa's own TOTP code. The programs block, so they run in a thread while
the server serves on the test's event loop.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paramiko
import pytest

from tfa_server.admin import Actor, Admin
from tfa_server.pam import PAM_MODULE

from ..conftest import FakeClock, RunningServer, bearer, enable_totp, login, sqlite_only
from .harness import (
    ENV,
    OATHTOOL,
    PamConversation,
    Sshd,
    UnixUser,
    pam_python_line,
    pam_service_file,
    requires,
    run_pamtester,
    ssh_run,
    throwaway_user,
    unique_name,
)

# sshd and sudo through the real PAM stack; the server's side runs on both backends in
# tests/test_verify.py.
pytestmark = sqlite_only

PROMPT = "Verification code: "
ROOT = Actor("test", None)
WRONG_TOTP = "That code is not right. Check the time on your device and try again."
REUSED_TOTP = "That code has already been used. Wait for the next code and try again."
# pamtester's verdicts (pam_strerror of the result).
SUCCESS = "pamtester: successfully authenticated"
MAXTRIES = "Have exhausted maximum number of retries for service"
AUTH_ERR = "Authentication failure"
AUTHINFO_UNAVAIL = "Authentication service cannot retrieve authentication info"


def authenticator_code(secret: str, clock: FakeClock, steps: int = 0) -> str:
    """What an authenticator app shows at the server's time (+ `steps` periods): oathtool."""
    return authenticator_codes(secret, clock.now() + 30 * steps)[0]


def authenticator_codes(secret: str, at: float, count: int = 1) -> list[str]:
    requires("oathtool")
    done = subprocess.run(
        [str(OATHTOOL), "--totp", "-b", secret, "--now", f"@{int(at)}", "-w", str(count - 1)],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
        env=ENV,
    )
    return done.stdout.split()


def wrong_code(secret: str, clock: FakeClock) -> str:
    """Six digits that no step the server accepts now (one either side) gives."""
    valid = set(authenticator_codes(secret, clock.now() - 30, count=3))
    return next(code for code in ("123456", "654321", "111111", "222222") if code not in valid)


@dataclass
class Tfa:
    """The tfa side of a test: the server, a client of its API, and a service key file."""

    server: RunningServer
    client: httpx.AsyncClient
    folder: Path

    async def service_key_file(self, name: str) -> Path:
        """Register relying service `name` and write its key as the README says: the key alone,
        in a file owned by root with mode 0600."""
        key = (await Admin(self.server.core).add_service(ROOT, name, "")).key
        path = self.folder / f"{name}.key"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(key + "\n")
        os.chown(path, 0, 0)
        return path

    def stack(self, key_file: Path, *arguments: str) -> str:
        """A PAM service file with pam_tfa for authentication, by the absolute path that
        `tfa-server pam path` prints; pam_permit for the account and session stacks."""
        line = pam_python_line(
            PAM_MODULE, f"url={self.server.base_url}", f"key_file={key_file}", *arguments
        )
        return "\n".join([line, "account required pam_permit.so", "session required pam_permit.so"])

    async def user_with_2fa(self, name: str) -> tuple[str, list[str], str]:
        """A tfa account `name` with an authenticator: (secret, recovery codes, its token)."""
        await self.server.add_user(name)
        token = (await login(self.client, name))["token"]
        secret, codes = await enable_totp(self.client, token, self.server.clock)
        return secret, codes, token

    async def verify_events(self, token: str) -> list[tuple[Any, ...]]:
        """The account's verify-API history, oldest first: (event, success, reason, ip,
        service)."""
        response = await self.client.get("/api/v1/me/history", headers=bearer(token))
        assert response.status_code == 200, response.text
        return [
            (item["event"], item["success"], item["reason"], item["ip"], item["service"])
            for item in reversed(response.json()["items"])
            if item["event"] in ("verify_start", "verify")
        ]


@pytest.fixture
async def tfa(server: RunningServer, client: httpx.AsyncClient, tmp_path: Path) -> Tfa:
    requires("root", "libpam-python", "pamtester", "oathtool")
    return Tfa(server, client, tmp_path)


async def pamtester(
    service: str, user: str, answers: Sequence[str], items: dict[str, str] | None = None
) -> PamConversation:
    """pamtester SERVICE USER authenticate on a pseudo-terminal, off the event loop."""
    return await asyncio.to_thread(run_pamtester, service, user, answers, items=items)


def assert_never_shown(result: PamConversation, *secrets: str) -> None:
    """Codes are typed with echo off: none appears on the terminal."""
    for secret in secrets:
        assert secret not in result.shown, result.shown


# pamtester.


async def test_pamtester_right_code_signs_in_and_the_same_code_again_does_not(
    tfa: Tfa, unix_user: UnixUser, pam_service: Callable[[str], str]
) -> None:
    """pamtester: the right code (oathtool's) -> success; the same code again -> failure with
    the server's message at each of the three tries. PAM_RHOST (as sshd would set it) is what
    the user's history shows, with the service's name."""
    secret, _, token = await tfa.user_with_2fa(unix_user.name)
    service = pam_service(tfa.stack(await tfa.service_key_file("bastion")))
    code = authenticator_code(secret, tfa.server.clock)
    rhost = {"rhost": "127.0.0.9"}
    right = await pamtester(service, unix_user.name, [code], rhost)
    assert right.status == 0, right.shown
    assert right.prompts == [PROMPT]
    assert right.shown == f"{PROMPT}\n{SUCCESS}\n"
    again = await pamtester(service, unix_user.name, [code, code, code], rhost)
    assert again.status != 0
    assert again.prompts == [PROMPT] * 3
    assert again.shown == f"{PROMPT}\n{REUSED_TOTP}\n" * 3 + f"pamtester: {MAXTRIES}\n"
    assert_never_shown(again, code)
    assert await tfa.verify_events(token) == [
        ("verify_start", True, "totp_required", "127.0.0.9", "bastion"),
        ("verify", True, None, "127.0.0.9", "bastion"),
        ("verify_start", True, "totp_required", "127.0.0.9", "bastion"),
        *[("verify", False, "code_reused", "127.0.0.9", "bastion")] * 3,
    ]


async def test_pamtester_wrong_code_fails(
    tfa: Tfa, unix_user: UnixUser, pam_service: Callable[[str], str]
) -> None:
    """pamtester: a wrong code -> failure; each refusal shows the server's message and asks
    again, three times."""
    secret, _, _ = await tfa.user_with_2fa(unix_user.name)
    service = pam_service(tfa.stack(await tfa.service_key_file("bastion")))
    wrong = wrong_code(secret, tfa.server.clock)
    result = await pamtester(service, unix_user.name, [wrong] * 3)
    assert result.status != 0
    assert result.prompts == [PROMPT] * 3
    assert result.shown == f"{PROMPT}\n{WRONG_TOTP}\n" * 3 + f"pamtester: {MAXTRIES}\n"
    assert_never_shown(result, wrong)


async def test_pamtester_recovery_code_signs_in_once(
    tfa: Tfa, unix_user: UnixUser, pam_service: Callable[[str], str]
) -> None:
    """pamtester: a recovery code at the same prompt -> success once, saying how many are
    left; the same recovery code again -> failure."""
    _, codes, _ = await tfa.user_with_2fa(unix_user.name)
    service = pam_service(tfa.stack(await tfa.service_key_file("bastion"), "tries=1"))
    used = await pamtester(service, unix_user.name, [codes[0]])
    assert used.status == 0, used.shown
    assert used.shown == f"{PROMPT}\nRecovery code accepted; 9 recovery codes left.\n{SUCCESS}\n"
    again = await pamtester(service, unix_user.name, [codes[0]])
    assert again.status != 0
    assert again.shown == (
        f"{PROMPT}\nThat recovery code has already been used.\npamtester: {MAXTRIES}\n"
    )
    assert_never_shown(again, codes[0])


async def test_pamtester_with_the_server_stopped_failmode_secure_fails_and_safe_lets_in(
    tfa: Tfa, unix_user: UnixUser, pam_service: Callable[[str], str]
) -> None:
    """pamtester with tfa stopped: failmode=secure (the default) -> failure, saying tfa cannot
    be reached; failmode=safe -> success, saying so. No prompt either way."""
    await tfa.user_with_2fa(unix_user.name)
    key_file = await tfa.service_key_file("bastion")
    secure = pam_service(tfa.stack(key_file))
    safe = pam_service(tfa.stack(key_file, "failmode=safe"))
    await tfa.server.app.stop()
    denied = await pamtester(secure, unix_user.name, [])
    assert denied.status != 0
    assert denied.prompts == []
    assert denied.shown == (
        "The two-factor service cannot be reached; try again later.\n"
        f"pamtester: {AUTHINFO_UNAVAIL}\n"
    )
    allowed = await pamtester(safe, unix_user.name, [])
    assert allowed.status == 0
    assert allowed.prompts == []
    assert allowed.shown == (
        f"The two-factor service cannot be reached; signing in without a code.\n{SUCCESS}\n"
    )


async def test_pamtester_without_2fa_after_the_grace_period_fails_with_the_set_up_message(
    tfa: Tfa, unix_user: UnixUser, pam_service: Callable[[str], str]
) -> None:
    """pamtester, a user without 2FA under "Force 2FA": during the grace period -> success
    with the days left; after it -> failure with the message that says how to set it up."""
    await tfa.server.add_user(unix_user.name)
    service = pam_service(tfa.stack(await tfa.service_key_file("bastion")))
    await Admin(tfa.server.core).set_policy(ROOT, True, 2)
    grace = await pamtester(service, unix_user.name, [])
    assert grace.status == 0
    assert grace.prompts == []
    assert grace.shown == (
        "Your administrator requires two-factor authentication in 2 days. Set it up now from"
        f" any terminal: tfa\n{SUCCESS}\n"
    )
    tfa.server.clock.advance(2 * 86400 + 1)
    required = await pamtester(service, unix_user.name, [])
    assert required.status != 0
    assert required.prompts == []
    assert required.shown == (
        "Your administrator requires two-factor authentication, and it is not set up for this"
        " account. Set it up from any terminal: tfa and then sign in here again.\n"
        f"pamtester: {AUTH_ERR}\n"
    )


async def test_pamtester_skipped_users_sign_in_without_a_prompt(
    tfa: Tfa, unix_user: UnixUser, pam_service: Callable[[str], str]
) -> None:
    """pamtester, break-glass accounts: a user in skip_users, or in a group of skip_groups
    (here the Unix user's own), -> success with no prompt and no call to tfa; another
    user of the same service is asked."""
    _, _, token = await tfa.user_with_2fa(unix_user.name)
    key_file = await tfa.service_key_file("bastion")
    for argument in (f"skip_users=root,{unix_user.name}", f"skip_groups=wheel,{unix_user.name}"):
        service = pam_service(tfa.stack(key_file, argument))
        skipped = await pamtester(service, unix_user.name, [])
        assert skipped.status == 0, skipped.shown
        assert skipped.prompts == []
        assert skipped.shown == f"{SUCCESS}\n"
    assert await tfa.verify_events(token) == []
    asked = await pamtester(pam_service(tfa.stack(key_file, "skip_users=root")), unix_user.name, [])
    assert asked.prompts == [PROMPT]


async def test_pamtester_as_sudo_asks_the_invoking_users_code(
    tfa: Tfa, unix_user: UnixUser
) -> None:
    """sudo through the same module, as far as pamtester can play sudo: a service file named
    like sudo's with the items sudo sets (PAM_USER and PAM_RUSER the invoking user, PAM_RHOST
    this host's name, a tty). The right code -> success, a wrong one -> failure; the history
    shows the sudo service, from the server's own address (a host name is not an address)."""
    secret, _, token = await tfa.user_with_2fa(unix_user.name)
    # Linux-PAM splits arguments at spaces unless the argument is in square brackets.
    stack = tfa.stack(await tfa.service_key_file("sudo-db1"), "[prompt=tfa code for sudo: ]")
    items = {"ruser": unix_user.name, "rhost": socket.gethostname(), "tty": "/dev/pts/0"}
    with pam_service_file(stack, unique_name("sudo-tfa-t-")) as service:
        code = authenticator_code(secret, tfa.server.clock)
        right = await pamtester(service, unix_user.name, [code], items)
        assert right.status == 0, right.shown
        assert right.prompts == ["tfa code for sudo: "]
        wrong = wrong_code(secret, tfa.server.clock)
        refused = await pamtester(service, unix_user.name, [wrong] * 3, items)
        assert refused.status != 0
        assert refused.prompts == ["tfa code for sudo: "] * 3
    assert await tfa.verify_events(token) == [
        ("verify_start", True, "totp_required", "127.0.0.1", "sudo-db1"),
        ("verify", True, None, "127.0.0.1", "sudo-db1"),
        ("verify_start", True, "totp_required", "127.0.0.1", "sudo-db1"),
        *[("verify", False, "bad_code", "127.0.0.1", "sudo-db1")] * 3,
    ]


# A real sshd.


async def start_sshd(sshd: Callable[[str], Sshd], stack: str) -> Sshd:
    return await asyncio.to_thread(sshd, stack)


def example_stack(url: str, key_file: Path) -> str:
    """The auth line that `tfa-server pam example` prints, as an administrator pastes it,
    with pam_permit for the account and session stacks."""
    command = [sys.executable, "-m", "tfa_server", "pam", "example", "--url", url]
    done = subprocess.run(
        [*command, "--key-file", str(key_file)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    auth = [line for line in done.stdout.splitlines() if line.startswith("auth ")]
    assert len(auth) == 1, done.stdout
    return "\n".join([*auth, "account required pam_permit.so", "session required pam_permit.so"])


async def test_sshd_right_code_opens_a_session_the_same_code_again_does_not(
    tfa: Tfa,
    unix_user: UnixUser,
    sshd: Callable[[str], Sshd],
    ssh_key: tuple[paramiko.PKey, str],
) -> None:
    """A real sshd (publickey, then keyboard-interactive through pam_tfa, with the very line
    `tfa-server pam example` prints): the key and the right code open a session that runs a
    command; the same code again opens none, each try showing the server's message before the
    next prompt. The user's history then shows the SSH sign-in: event verify, the service's
    name and the client's address (PAM_RHOST)."""
    requires("openssh-server")
    secret, _, token = await tfa.user_with_2fa(unix_user.name)
    key, public = ssh_key
    unix_user.authorize(public)
    key_file = await tfa.service_key_file("sshd-bastion")
    stack = await asyncio.to_thread(example_stack, tfa.server.base_url, key_file)
    assert f" {PAM_MODULE} " in stack
    server = await start_sshd(sshd, stack)
    code = authenticator_code(secret, tfa.server.clock)

    def sign_in(answers: list[str]) -> Any:
        return ssh_run(
            server.port, unix_user.name, key, answers, "id -un", host_key=server.host_key
        )

    opened = await asyncio.to_thread(sign_in, [code])
    assert opened.authenticated, server.log()
    assert opened.after_key == ["keyboard-interactive"]
    assert opened.prompts == [PROMPT]
    assert opened.output == f"{unix_user.name}\n"
    assert opened.exit_status == 0
    reused = await asyncio.to_thread(sign_in, [code] * 3)
    assert not reused.authenticated
    assert reused.output == ""
    # sshd puts the messages shown before a prompt into the prompt; the last one, after the
    # last answer, comes alone as the instruction of a request with no prompt.
    assert reused.prompts == [PROMPT, f"{REUSED_TOTP}\n{PROMPT}", f"{REUSED_TOTP}\n{PROMPT}"]
    assert reused.instructions == [f"{REUSED_TOTP}\n"]
    assert await tfa.verify_events(token) == [
        ("verify_start", True, "totp_required", "127.0.0.1", "sshd-bastion"),
        ("verify", True, None, "127.0.0.1", "sshd-bastion"),
        ("verify_start", True, "totp_required", "127.0.0.1", "sshd-bastion"),
        *[("verify", False, "code_reused", "127.0.0.1", "sshd-bastion")] * 3,
    ]


async def test_sshd_wrong_code_opens_no_session(
    tfa: Tfa,
    unix_user: UnixUser,
    sshd: Callable[[str], Sshd],
    ssh_key: tuple[paramiko.PKey, str],
) -> None:
    """A real sshd: the right key but wrong codes open no session; the server's message comes
    with the next prompt, and the command never runs."""
    requires("openssh-server")
    secret, _, token = await tfa.user_with_2fa(unix_user.name)
    key, public = ssh_key
    unix_user.authorize(public)
    server = await start_sshd(sshd, tfa.stack(await tfa.service_key_file("sshd-bastion")))
    wrong = wrong_code(secret, tfa.server.clock)
    outcome = await asyncio.to_thread(
        ssh_run,
        server.port,
        unix_user.name,
        key,
        [wrong] * 3,
        "touch ran",
        host_key=server.host_key,
    )
    assert not outcome.authenticated
    assert outcome.prompts == [PROMPT, f"{WRONG_TOTP}\n{PROMPT}", f"{WRONG_TOTP}\n{PROMPT}"]
    assert outcome.instructions == [f"{WRONG_TOTP}\n"]
    assert not (unix_user.home / "ran").exists()
    events = await tfa.verify_events(token)
    assert events[-3:] == [("verify", False, "bad_code", "127.0.0.1", "sshd-bastion")] * 3


async def test_sshd_shows_the_modules_information_in_an_interactive_session(
    tfa: Tfa,
    unix_user: UnixUser,
    sshd: Callable[[str], Sshd],
    ssh_key: tuple[paramiko.PKey, str],
) -> None:
    """A real sshd: what the module says after the last answer ("N recovery codes left", the
    grace-period message) reaches a person's interactive `ssh host` (sshd shows it with the
    login messages), though never `ssh host command`."""
    requires("openssh-server")
    _, codes, _ = await tfa.user_with_2fa(unix_user.name)
    key, public = ssh_key
    unix_user.authorize(public)
    server = await start_sshd(sshd, tfa.stack(await tfa.service_key_file("sshd-bastion")))

    def sign_in(user: str, answers: list[str], interactive: bool) -> Any:
        return ssh_run(
            server.port,
            user,
            key,
            answers,
            "id -un",
            host_key=server.host_key,
            interactive=interactive,
        )

    shell = await asyncio.to_thread(sign_in, unix_user.name, [codes[0]], True)
    assert shell.authenticated, server.log()
    assert shell.prompts == [PROMPT]
    assert "Recovery code accepted; 9 recovery codes left.\n" in shell.output
    assert f"{unix_user.name}\n" in shell.output  # what `id -un`, typed in the shell, said
    command = await asyncio.to_thread(sign_in, unix_user.name, [codes[1]], False)
    assert command.authenticated
    assert command.output == f"{unix_user.name}\n"  # no room for messages there
    with throwaway_user() as newcomer:
        newcomer.authorize(public)
        await tfa.server.add_user(newcomer.name)
        await Admin(tfa.server.core).set_policy(ROOT, True, 5)
        grace = await asyncio.to_thread(sign_in, newcomer.name, [], True)
        assert grace.authenticated, server.log()
        assert grace.prompts == []
        assert (
            "Your administrator requires two-factor authentication in 5 days. Set it up now"
            " from any terminal: tfa\n"
        ) in grace.output
