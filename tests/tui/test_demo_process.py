"""`tfa --demo` as a real process on a pseudo-terminal: it starts, and it cleans up after a
hang-up (a dropped SSH connection) as well as after Ctrl+Q."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def read_until(fd: int, text: bytes, seconds: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + seconds
    while text not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return seen


@pytest.mark.parametrize("ending", ["hang-up", "ctrl+q"])
def test_the_demo_removes_its_database_when_it_ends(tmp_path: Path, ending: str) -> None:
    main, child = pty.openpty()
    env = {**os.environ, "TMPDIR": str(tmp_path), "COLUMNS": "80", "LINES": "24"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "tfa_tui", "--demo"],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
        start_new_session=True,
    )
    os.close(child)
    try:
        screen = read_until(main, b"Sign in to tfa", 30)
        assert b"Sign in to tfa" in screen
        assert len(list(tmp_path.glob("tfa-demo-*"))) == 1
        if ending == "hang-up":
            process.send_signal(signal.SIGHUP)
        else:
            os.write(main, b"\x11")  # Ctrl+Q
        read_until(main, b"\x00never", 2)  # keep draining output while it exits
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(main)
    assert list(tmp_path.glob("tfa-demo-*")) == []
