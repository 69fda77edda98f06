"""Sizes for the hostile-input, race, brute-force, crash and load tests, and the figures they
record for docs/reliability.md.

`make test` runs the bounded sizes. `make stress` sets TFA_STRESS=1 for the large ones and
TFA_FIGURES to a file where every test appends what it tried and what happened; then
`python -m tests.reliability.report` turns that file into docs/reliability.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

STRESS = os.environ.get("TFA_STRESS") == "1"


def scaled(bounded: int, stress: int) -> int:
    """How many: `bounded` within `make test`, `stress` within `make stress`."""
    return stress if STRESS else bounded


def record(group: str, what: str, tried: int, outcome: str, *, fixed: str = "") -> None:
    """One row of the reliability table: what was tried, how often, what happened.

    `fixed` names a failure this test found and the fix (it stays in the table after the fix).
    """
    target = os.environ.get("TFA_FIGURES")
    if not target:
        return
    row = {"group": group, "what": what, "tried": tried, "outcome": outcome, "fixed": fixed}
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
