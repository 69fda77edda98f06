"""The tfa process never outlives its terminal.

A hang-up (SIGHUP: a dropped SSH connection, a closed terminal window), SIGTERM or an interrupt
asks the app to exit normally, which restores a live terminal. That normal shutdown writes to
the terminal through Textual's output thread, and a terminal that is gone (writes fail with
EIO, which stops that thread) or has stopped reading (writes block) can leave the main thread
waiting for it forever. So the signal also starts a deadline: when it passes, a watchdog thread
runs the clean-up callbacks itself and ends the process with `os._exit(128 + signal)`.

Neither the watchdog nor the reception of the signal depends on the main thread or the event
loop. Python runs signal handlers on the main thread only, but its C-level handler writes the
signal's number to the "wakeup fd" from whichever thread the kernel interrupted; the guard
owns that fd and a thread of its own reads it. The Python handler writes there too, in case
something else has taken the wakeup fd since.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import termios
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

DEADLINE = 3.0  # seconds for the normal shutdown after a signal
CLEAN_UP_WITHIN = 2.0  # seconds for the clean-up callbacks before the hard exit
SIGNALS = frozenset({signal.SIGHUP, signal.SIGTERM, signal.SIGINT})

_installed: ExitGuard | None = None


def installed() -> ExitGuard | None:
    """The guard of the running tfa program; None where the app runs without one (tests)."""
    return _installed


class ExitGuard:
    """Ends the process within `deadline` seconds of SIGHUP, SIGTERM or SIGINT, cleaned up.

    Clean-up callbacks must be idempotent and safe from any thread: the program's own
    shutdown and the watchdog may both run them, even at once.
    """

    def __init__(self, deadline: float = DEADLINE) -> None:
        self.deadline = deadline
        self.ending = threading.Event()  # set once a signal has arrived
        self.signum: int | None = None
        self._lock = threading.RLock()  # RLock: the Python handler may interrupt its holder
        self._clean_ups: list[Callable[[], None]] = []
        self._exit_requests: list[Callable[[], None]] = []
        self._read_fd = self._write_fd = -1
        self._previous_wakeup_fd = -1
        self._previous_handlers: dict[int, Any] = {}
        self._terminals: list[int] = []

    def __enter__(self) -> ExitGuard:
        self.install()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.clean_up()
        finally:
            self.uninstall()

    def install(self) -> None:
        """Take over the signals; on the main thread, as Python requires."""
        global _installed
        self._terminals = [fd for fd in (1, 2) if os.isatty(fd)]
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)  # a signal handler must never block
        self._previous_wakeup_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)
        threading.Thread(target=self._watch, name="tfa-exit-guard", daemon=True).start()
        _installed = self

    def uninstall(self) -> None:
        """Give the signals back. A deadline already running still ends the process."""
        global _installed
        if _installed is self:
            _installed = None
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()
        if self._write_fd >= 0:
            signal.set_wakeup_fd(self._previous_wakeup_fd)
            fd, self._write_fd = self._write_fd, -1
            os.close(fd)  # the watcher reads the end of the pipe and stops

    def add_clean_up(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._clean_ups.append(callback)

    def on_exit_request(self, callback: Callable[[], None]) -> None:
        """`callback` (thread-safe, quick) asks for a normal exit; called at once if a signal
        has already arrived, so a program still starting up ends as soon as it can listen."""
        with self._lock:
            self._exit_requests.append(callback)
            already = self.signum is not None
        if already:
            callback()

    def clean_up(self) -> None:
        with self._lock:
            callbacks = list(self._clean_ups)
        for callback in callbacks:
            with contextlib.suppress(Exception):  # one failure must not spare the others
                callback()

    def finish(self) -> int:
        """0 after a normal end. After a signal the process ends here, with 128 + the signal:
        the interpreter's own shutdown would wait for Textual's threads, which a terminal that
        hung up can leave running (its SIGCONT restarts them), and flush output to a terminal
        that may have stopped reading, past the point where the watchdog can still act."""
        if self.signum is None:
            return 0
        for stream in (sys.stdout, sys.stderr):  # a live terminal still gets the last words
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(128 + self.signum)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(OSError):  # the pipe is full or closed: the watcher knows
            os.write(self._write_fd, bytes([signum]))

    def _watch(self) -> None:
        """Wait for a signal; then ask for the exit, and enforce the deadline."""
        signum = None
        with contextlib.suppress(OSError):
            while signum is None:
                received = os.read(self._read_fd, 64)  # Textual's own signals arrive here too
                if not received:
                    break  # uninstalled
                signum = next((number for number in received if number in SIGNALS), None)
        os.close(self._read_fd)
        if signum is None:
            return
        self._begin(signum)
        time.sleep(self.deadline)
        cleaner = threading.Thread(target=self.clean_up, name="tfa-clean-up", daemon=True)
        cleaner.start()
        cleaner.join(CLEAN_UP_WITHIN)  # the exit must not wait on a stuck file system either
        os._exit(128 + signum)

    def _begin(self, signum: int) -> None:
        with self._lock:
            self.signum = signum
            requests = list(self._exit_requests)
        self.ending.set()
        self._forget_dead_terminal()
        for request in requests:
            with contextlib.suppress(Exception):
                request()

    def _forget_dead_terminal(self) -> None:
        """Output to a terminal that has hung up goes to /dev/null from now on.

        Writes to it fail with EIO, which ends Textual's output thread and leaves later
        writes queued behind it until the queue is full and blocks the main thread.
        """
        for fd in self._terminals:
            try:
                termios.tcgetattr(fd)
            except termios.error:  # EIO: hung up
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, fd)
                os.close(null)
