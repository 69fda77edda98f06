"""Sizes for the hostile-input, race, brute-force, crash and load tests, and the figures they
record for docs/reliability.md.

`make test` runs the bounded sizes. `make stress` sets TFA_STRESS=1 for the large ones and
TFA_FIGURES to a file of JSON lines: each test that takes the `figures` fixture appends the
rows it measured (what it tried, how often, what happened), and tests/reliability/observed.py
appends which tests were collected and what pytest saw each of them do. Then
`python -m tests.reliability.report` checks the two against each other and writes
docs/reliability.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STRESS = os.environ.get("TFA_STRESS") == "1"


def scaled(bounded: int, stress: int) -> int:
    """How many: `bounded` within `make test`, `stress` within `make stress`."""
    return stress if STRESS else bounded


def on_backend(database_url: str | None) -> str:
    """Words for a row measured on PostgreSQL; a SQLite row (the default) says nothing."""
    return "" if database_url is None else ", on PostgreSQL"


def append(line: dict[str, Any]) -> None:
    """One JSON line to TFA_FIGURES; nothing when it is not set (`make test`)."""
    target = os.environ.get("TFA_FIGURES")
    if not target:
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line) + "\n")


@dataclass(frozen=True)
class Figures:
    """What one test measured, tied to its pytest node id so the report can put pytest's
    observed outcome beside it, and notice a test that never got as far as recording."""

    test: str

    def record(self, group: str, what: str, tried: int, outcome: str, *, fixed: str = "") -> None:
        """One row of the reliability table: what was tried, how often, what happened.

        `fixed` describes, in words, failures this test found and their fixes (it stays in the
        table after the fix); it is prose, not a measurement.
        """
        append(
            {
                "kind": "row",
                "test": self.test,
                "group": group,
                "what": what,
                "tried": tried,
                "outcome": outcome,
                "fixed": fixed,
            }
        )
