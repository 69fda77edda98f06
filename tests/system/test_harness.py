"""The harness for issue 13's "proof with real programs", proven before pam_tfa exists: a
stand-in pam_python module that asks for a code and accepts one fixed answer, driven by the real
pamtester on a pseudo-terminal and by a real sshd with paramiko as the client. When pam_tfa
comes, the same helpers point at it instead."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import paramiko
import pytest

from .harness import (
    REQUIRE_VARIABLE,
    REQUIREMENTS,
    Requirement,
    Sshd,
    UnixUser,
    pam_python_line,
    requires,
    run_pamtester,
    ssh_run,
)

RIGHT = "246810"
WRONG = "135790"
GREETING = "Stand-in module: the code comes from the test."
ACCEPTED = "Code accepted."
REFUSED = "Wrong code."

# Runs inside the host's Python 3 (pam_python embeds it), not the project's virtualenv: the
# standard library only. pam_python passes argv with the module's own path first, and a
# conversation with one Message returns one Response whose .resp is a str.
STAND_IN = f"""\
import hmac


def _arguments(argv):
    return dict(argument.split("=", 1) for argument in argv[1:] if "=" in argument)


def _say(pamh, style, text):
    pamh.conversation(pamh.Message(style, text))


def pam_sm_authenticate(pamh, flags, argv):
    expected = _arguments(argv)["answer"]
    _say(pamh, pamh.PAM_TEXT_INFO, {GREETING!r})
    response = pamh.conversation(pamh.Message(pamh.PAM_PROMPT_ECHO_OFF, "Verification code: "))
    if hmac.compare_digest((response.resp or "").encode(), expected.encode()):
        _say(pamh, pamh.PAM_TEXT_INFO, {ACCEPTED!r})
        return pamh.PAM_SUCCESS
    _say(pamh, pamh.PAM_ERROR_MSG, {REFUSED!r})
    return pamh.PAM_AUTH_ERR


def pam_sm_setcred(pamh, flags, argv):
    return pamh.PAM_SUCCESS


def pam_sm_acct_mgmt(pamh, flags, argv):
    return pamh.PAM_SUCCESS


def pam_sm_open_session(pamh, flags, argv):
    return pamh.PAM_SUCCESS


def pam_sm_close_session(pamh, flags, argv):
    return pamh.PAM_SUCCESS


def pam_sm_chauthtok(pamh, flags, argv):
    return pamh.PAM_SUCCESS
"""


def stand_in(folder: Path, source: str = STAND_IN) -> Path:
    """The module file: root's, not writable by group or others, as PAM modules should be."""
    path = folder / "pam_stand_in.py"
    path.write_text(source)
    path.chmod(0o644)
    return path


def pam_stack(module: Path, *arguments: str) -> str:
    """The stand-in module for authentication. sshd also runs the account and session stacks:
    pam_permit there keeps the test to the module alone (OpenSSH 9.2 went ahead with the auth
    line alone too, but pamtester's acct_mgmt fails on an empty account stack)."""
    return "\n".join(
        [
            pam_python_line(module, *arguments),
            "account required pam_permit.so",
            "session required pam_permit.so",
        ]
    )


@pytest.fixture
def module(tmp_path: Path) -> Path:
    requires("root", "libpam-python")
    return stand_in(tmp_path)


def test_pamtester_accepts_the_right_answer_and_shows_the_module_messages(
    module: Path, unix_user: UnixUser, pam_service: Callable[[str], str]
) -> None:
    """pamtester, as a person at a terminal: the prompt, the module's information and success."""
    service = pam_service(pam_stack(module, f"answer={RIGHT}"))
    started = time.monotonic()
    result = run_pamtester(service, unix_user.name, [RIGHT])
    assert result.status == 0, result.shown
    assert result.prompts == ["Verification code: "]
    assert GREETING in result.shown
    assert ACCEPTED in result.shown
    assert "successfully authenticated" in result.shown
    assert RIGHT not in result.shown  # typed with echo off
    assert time.monotonic() - started < 5


def test_pamtester_refuses_a_wrong_answer(
    module: Path, unix_user: UnixUser, pam_service: Callable[[str], str]
) -> None:
    """A wrong answer: pamtester fails and shows the module's error message."""
    service = pam_service(pam_stack(module, f"answer={RIGHT}"))
    result = run_pamtester(service, unix_user.name, [WRONG])
    assert result.status != 0
    assert result.prompts == ["Verification code: "]
    assert REFUSED in result.shown
    assert "Authentication failure" in result.shown


def test_pamtester_without_an_answer_fails(
    module: Path, unix_user: UnixUser, pam_service: Callable[[str], str]
) -> None:
    """No answer left: the harness ends the input, and the conversation fails (no hang)."""
    service = pam_service(pam_stack(module, f"answer={RIGHT}"))
    result = run_pamtester(service, unix_user.name, [])
    assert result.status != 0
    assert result.prompts == ["Verification code: "]


def test_a_hanging_module_fails_the_test_instead_of_blocking(
    tmp_path: Path, unix_user: UnixUser, pam_service: Callable[[str], str]
) -> None:
    """A module that never answers: run_pamtester gives up at its timeout and says so."""
    requires("root", "libpam-python")
    sleeper = stand_in(
        tmp_path,
        "import time\n\ndef pam_sm_authenticate(pamh, flags, argv):\n    time.sleep(60)\n",
    )
    service = pam_service(pam_python_line(sleeper))
    started = time.monotonic()
    with pytest.raises(AssertionError, match="pamtester still runs after 1"):
        run_pamtester(service, unix_user.name, [RIGHT], timeout=1.0)
    assert time.monotonic() - started < 3


def test_sshd_opens_a_session_for_the_key_and_the_right_answer(
    module: Path,
    unix_user: UnixUser,
    sshd: Callable[[str], Sshd],
    ssh_key: tuple[paramiko.PKey, str],
) -> None:
    """A real sshd: the key alone is not enough, keyboard-interactive asks the module's prompt,
    and the right answer opens a session that runs a command as the user."""
    key, public = ssh_key
    unix_user.authorize(public)
    server = sshd(pam_stack(module, f"answer={RIGHT}"))
    started = time.monotonic()
    outcome = ssh_run(server.port, unix_user.name, key, [RIGHT], "id -un", host_key=server.host_key)
    assert outcome.authenticated, server.log()
    assert outcome.after_key == ["keyboard-interactive"]
    assert outcome.output == f"{unix_user.name}\n"
    assert outcome.exit_status == 0
    # sshd puts the messages shown before a prompt into the prompt's own text, and drops those
    # shown after the last answer on success (sent nowhere a session without a terminal sees).
    assert outcome.prompts == [f"{GREETING}\nVerification code: "]
    assert outcome.instructions == []
    assert time.monotonic() - started < 5


def test_sshd_gives_no_session_for_a_wrong_answer(
    module: Path,
    unix_user: UnixUser,
    sshd: Callable[[str], Sshd],
    ssh_key: tuple[paramiko.PKey, str],
) -> None:
    """The right key but a wrong answer: no session."""
    key, public = ssh_key
    unix_user.authorize(public)
    server = sshd(pam_stack(module, f"answer={RIGHT}"))
    outcome = ssh_run(server.port, unix_user.name, key, [WRONG], "id -un", host_key=server.host_key)
    assert not outcome.authenticated
    assert outcome.output == ""
    assert outcome.prompts == [f"{GREETING}\nVerification code: "]
    # On failure sshd sends the messages after the last answer in one last request with no
    # prompt, as its instruction.
    assert outcome.instructions == [f"{REFUSED}\n"]


def test_a_missing_package_skips_or_fails_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing package skips with its name, and TFA_REQUIRE_SYSTEM_TESTS=1 makes that a
    failure, as CI needs."""
    monkeypatch.setitem(
        REQUIREMENTS, "libpam-python", Requirement("needs the Debian package x", lambda: False)
    )
    monkeypatch.delenv(REQUIRE_VARIABLE, raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs the Debian package x"):
        requires("libpam-python")
    monkeypatch.setenv(REQUIRE_VARIABLE, "1")
    with pytest.raises(pytest.fail.Exception, match="needs the Debian package x"):
        requires("libpam-python")
