"""B5: `tfa --server URL` from launch to the sign-in screen drawn, beside a one-Label Textual app
measured the same way.

Each launch is a new process on a pseudo-terminal (80x24, TERM=xterm-256color), started as a
person starts it: the `tfa` console script for ours, `python app.py` for the baseline. "Ready" is
observed, not assumed: the clock stops when the screen's own words have been written to the
terminal (the sign-in form's title, fields and tick box; the baseline's one Label). Then Ctrl+Q
quits it. Launches alternate between the two apps, so load from elsewhere hits both alike.

The person's own keyring and configuration stay out, as in the test suite: HOME and the XDG
folders point into scratch space and no D-Bus session bus is passed on, so the keyring's backend
discovery runs as on a machine without a keyring (over SSH) and finds nothing remembered. The
server address is a loopback port that listens but never accepts: nothing needs a server before
the sign-in screen, and a connection made there would show in its queue (the note says if one
was).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .harness import Context, Row, median, ratio_row

ID = "B5"
WHAT = "`tfa` launch to the sign-in screen drawn (pty)"
PER_BACKEND = False  # no server behind the screen it times
COLUMNS, LINES = 80, 24
GIVE_UP = 30.0  # seconds for one launch to draw its screen
QUIT_WITHIN = 5.0  # seconds for Ctrl+Q to end it before SIGTERM, then SIGKILL
CTRL_Q = b"\x11"

SIGN_IN_WORDS = ("Sign in to tfa", "Username", "Password", "Remember me on this computer")
BASELINE_TEXT = "B5 baseline: one Label"
BASELINE_APP = f'''"""The baseline of B5: the least a Textual app draws."""

from textual.app import App, ComposeResult
from textual.widgets import Label


class OneLabel(App[None]):
    def compose(self) -> ComposeResult:
        yield Label({BASELINE_TEXT!r})


if __name__ == "__main__":
    OneLabel().run()
'''

# Control sequences (CSI, OSC, and two-byte escapes): removed before looking for the words, so
# words split by a change of style or colour are found whole.
CONTROL = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[ -/]*[0-~]")


@dataclass
class Launch:
    seconds: float  # from just before the process is started to the words on the terminal


def _environment(home: Path) -> dict[str, str]:
    """The caller's environment less what would reach the person's keyring, configuration or
    a server of theirs, with a terminal's variables."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TFA_", "TEXTUAL", "XDG_", "DBUS_", "PYTHON_KEYRING"))
        and name not in ("COLUMNS", "LINES", "NO_COLOR")
    }
    for name, sub in (
        ("HOME", ""),
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_STATE_HOME", ".local/state"),
    ):
        (home / sub).mkdir(parents=True, exist_ok=True)
        env[name] = str(home / sub)
    env.update(TERM="xterm-256color", COLORTERM="truecolor", LANG="C.UTF-8")
    return env


def launch(command: list[str], words: tuple[str, ...], env: dict[str, str], cwd: Path) -> Launch:
    """Start `command` on a new pseudo-terminal; time until every one of `words` has been
    written to it; quit it with Ctrl+Q (harder if it does not go)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
    wanted = [word.encode() for word in words]
    seen = b""
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 the two apps under measurement
        command,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=cwd,
        start_new_session=True,  # its own session: the pty becomes its controlling terminal
        close_fds=True,
    )
    os.close(slave)
    try:
        deadline = started + GIVE_UP
        ready = None
        while ready is None:
            left = deadline - time.perf_counter()
            if left <= 0 or process.poll() is not None:
                text = CONTROL.sub(b"", seen).decode(errors="replace")
                raise RuntimeError(f"{command[0]} drew no {words!r} in time:\n{text[-1500:]}")
            readable, _, _ = select.select([master], [], [], min(left, 0.5))
            if not readable:
                continue
            try:
                seen += os.read(master, 65536)
            except OSError:  # EIO: the process closed the terminal
                continue
            text = CONTROL.sub(b"", seen)
            if all(word in text for word in wanted):
                ready = time.perf_counter() - started
        os.write(master, CTRL_Q)
        _drain_until_exit(process, master)
        return Launch(ready)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


def _drain_until_exit(process: subprocess.Popen[bytes], master: int) -> None:
    """Read what it writes on its way out (a full pty would block it) until it has ended."""
    for stop in (None, signal.SIGTERM, signal.SIGKILL):
        if stop is not None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(stop)
        deadline = time.monotonic() + QUIT_WITHIN
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return
            readable, _, _ = select.select([master], [], [], 0.05)
            if readable:
                with contextlib.suppress(OSError):
                    os.read(master, 65536)


@contextmanager
def silent_server() -> Iterator[tuple[str, socket.socket]]:
    """A loopback port that listens and never accepts: the address tfa is given."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", listener


def _contacted(listener: socket.socket) -> bool:
    """Whether a connection is waiting in the listener's queue."""
    readable, _, _ = select.select([listener], [], [], 0)
    return bool(readable)


def tfa_command(url: str) -> list[str]:
    script = Path(sys.executable).parent / "tfa"
    if not script.exists():
        raise RuntimeError(f"no `tfa` console script beside {sys.executable}: install the project")
    return [str(script), "--server", url]


def run(ctx: Context) -> list[Row]:
    launches = ctx.size(5, 1)  # per run, of each app
    warm_ups = 0 if ctx.tiny else 1  # each, not counted: the first start reads from disk
    with ctx.scratch("b5") as folder, silent_server() as (url, listener):
        app = folder / "one_label.py"
        app.write_text(BASELINE_APP)
        env = _environment(folder / "home")
        ours_command = tfa_command(url)
        baseline_command = [sys.executable, str(app)]
        contacted = False

        def both() -> tuple[float, float]:
            nonlocal contacted
            base = launch(baseline_command, (BASELINE_TEXT,), env, folder).seconds
            ours = launch(ours_command, SIGN_IN_WORDS, env, folder).seconds
            contacted = contacted or _contacted(listener)
            return ours, base

        for _ in range(warm_ups):
            both()
        ours_runs: list[float] = []
        base_runs: list[float] = []
        for number in range(ctx.runs):
            pairs = [both() for _ in range(launches)]
            ours_runs.append(median([ours for ours, _ in pairs]))
            base_runs.append(median([base for _, base in pairs]))
            ctx.log(
                f"  run {number + 1}: tfa {ours_runs[-1] * 1000:.0f} ms,"
                f" one Label {base_runs[-1] * 1000:.0f} ms"
            )
    ours_ms, base_ms = median(ours_runs) * 1000, median(base_runs) * 1000
    note = (
        f"median of {ctx.runs} runs x {launches} launches each, alternating"
        f"{', after a warm-up launch each' if warm_ups else ''}; `tfa --server {url}`,"
        " a loopback port that listens and never accepts; the server was"
        f" {'contacted' if contacted else 'not contacted'} before the screen was drawn."
        " HOME and XDG folders in scratch space, no D-Bus session (no keyring found)."
    )
    return [
        ratio_row(
            ID,
            WHAT,
            "-",
            (ours_ms, f"{ours_ms:.0f} ms"),
            (base_ms, f"one-Label Textual app: {base_ms:.0f} ms"),
            ("<=", 1.5),
            note,
        )
    ]
