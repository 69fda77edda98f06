"""A screen's line for what just happened: one message at a time, or a lock-out counting down."""

from __future__ import annotations

from collections.abc import Callable

from textual.timer import Timer
from textual.widgets import Static

from tfa_tui.plain import plain

TRY_AGAIN_NOW = "You can try again now."


class MessageLine(Static):
    """Hidden while empty (the app's `hidden` class). A new message replaces the last one and
    stops a countdown, so what it shows always belongs to the latest moment."""

    def __init__(self, *, id: str) -> None:
        super().__init__("", id=id, classes="hidden")
        self._timer: Timer | None = None
        self._left = 0

    @property
    def counting(self) -> bool:
        """A lock-out is still counting down: another attempt now would only be refused."""
        return self._timer is not None

    def say(self, text: str) -> None:
        self._stop()
        self._show(text)

    def count_down(self, seconds: int, reason: str, then: Callable[[], None]) -> None:
        """`reason` and "Try again in N s.", N going down each second; at zero, "You can try
        again now." and `then()` (which gives the focus back to the field to retry in)."""
        self._stop()
        self._left = max(1, seconds)

        def tick() -> None:
            self._left -= 1
            if self._left > 0:
                self._show(f"{reason} Try again in {self._left} s.")
                return
            self._stop()
            self._show(TRY_AGAIN_NOW)
            then()

        self._show(f"{reason} Try again in {self._left} s.")
        self._timer = self.set_interval(1.0, tick)

    def _show(self, text: str) -> None:
        self.update(plain(text))
        self.set_class(not text, "hidden")

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
