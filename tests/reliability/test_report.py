"""docs/reliability.md is generated; its summary must add up what the rows below it say."""

from __future__ import annotations

from tests.reliability.report import render


def test_the_summary_totals_each_group_in_the_documented_order() -> None:
    rows: list[dict[str, object]] = [
        {"group": "Races", "what": "same code", "tried": 2000, "outcome": "1 won", "fixed": ""},
        {"group": "Outside tools", "what": "fuzz", "tried": 5, "outcome": "ok", "fixed": "a → b"},
        {"group": "Races", "what": "confirm", "tried": 20, "outcome": "1 won", "fixed": "c → d"},
        {"group": "Extra", "what": "more", "tried": 1, "outcome": "ok", "fixed": "e → f; g → h"},
    ]
    text = render(rows, "today", "here")
    assert "| Outside tools | 1 | 5 | 1 | passed |" in text
    assert "| Races | 2 | 2,020 | 1 | passed |" in text
    assert "| Extra | 1 | 1 | 2 | passed |" in text
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == ["## Summary", "## Outside tools", "## Races", "## Extra"]
    assert "| same code | 2,000 | 1 won | - |" in text
    assert "Brute force" not in text
