"""`tfa --demo` as a real process on a pseudo-terminal that is its controlling terminal, as in
an SSH session: however it is left (a hang-up at any moment of start-up and use, the terminal
vanishing, a terminal that stopped reading, SIGTERM, an interrupt or Ctrl+Q), it removes its
throw-away database and ends within seconds."""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..reliability.figures import scaled

# After a hang-up the process has 3 s to shut down normally before it cleans up and exits hard;
# this bound leaves room for a loaded machine.
ENDS_WITHIN = 6.0
HANGUP_STATUS = 128 + signal.SIGHUP

# The child makes itself a session leader (start_new_session) and takes the pty as its
# controlling terminal before becoming tfa, as sshd does for a login: the kernel then sends it
# SIGHUP (and SIGCONT) when the terminal's master side closes.
LAUNCH = (
    "import fcntl, os, sys, termios;"
    "fcntl.ioctl(0, termios.TIOCSCTTY, 0);"
    "os.execv(sys.executable, [sys.executable, '-m', 'tfa_tui', '--demo'])"
)

ALTERNATE_SCREEN = b"\x1b[?1049h"  # the first thing Textual writes

# The number of write(2) in /proc/<pid>/task/<tid>/syscall.
WRITE_SYSCALL = {"x86_64": "1", "aarch64": "64"}.get(platform.machine())


class Terminal:
    """The master side of the pseudo-terminal, and tfa on its other side."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.master, child = pty.openpty()
        self.resize(80, 24)
        env = {**os.environ, "TMPDIR": str(tmp)}
        env.pop("NO_COLOR", None)
        self.process = subprocess.Popen(
            [sys.executable, "-c", LAUNCH],
            stdin=child,
            stdout=child,
            stderr=child,
            env=env,
            start_new_session=True,
        )
        os.close(child)
        self.seen = b""
        self.reading = True

    def drain(self, seconds: float) -> None:
        """Read what tfa draws for up to `seconds`, as a terminal does."""
        deadline = time.monotonic() + seconds
        while self.master >= 0 and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], min(0.05, seconds))
            if ready:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:  # EIO: the process closed its side
                    return
            elif seconds <= 0:
                return

    def wait_for(self, text: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while text.encode() not in self.seen and time.monotonic() < deadline:
            assert self.process.poll() is None, f"tfa ended before showing {text!r}"
            self.drain(0.1)
        assert text.encode() in self.seen, f"tfa never showed {text!r}"

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def resize(self, columns: int, rows: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    def vanish(self) -> None:
        """The terminal goes away (tmux kill-session, a dropped SSH connection)."""
        os.close(self.master)
        self.master = -1

    def blocked_writing(self) -> bool:
        """Whether one of tfa's threads sleeps in write(2): the terminal has stopped reading."""
        calls = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            with contextlib.suppress(OSError):  # the thread has ended, or /proc is guarded
                calls.append((task / "syscall").read_text().split()[0])
        if WRITE_SYSCALL is not None and calls:
            return WRITE_SYSCALL in calls
        # Otherwise the master's side of the buffer being full tells nearly as much.
        waiting = fcntl.ioctl(self.master, termios.FIONREAD, b"\0" * 4)
        return int.from_bytes(waiting, sys.byteorder) >= 4000

    def ended_within(self, seconds: float) -> float:
        """How long the process took to end, draining its output meanwhile if still reading."""
        start = time.monotonic()
        while self.process.poll() is None and time.monotonic() - start < seconds:
            if self.reading and self.master >= 0:
                self.drain(0.05)
            else:
                time.sleep(0.05)
        took = time.monotonic() - start
        assert self.process.poll() is not None, f"tfa still runs {seconds} s after it should end"
        return took

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.master >= 0:
            os.close(self.master)


# Moments: what happens on the terminal before it ends.


def at_once(term: Terminal) -> None:
    """Right after spawn, perhaps before Python has even started."""


def while_the_server_starts(term: Terminal) -> None:
    """The throw-away database exists, the UI has not drawn yet."""
    deadline = time.monotonic() + 30
    while not list(term.tmp.glob("tfa-demo-*")) and time.monotonic() < deadline:
        term.drain(0.01)
    assert list(term.tmp.glob("tfa-demo-*")), "the demo never made its database folder"
    assert ALTERNATE_SCREEN not in term.seen  # Textual has not started


def as_the_ui_starts(term: Terminal) -> None:
    """Textual has just taken the terminal; the app is mounting or drawing its first screen."""
    term.wait_for(ALTERNATE_SCREEN.decode())


def on_sign_in(term: Terminal) -> None:
    term.wait_for("Sign in to tfa")
    assert len(list(term.tmp.glob("tfa-demo-*"))) == 1


def mid_typing(term: Terminal) -> None:
    on_sign_in(term)
    term.type("bo")
    term.drain(0.3)  # the keys reach the field


def while_signing_in(term: Terminal) -> None:
    """A worker waits for the server's answer."""
    on_sign_in(term)
    term.type("bob\tbob-demo1\r")


def on_home(term: Terminal) -> None:
    while_signing_in(term)
    term.wait_for("Connect authenticator app")


def with_a_dialog_open(term: Terminal) -> None:
    """A worker waits for the answer of a modal."""
    on_home(term)
    term.type("n")  # the Sessions tab, its table focused
    term.wait_for("this session")
    term.type("x")  # revoke the selected session: a question first
    term.wait_for("Revoke this session?")


def terminal_stopped_reading(term: Terminal) -> None:
    """The terminal stops reading (a stalled connection): tfa's output writer blocks."""
    on_sign_in(term)
    term.reading = False
    deadline = time.monotonic() + 20
    size = 0
    while not term.blocked_writing() and time.monotonic() < deadline:
        size += 1  # each new size redraws the whole screen
        term.resize(80 + size % 2 * 40, 24 + size % 2 * 16)
        term.type("x")
        time.sleep(0.05)
    assert term.blocked_writing(), "tfa's output never backed up"
    for step in range(20):  # and its queue of pending writes fills behind the writer
        term.resize(81 + step % 2 * 40, 25 + step % 2 * 16)
        time.sleep(0.02)


# Endings.


def hang_up(term: Terminal) -> None:
    term.process.send_signal(signal.SIGHUP)


def vanish(term: Terminal) -> None:
    term.vanish()


def ctrl_q(term: Terminal) -> None:
    term.type("\x11")


def terminate(term: Terminal) -> None:
    term.process.send_signal(signal.SIGTERM)


def interrupt(term: Terminal) -> None:
    term.process.send_signal(signal.SIGINT)


@dataclass(frozen=True)
class Case:
    moment: Callable[[Terminal], None]
    ending: Callable[[Terminal], None]
    statuses: tuple[int, ...] = (HANGUP_STATUS,)


CASES = {
    # Before Python runs, the kernel's default action ends it: there is no database yet.
    "hang-up at once": Case(at_once, hang_up, (HANGUP_STATUS, -signal.SIGHUP)),
    "hang-up while the server starts": Case(while_the_server_starts, hang_up),
    "hang-up as the UI starts": Case(as_the_ui_starts, hang_up),
    "hang-up on sign-in": Case(on_sign_in, hang_up),
    "hang-up mid-typing": Case(mid_typing, hang_up),
    "hang-up while signing in": Case(while_signing_in, hang_up),
    "hang-up on home": Case(on_home, hang_up),
    "hang-up with a dialog open": Case(with_a_dialog_open, hang_up),
    "hang-up with the output blocked": Case(terminal_stopped_reading, hang_up),
    "terminal vanishes on sign-in": Case(on_sign_in, vanish),
    "terminal vanishes with a dialog open": Case(with_a_dialog_open, vanish),
    "terminal vanishes with the output blocked": Case(terminal_stopped_reading, vanish),
    "ctrl+q on home": Case(on_home, ctrl_q, (0,)),
    "sigterm on home": Case(on_home, terminate, (128 + signal.SIGTERM,)),
    "interrupt on home": Case(on_home, interrupt, (128 + signal.SIGINT,)),
}
REPEATS = scaled(1, 8)  # make stress: each case 8 times, so 24 terminals vanish
AT_ONCE = 4  # processes: each spends seconds starting up and waiting on its terminal


@dataclass(frozen=True)
class Ended:
    status: int
    took: float  # seconds from the ending to the end of the process
    left: list[str]  # what remains in its temporary directory


def run(case: Case, tmp: Path) -> Ended:
    term = Terminal(tmp)
    try:
        case.moment(term)
        case.ending(term)
        took = term.ended_within(ENDS_WITHIN)
        return Ended(term.process.returncode, took, sorted(path.name for path in tmp.iterdir()))
    finally:
        term.close()


@pytest.fixture(scope="module")
def endings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, list[Future[Ended]]]]:
    """Every selected case runs in parallel with the others, so the file takes seconds."""
    selected = [
        item.callspec.params["name"]
        for item in request.session.items
        if getattr(item, "module", None) is request.module and hasattr(item, "callspec")
    ]
    with ThreadPoolExecutor(AT_ONCE) as pool:
        yield {
            name: [
                pool.submit(run, CASES[name], tmp_path_factory.mktemp(name.replace(" ", "-")))
                for _ in range(REPEATS)
            ]
            for name in selected
        }


@pytest.mark.finding("F20")
@pytest.mark.parametrize("name", CASES)
def test_the_demo_ends_soon_and_removes_its_database(
    name: str, endings: dict[str, list[Future[Ended]]]
) -> None:
    for attempt in endings[name]:
        ended = attempt.result()  # raises what went wrong, "still runs" included
        assert ended.status in CASES[name].statuses, f"status {ended.status}"
        assert ended.left == [], f"left behind after {ended.took:.1f} s"
