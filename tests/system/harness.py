"""Real programs that no one here wrote, driven as a person or a client would: `pamtester` on a
pseudo-terminal, OpenSSH's `sshd` on a loopback port and paramiko as the SSH client, with a
throw-away Unix user and PAM service files of their own.

They need root and Debian packages. `requires` skips a test that lacks one, with a reason naming
the package, or fails it when TFA_REQUIRE_SYSTEM_TESTS=1 (CI sets it, so CI never skips them).
Every name is unique per test (parallel workers never meet) and every context manager here
removes what it made, whatever happens, and checks that it is gone.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import grp
import os
import pty
import pwd
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

REQUIRE_VARIABLE = "TFA_REQUIRE_SYSTEM_TESTS"

PAMTESTER = Path("/usr/bin/pamtester")
SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = Path("/usr/bin/ssh-keygen")
OATHTOOL = Path("/usr/bin/oathtool")
SYSTEMD_ANALYZE = Path("/usr/bin/systemd-analyze")
USERADD = Path("/usr/sbin/useradd")
USERDEL = Path("/usr/sbin/userdel")
GROUPADD = Path("/usr/sbin/groupadd")
GROUPDEL = Path("/usr/sbin/groupdel")
PAM_DIR = Path("/etc/pam.d")
# sshd re-executes itself by the path it was started with, which must be absolute.
LINK_DIR = Path("/usr/local/sbin")
PRIVSEP_DIR = Path("/run/sshd")

USER_PREFIX = "tfa-t-"
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


def unique_name(prefix: str = USER_PREFIX) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


# What each test may need.


def pam_python_module() -> Path | None:
    """Where libpam-python put pam_python.so: /lib/security on Debian 12, or a multiarch path."""
    candidates = [
        "/lib/security/pam_python.so",
        "/usr/lib/security/pam_python.so",
        *glob.glob("/lib/*-linux-*/security/pam_python.so"),
        *glob.glob("/usr/lib/*-linux-*/security/pam_python.so"),
    ]
    return next((Path(path) for path in candidates if os.path.isfile(path)), None)


def _executable(path: Path) -> bool:
    return os.access(path, os.X_OK)


@dataclass(frozen=True)
class Requirement:
    reason: str
    present: Callable[[], bool]


REQUIREMENTS: dict[str, Requirement] = {
    "root": Requirement(
        "needs root (it adds Unix users and files in /etc/pam.d)", lambda: os.geteuid() == 0
    ),
    "pamtester": Requirement(
        f"needs the Debian package pamtester ({PAMTESTER})", lambda: _executable(PAMTESTER)
    ),
    "openssh-server": Requirement(
        f"needs the Debian package openssh-server ({SSHD}, {SSH_KEYGEN})",
        lambda: _executable(SSHD) and _executable(SSH_KEYGEN),
    ),
    "libpam-python": Requirement(
        "needs the Debian package libpam-python (pam_python.so)",
        lambda: pam_python_module() is not None,
    ),
    "oathtool": Requirement(
        f"needs the Debian package oathtool ({OATHTOOL})", lambda: _executable(OATHTOOL)
    ),
    "systemd": Requirement(
        f"needs the Debian package systemd ({SYSTEMD_ANALYZE})",
        lambda: _executable(SYSTEMD_ANALYZE),
    ),
}


def requires(*packages: str) -> None:
    """Skip the calling test (or fixture) unless every named Debian package (or "root") is
    there; with TFA_REQUIRE_SYSTEM_TESTS=1 fail it instead, with the same reason."""
    missing = [REQUIREMENTS[name].reason for name in packages if not REQUIREMENTS[name].present()]
    if not missing:
        return
    reason = "; ".join(missing)
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{reason} ({REQUIRE_VARIABLE}=1: CI must run this test)", pytrace=False)
    pytest.skip(reason)


# A throw-away Unix user.


@dataclass(frozen=True)
class UnixUser:
    name: str
    uid: int
    gid: int
    home: Path

    def authorize(self, public_key: str) -> None:
        """Let `public_key` (one authorized_keys line) in, with the modes StrictModes wants."""
        ssh = self.home / ".ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)
        keys = ssh / "authorized_keys"
        keys.write_text(public_key.strip() + "\n")
        keys.chmod(0o600)
        for path in (ssh, keys):
            os.chown(path, self.uid, self.gid)


def _processes_of(uid: int) -> list[int]:
    """The live processes (not zombies) running as `uid`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid and _alive(int(entry.name)):
                    pids.append(int(entry.name))
    return pids


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _run_locked(command: list[str]) -> subprocess.CompletedProcess[str]:
    """useradd and userdel lock /etc/passwd: another worker holding it is worth a retry."""
    for _ in range(10):
        done = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=30)
        if done.returncode == 0 or "lock" not in done.stderr:
            return done
        time.sleep(0.2)
    return done


@contextlib.contextmanager
def throwaway_user() -> Iterator[UnixUser]:
    """A new user `tfa-t-<random>` with /bin/sh, its own group and a home in a new folder under
    /tmp. Its password stays useradd's locked `!`: no password signs in, and sshd with UsePAM
    lets it in by key all the same (sshd checks for a locked password only without PAM).
    Afterwards: userdel --remove (home, group) once its processes have ended; the folder goes."""
    requires("root")
    name = unique_name()
    # In /tmp itself, whatever TMPDIR says: the user must be able to walk down to its home.
    base = Path(tempfile.mkdtemp(prefix=f"{name}-", dir="/tmp"))
    base.chmod(0o755)
    home = base / "home"
    try:
        created = _run_locked(
            [
                *(str(USERADD), "--create-home", "--home-dir", str(home), "--shell", "/bin/sh"),
                *("--user-group", "--comment", "tfa system test", name),
            ]
        )
        assert created.returncode == 0, f"useradd failed: {created.stderr}"
        entry = pwd.getpwnam(name)
        yield UnixUser(name, entry.pw_uid, entry.pw_gid, home)
    finally:
        if _user_exists(name):
            uid = pwd.getpwnam(name).pw_uid
            deadline = time.monotonic() + 10
            while _processes_of(uid) and time.monotonic() < deadline:
                time.sleep(0.05)  # a session's processes ending after the client left
            removed = _run_locked([str(USERDEL), "--remove", name])
            if "currently used by process" in removed.stderr:
                # Only a zombie can be left (live processes were waited for): init reaps it.
                removed = _run_locked([str(USERDEL), "--remove", "--force", name])
            assert removed.returncode == 0, f"userdel failed: {removed.stderr}"
        shutil.rmtree(base, ignore_errors=True)
        assert not _user_exists(name), f"{name} is still in /etc/passwd"
        assert not base.exists(), f"{base} is still there"


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


@contextlib.contextmanager
def throwaway_group(members: Sequence[str]) -> Iterator[str]:
    """A new group `tfa-t-<random>` whose supplementary members are `members` (existing users);
    gives its name, and groupdel removes it afterwards."""
    requires("root")
    name = unique_name()
    try:
        created = _run_locked([str(GROUPADD), "--users", ",".join(members), name])
        assert created.returncode == 0, f"groupadd failed: {created.stderr}"
        yield name
    finally:
        if _group_exists(name):
            removed = _run_locked([str(GROUPDEL), name])
            assert removed.returncode == 0, f"groupdel failed: {removed.stderr}"
        assert not _group_exists(name), f"group {name} is still in /etc/group"


# PAM service files.


def pam_python_line(module: Path, *arguments: str, kind: str = "auth") -> str:
    """A PAM rule running a Python module through pam_python.so, by its absolute path."""
    found = pam_python_module()
    assert found is not None, REQUIREMENTS["libpam-python"].reason
    return " ".join([kind, "required", str(found), str(module), *arguments])


@contextlib.contextmanager
def pam_service_file(content: str, name: str | None = None) -> Iterator[str]:
    """/etc/pam.d/<name> holding `content` (never replacing an existing file) for the block's
    duration; gives the service name."""
    requires("root")
    name = name or unique_name()
    path = PAM_DIR / name
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(content if content.endswith("\n") else content + "\n")
        yield name
    finally:
        path.unlink(missing_ok=True)
        assert not path.exists(), f"{path} is still there"


# pamtester on a pseudo-terminal.


@dataclass(frozen=True)
class PamConversation:
    status: int  # pamtester's exit status: 0 when the operation succeeded
    shown: str  # everything it showed: messages, prompts and its verdict (answers typed with
    # echo off are not shown, as on a real terminal)
    prompts: list[str]  # each prompt answered, in order


# A prompt is the last line pamtester showed when it has no newline yet and nothing more comes:
# misc_conv writes the prompt, then reads. It switches echo off with TCSAFLUSH first, which
# would discard anything typed earlier, so the answer is typed only once the prompt is seen.
PROMPT_QUIET = 0.15
END_OF_FILE = b"\x04"


def run_pamtester(
    service: str,
    user: str,
    answers: Sequence[str],
    *,
    operation: str = "authenticate",
    items: Mapping[str, str] | None = None,
    timeout: float = 20.0,
) -> PamConversation:
    """Run `pamtester SERVICE USER authenticate` on a pseudo-terminal, typing the next of
    `answers` at each prompt (end of input once they run out). `items` sets PAM items as the
    calling program would (`-I rhost=...`, `-I ruser=...`: sshd sets rhost, sudo ruser and tty).
    A pamtester still running after `timeout` seconds is killed and fails the test."""
    requires("pamtester")
    settings = [part for item in (items or {}).items() for part in ("-I", "=".join(item))]
    master, child = pty.openpty()
    try:
        process = subprocess.Popen(
            [str(PAMTESTER), *settings, service, user, operation],
            stdin=child,
            stdout=child,
            stderr=child,
            env=ENV,
            start_new_session=True,
        )
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(child)
    pending = list(answers)
    shown = b""
    unanswered = b""  # shown since the last answer
    prompts: list[str] = []
    deadline = time.monotonic() + timeout
    last_output = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if now > deadline:
                raise AssertionError(
                    f"pamtester still runs after {timeout} s; it showed {_text(shown)!r}"
                )
            ended = process.poll() is not None  # before reading: its last words are then there
            ready, _, _ = select.select([master], [], [], 0 if ended else 0.02)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: pamtester has closed the terminal
                    chunk = b""
                if not chunk:
                    break
                shown += chunk
                unanswered += chunk
                last_output = now
            elif ended:
                break
            elif (
                unanswered and not unanswered.endswith(b"\n") and now - last_output >= PROMPT_QUIET
            ):
                prompts.append(_text(unanswered).rsplit("\n", 1)[-1])
                unanswered = b""
                os.write(master, pending.pop(0).encode() + b"\n" if pending else END_OF_FILE)
        status = process.wait(timeout=max(0.1, deadline - time.monotonic()))
        return PamConversation(status, _text(shown), prompts)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


def _text(raw: bytes) -> str:
    return raw.decode(errors="replace").replace("\r\n", "\n")


# A real sshd on a loopback port.


@dataclass
class Sshd:
    port: int
    service: str  # its program name, so its PAM service: /etc/pam.d/<service>
    host_key: paramiko.PKey
    process: subprocess.Popen[bytes]
    lines: list[str]  # what it logged (-e: to stderr), for failure messages

    def log(self) -> str:
        return "\n".join(self.lines)


@functools.cache
def openssh_version() -> tuple[int, int]:
    done = subprocess.run([str(SSHD), "-V"], capture_output=True, text=True, timeout=10, env=ENV)
    found = re.search(r"OpenSSH_(\d+)\.(\d+)", done.stdout + done.stderr)
    assert found, f"sshd -V said {done.stderr!r}"
    return int(found[1]), int(found[2])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def sshd_config(port: int, workdir: Path, allow_users: str) -> str:
    lines = [
        "# Written by tests/system/harness.py for one test: the host's sshd_config is not read.",
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {workdir / 'host_ed25519'}",
        f"PidFile {workdir / 'sshd.pid'}",
        "UsePAM yes",
        "PubkeyAuthentication yes",
        "KbdInteractiveAuthentication yes",
        "PasswordAuthentication no",
        "AuthenticationMethods publickey,keyboard-interactive",
        # In the user's home, where StrictModes checks ownership and modes up to the home
        # folder; a file under /tmp outside a home would fail it (/tmp is world-writable).
        "AuthorizedKeysFile .ssh/authorized_keys",
        "StrictModes yes",
        f"AllowUsers {allow_users}",
        "PermitRootLogin no",
        "LogLevel VERBOSE",
        "UseDNS no",
        "PrintMotd no",
        "PrintLastLog no",
        "X11Forwarding no",
        "AllowTcpForwarding no",
        "AllowAgentForwarding no",
        "PermitTunnel no",
        "LoginGraceTime 30",
    ]
    if openssh_version() >= (9, 8):
        # Later OpenSSH refuses an address for a while after failed logins: tests fail on
        # purpose, all from 127.0.0.1.
        lines.append("PerSourcePenalties no")
    return "\n".join(lines) + "\n"


def _children(pid: int) -> list[int]:
    """Every process below `pid` (sshd's per-connection processes), read from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = (entry / "stat").read_text()
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                parents.setdefault(parent, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        below = parents.get(queue.pop(), [])
        found += below
        queue += below
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _stop_sshd(process: subprocess.Popen[bytes], reader: threading.Thread) -> None:
    """Stop the listener we started and its connection processes, by their ids; then its log
    ends. Connections still closing are given a moment first, so that the listener and the
    connection's monitor reap their children: an orphan waits for init, which may be slow."""
    deadline = time.monotonic() + 3
    while _alive_children(process.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    below = _children(process.pid)
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in below) and time.monotonic() < deadline:
        time.sleep(0.02)
    for pid in below:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    reader.join(timeout=5)
    if process.stderr is not None:
        process.stderr.close()


def _running(program: str) -> list[int]:
    """Live processes whose name or title holds `program` (sshd titles its children with it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                title = (entry / "cmdline").read_bytes() + (entry / "comm").read_bytes()
                if program[:15].encode() in title and _alive(int(entry.name)):
                    found.append(int(entry.name))
    return found


def _alive_children(pid: int) -> list[int]:
    return [child for child in _children(pid) if _alive(child)]


def _collect(stream: Iterator[bytes], lines: list[str]) -> None:
    for line in stream:
        lines.append(line.decode(errors="replace").rstrip())


@contextlib.contextmanager
def running_sshd(pam_stack: str, *, allow_users: str = f"{USER_PREFIX}*") -> Iterator[Sshd]:
    """`sshd -D -e -f <own config>` on a free 127.0.0.1 port with its own host key, started
    through the link /usr/local/sbin/sshd-tfa-<random> so that OpenSSH, which names its PAM
    service after its program name, reads /etc/pam.d/sshd-tfa-<random>, written here from
    `pam_stack`. The host's sshd, its sshd_config and /etc/pam.d/sshd are never touched.
    Afterwards sshd and its connection processes are stopped; link, PAM file and folder go."""
    requires("root", "openssh-server")
    name = unique_name("sshd-tfa-")
    link = LINK_DIR / name
    with contextlib.ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        os.symlink(SSHD, link)
        cleanup.callback(link.unlink, missing_ok=True)
        cleanup.enter_context(pam_service_file(pam_stack, name))
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)  # sshd refuses to start without it
        host_key = workdir / "host_ed25519"
        subprocess.run(
            [str(SSH_KEYGEN), "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(host_key)],
            check=True,
            capture_output=True,
            timeout=30,
            env=ENV,
        )
        public_host_key = paramiko.Ed25519Key.from_private_key_file(str(host_key))
        config = workdir / "sshd_config"
        for _ in range(5):  # another process may take the free port before sshd binds it
            port = _free_port()
            config.write_text(sshd_config(port, workdir, allow_users))
            process = subprocess.Popen(
                [str(link), "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=ENV,
                start_new_session=True,
            )
            lines: list[str] = []
            assert process.stderr is not None
            reader = threading.Thread(target=_collect, args=(process.stderr, lines), daemon=True)
            reader.start()
            cleanup.callback(_stop_sshd, process, reader)
            listening = f"Server listening on 127.0.0.1 port {port}."
            deadline = time.monotonic() + 10
            while listening not in lines and process.poll() is None:
                assert time.monotonic() < deadline, f"sshd did not start: {lines}"
                time.sleep(0.02)
            if listening in lines:
                break
            assert any("Address already in use" in line for line in lines), f"sshd: {lines}"
        else:
            raise AssertionError("sshd found no free port in 5 tries")
        try:
            yield Sshd(port, name, public_host_key, process, lines)
        finally:
            cleanup.close()
            assert not link.exists(), f"{link} is still there"
            left = _running(name)
            assert not left, f"processes of {name} still run: {left}"


# An SSH client.


def client_key(folder: Path) -> tuple[paramiko.PKey, str]:
    """A new Ed25519 key (made by ssh-keygen, as paramiko cannot) and its authorized_keys line."""
    requires("openssh-server")
    path = folder / f"{unique_name('client-')}_ed25519"
    subprocess.run(
        [str(SSH_KEYGEN), "-q", "-t", "ed25519", "-N", "", "-C", "tfa-test", "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
        env=ENV,
    )
    key = paramiko.Ed25519Key.from_private_key_file(str(path))
    return key, Path(f"{path}.pub").read_text().strip()


@dataclass(frozen=True)
class SshOutcome:
    authenticated: bool
    output: str  # the command's stdout and stderr, once authenticated
    prompts: list[str]  # every keyboard-interactive prompt, as the server sent it
    instructions: list[str]  # the name and instruction of each keyboard-interactive request
    after_key: list[str]  # the methods the server asked for once the key was accepted
    exit_status: int | None


def ssh_run(
    port: int,
    user: str,
    key: paramiko.PKey,
    answers: Sequence[str],
    command: str,
    *,
    host_key: paramiko.PKey | None = None,
    interactive: bool = False,
    timeout: float = 15.0,
) -> SshOutcome:
    """Sign in to 127.0.0.1:`port` as an SSH client would: the key, then keyboard-interactive,
    typing the next of `answers` at each prompt (an empty answer once they run out); once in,
    run `command` and collect its output. Nothing here waits longer than `timeout` seconds.

    `interactive` is a person's plain `ssh host`: a terminal and a login shell, into which
    `command` and then `exit` are typed. Only such a session shows what PAM said after the
    last answer (sshd keeps it for the login messages, beside the last-login line); `ssh host
    command` never sees it."""
    pending = list(answers)
    prompts: list[str] = []
    instructions: list[str] = []

    def answer(title: str, instruction: str, asked: list[tuple[str, bool]]) -> list[str]:
        if title or instruction:
            instructions.append("\n".join(part for part in (title, instruction) if part))
        prompts.extend(text for text, _echo in asked)
        return [pending.pop(0) if pending else "" for _ in asked]

    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    transport = paramiko.Transport(sock)
    transport.banner_timeout = transport.handshake_timeout = transport.auth_timeout = timeout
    try:
        transport.start_client(timeout=timeout)
        if host_key is not None:
            offered = transport.get_remote_server_key()
            assert offered.asbytes() == host_key.asbytes(), "another host key"
        after_key: list[str] = []
        try:
            after_key = list(transport.auth_publickey(user, key))
            if "keyboard-interactive" in after_key:
                transport.auth_interactive(user, answer)
        except paramiko.AuthenticationException:
            pass
        if not transport.is_authenticated():
            return SshOutcome(False, "", prompts, instructions, after_key, None)
        channel = transport.open_session(timeout=timeout)
        channel.settimeout(timeout)
        channel.set_combine_stderr(True)
        if interactive:
            channel.get_pty()
            channel.invoke_shell()
            channel.sendall(f"{command}\nexit\n".encode())
        else:
            channel.exec_command(command)
        output = b""
        while chunk := channel.recv(65536):  # raises TimeoutError on a hang
            output += chunk
        assert channel.status_event.wait(timeout), f"{command!r} gave no exit status"
        return SshOutcome(
            True, _text(output), prompts, instructions, after_key, channel.exit_status
        )
    finally:
        transport.close()
        sock.close()
