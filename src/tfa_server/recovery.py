"""Recovery code format: 12 characters without look-alikes, shown as XXXX-XXXX-XXXX."""

from __future__ import annotations

import secrets

from tfa_protocol.types import RECOVERY_ALPHABET as ALPHABET

# No 0/O, 1/I/L: a code copied from paper must not be ambiguous. 31 symbols, ~59 bits a code.
CODE_LENGTH = 12
GROUP = 4
_IGNORED = str.maketrans("", "", " -\t")


def generate(count: int) -> list[str]:
    codes: set[str] = set()
    while len(codes) < count:
        codes.add("".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH)))
    return [format_code(code) for code in sorted(codes)]


def format_code(code: str) -> str:
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))


def normalize(entered: str) -> str | None:
    """Case-insensitive, dashes and spaces ignored; None when it cannot be a recovery code."""
    # ASCII first: upper() maps some other letters into the alphabet ('ß' -> 'SS', long s -> 'S').
    if not entered.isascii():
        return None
    cleaned = entered.translate(_IGNORED).upper()
    if len(cleaned) != CODE_LENGTH or any(char not in ALPHABET for char in cleaned):
        return None
    return cleaned
