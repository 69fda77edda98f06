"""The 6-digit code field of sign-in and setup: digits only, a space allowed as in `123 456`."""

from __future__ import annotations

from textual.widgets import Input

DIGITS = 6


class CodeInput(Input):
    def __init__(self, *, id: str) -> None:
        super().__init__(
            placeholder=f"{DIGITS} digits",
            id=id,
            restrict=r"[0-9 ]*",
            max_length=DIGITS + 1,
            compact=True,
        )

    @property
    def digits(self) -> str:
        return self.value.replace(" ", "")

    @property
    def complete(self) -> bool:
        """All digits typed: the screens submit by themselves then."""
        return len(self.digits) == DIGITS
