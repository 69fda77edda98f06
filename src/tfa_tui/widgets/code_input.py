"""Code fields: each keeps only the characters its code can have, so a password typed into one by
mistake is not shown in clear, and each keeps up with fast typing (a `Field`)."""

from __future__ import annotations

from typing import Any

from tfa_protocol.types import RECOVERY_ALPHABET
from tfa_tui.widgets.fields import Field

DIGITS = 6
SEPARATORS = " -"  # `123 456`, `XXXX-XXXX-XXXX`: the server ignores them


class CodeField(Field):
    """Drops (with the bell) every character `allowed` lacks, typed or pasted; letters are
    shown in capitals, as printed on the recovery codes (the server ignores case)."""

    def __init__(self, allowed: str, **kwargs: Any) -> None:
        super().__init__(compact=True, **kwargs)
        self._allowed = frozenset(allowed)

    def replace(self, text: str, start: int, end: int) -> None:
        kept = "".join(char for char in text.upper() if char in self._allowed)
        if text and not kept:
            self.restricted()
            return
        super().replace(kept, start, end)


class CodeInput(CodeField):
    """The 6-digit field of sign-in and setup: digits, and a space as in `123 456`."""

    def __init__(self, *, id: str) -> None:
        super().__init__(
            "0123456789 ", placeholder=f"{DIGITS} digits", id=id, max_length=DIGITS + 1
        )

    @property
    def digits(self) -> str:
        return self.value.replace(" ", "")

    @property
    def complete(self) -> bool:
        """All digits typed: the screens submit by themselves then."""
        return is_complete(self.value)


def is_complete(value: str) -> bool:
    """Whether a value of the 6-digit field holds the whole code."""
    return len(value.replace(" ", "")) == DIGITS


class RecoveryCodeInput(CodeField):
    """A recovery code, `XXXX-XXXX-XXXX`."""

    def __init__(self, *, id: str, classes: str | None = None) -> None:
        super().__init__(
            RECOVERY_ALPHABET + SEPARATORS,
            placeholder="XXXX-XXXX-XXXX",
            id=id,
            classes=classes,
            max_length=20,
        )


class AnyCodeInput(CodeField):
    """Either kind: the 6-digit code from the app or a recovery code."""

    def __init__(self, *, id: str) -> None:
        super().__init__(
            "0123456789" + RECOVERY_ALPHABET + SEPARATORS,
            placeholder="6 digits or XXXX-XXXX-XXXX",
            id=id,
            max_length=20,
        )
