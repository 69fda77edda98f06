"""docs/reliability.md states only what the run observed, and the report fails when the run is
incomplete: a failed test, a test that recorded nothing, a finding without a passing test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.report import Run, main, problems, render

ROOT = Path(__file__).resolve().parents[2]
FINDINGS = {
    "F01": ("First fix", "First before."),
    "F02": ("Second fix", "Second before."),
    "F03": ("Third fix", "Third before."),
}


def collected(
    test: str, group: str | None = None, *, figures: bool = True, findings: list[str] | None = None
) -> str:
    line = {"kind": "collected", "test": test, "figures": figures, "group": group}
    return json.dumps(line | {"findings": findings or []})


def outcome(test: str, result: str = "passed", findings: list[str] | None = None) -> str:
    line = {"kind": "outcome", "test": test, "outcome": result, "findings": findings or []}
    return json.dumps(line)


def row(test: str, group: str, what: str, tried: int, fixed: str = "") -> str:
    line: dict[str, Any] = {"kind": "row", "test": test, "group": group, "what": what}
    line |= {"tried": tried, "outcome": f"{what} went well", "fixed": fixed}
    return json.dumps(line)


def session(status: int = 0) -> str:
    return json.dumps({"kind": "session", "exitstatus": status})


def complete_run() -> list[str]:
    """Two groups, two findings each proven by a passing test: nothing to complain about."""
    return [
        collected("t.py::test_race", "Races"),
        collected("t.py::test_race_again", "Races"),
        collected("u.py::test_fuzz", "Outside tools"),
        collected("v.py::test_fix_one", figures=False, findings=["F01"]),
        collected("v.py::test_fix_two", figures=False, findings=["F02"]),
        collected("v.py::test_fix_two_more", figures=False, findings=["F02"]),
        row("t.py::test_race", "Races", "same code", 2000),
        outcome("t.py::test_race"),
        row("t.py::test_race_again", "Races", "confirm", 20, fixed="it raced → a lock"),
        outcome("t.py::test_race_again"),
        row("u.py::test_fuzz", "Outside tools", "fuzz", 5),
        row("u.py::test_fuzz", "Outside tools", "fuzz more", 7),
        outcome("u.py::test_fuzz"),
        outcome("v.py::test_fix_one", findings=["F01"]),
        outcome("v.py::test_fix_two", findings=["F02"]),
        outcome("v.py::test_fix_two_more", findings=["F02"]),
        session(),
    ]


def two_findings() -> dict[str, tuple[str, str]]:
    return {key: FINDINGS[key] for key in ("F01", "F02")}


@pytest.mark.finding("F18")
def test_a_complete_run_has_no_problems_and_totals_each_group() -> None:
    run = Run.parse(complete_run())
    assert problems(run, two_findings()) == []
    text = render(run, "today", "here", two_findings())
    assert "## Problems" not in text
    assert "| group | tests | tried | result |" in text
    assert "| Outside tools | 1 | 12 | 1 passed |" in text
    assert "| Races | 2 | 2,020 | 2 passed |" in text
    assert "| Review findings | 3 | - | 3 passed |" in text
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == ["## Summary", "## Outside tools", "## Races", "## Review findings"]
    assert "| same code | 2,000 | same code went well | passed | - |" in text
    assert "| confirm | 20 | confirm went well | passed | it raced → a lock |" in text
    assert "| F01 | First fix | First before. | `v.py::test_fix_one` | 1 test passed |" in text
    assert (
        "| F02 | Second fix | Second before. | `v.py::test_fix_two`<br>`v.py::test_fix_two_more`"
        " | 2 tests passed |"
    ) in text


@pytest.mark.finding("F18")
def test_the_result_column_is_what_pytest_saw() -> None:
    """A test that recorded its row and then failed (or broke in teardown) shows as failed,
    in its row and its group, and the run fails naming it."""
    lines = complete_run()
    lines[lines.index(outcome("t.py::test_race"))] = outcome("t.py::test_race", "failed")
    lines[lines.index(outcome("u.py::test_fuzz"))] = outcome("u.py::test_fuzz", "error")
    lines[-1] = session(1)
    run = Run.parse(lines)
    assert problems(run, two_findings()) == [
        "pytest exited with status 1",
        "t.py::test_race: failed",
        "u.py::test_fuzz: error",
    ]
    text = render(run, "today", "here", two_findings())
    assert "| same code | 2,000 | same code went well | failed | - |" in text
    assert "| Races | 2 | 2,020 | 1 passed, 1 failed |" in text
    assert "| Outside tools | 1 | 12 | 1 error |" in text
    assert "## Problems" in text
    assert "- t.py::test_race: failed" in text


@pytest.mark.finding("F18")
def test_a_missing_row_or_a_test_that_never_ran_fails_the_run() -> None:
    lines = complete_run()
    lines.remove(row("t.py::test_race_again", "Races", "confirm", 20, fixed="it raced → a lock"))
    lines.remove(outcome("u.py::test_fuzz"))
    run = Run.parse(lines)
    assert problems(run, two_findings()) == [
        "t.py::test_race_again: takes the figures fixture but recorded no row",
        "u.py::test_fuzz: not run",
        "u.py::test_fuzz: recorded rows but pytest never reported it",
    ]
    text = render(run, "a", "b", two_findings())
    assert "| fuzz | 5 | fuzz went well | not run | - |" in text
    # The silent test still counts in its module's group, with a row that says so.
    assert "| Races | 2 | 2,000 | 2 passed |" in text
    assert "| `t.py::test_race_again` | - | **recorded nothing** | passed | - |" in text


@pytest.mark.finding("F18")
def test_an_unfinished_run_or_two_runs_in_one_file_fail() -> None:
    lines = complete_run()
    assert problems(Run.parse(lines[:-1]), two_findings()) == [
        "pytest did not finish: the figures file has no session line"
    ]
    assert problems(Run.parse([*lines, session()]), two_findings()) == [
        "the figures file holds 2 runs: remove it before a run"
    ]
    errors = [*lines, json.dumps({"kind": "collect_error", "test": "w.py"})]
    assert problems(Run.parse(errors), two_findings()) == ["w.py: could not be collected"]


@pytest.mark.finding("F18")
def test_every_finding_needs_tests_and_all_of_them_passing() -> None:
    lines = complete_run()
    lines[lines.index(outcome("v.py::test_fix_two", findings=["F02"]))] = outcome(
        "v.py::test_fix_two", "failed", ["F02"]
    )
    lines.insert(0, collected("v.py::test_stray", figures=False, findings=["F99"]))
    lines.insert(-1, outcome("v.py::test_stray", findings=["F99"]))
    run = Run.parse(lines)
    assert problems(run, FINDINGS) == [
        "v.py::test_fix_two: failed (proves F02)",
        "F03: no test marked @pytest.mark.finding('F03') ran",
        "F99: marked on a test but not listed in tests/findings.py",
    ]
    text = render(run, "today", "here", FINDINGS)
    assert "| F01 | First fix | First before. | `v.py::test_fix_one` | 1 test passed |" in text
    assert "| **v.py::test_fix_two failed** |" in text
    assert "| F03 | Third fix | Third before. | - | **no test** |" in text
    summary = "| Review findings | 3 | - | 2 passed, 1 failed; 1 of 3 findings without a test |"
    assert summary in text


@pytest.mark.finding("F18")
def test_the_plugin_records_what_pytest_saw_and_the_report_fails_on_it(tmp_path: Path) -> None:
    """A real pytest run of a small suite, with observed.py loaded as `make stress` loads it:
    each test's outcome is pytest's own, whatever the test recorded before it ended."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "pytest.ini").write_text(
        "[pytest]\nmarkers =\n    finding(key): a review finding\n"
        "asyncio_default_fixture_loop_scope = function\n"
    )
    (suite / "conftest.py").write_text(
        "import pytest\n"
        "from tests.reliability.figures import Figures\n\n"
        "@pytest.fixture\n"
        "def figures(request):\n"
        "    return Figures(request.node.nodeid)\n\n"
        "@pytest.fixture\n"
        "def broken_teardown():\n"
        "    yield\n"
        "    raise RuntimeError('teardown broke')\n"
    )
    (suite / "test_sample.py").write_text(
        "import pytest\n\n"
        "GROUP = 'Races'\n\n"
        "def test_measures(figures):\n"
        "    figures.record('Races', 'one thing', 3, 'all fine')\n\n"
        "def test_fails_after_recording(figures):\n"
        "    figures.record('Races', 'another thing', 2, 'looked fine')\n"
        "    assert 1 + 1 == 3\n\n"
        "def test_breaks_in_teardown(figures, broken_teardown):\n"
        "    figures.record('Races', 'a third thing', 1, 'fine')\n\n"
        "def test_records_nothing(figures):\n"
        "    pass\n\n"
        "@pytest.mark.finding('F01')\n"
        "def test_proves_one():\n"
        "    pass\n\n"
        "@pytest.mark.finding('F02')\n"
        "def test_proves_two_but_fails():\n"
        "    raise AssertionError\n\n"
        "@pytest.mark.skip(reason='for this test')\n"
        "def test_skipped():\n"
        "    pass\n"
    )
    figures = tmp_path / "figures.jsonl"
    env = {**os.environ, "TFA_FIGURES": str(figures)}
    env.pop("TFA_STRESS", None)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.reliability.observed", "-q", str(suite)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    run = Run.parse(figures.read_text().splitlines())
    seen = {test.split("::")[1]: line["outcome"] for test, line in run.outcomes.items()}
    assert seen == {
        "test_measures": "passed",
        "test_fails_after_recording": "failed",
        "test_breaks_in_teardown": "error",
        "test_records_nothing": "passed",
        "test_proves_one": "passed",
        "test_proves_two_but_fails": "failed",
        "test_skipped": "skipped",
    }
    assert problems(run, FINDINGS) == [
        "pytest exited with status 1",
        "test_sample.py::test_breaks_in_teardown: error",
        "test_sample.py::test_fails_after_recording: failed",
        "test_sample.py::test_proves_two_but_fails: failed (proves F02)",
        "test_sample.py::test_records_nothing: takes the figures fixture but recorded no row",
        "test_sample.py::test_skipped: skipped",
        "F03: no test marked @pytest.mark.finding('F03') ran",
    ]
    text = render(run, "today", "here", FINDINGS)
    assert "| another thing | 2 | looked fine | failed | - |" in text
    assert "| Races | 4 | 6 | 2 passed, 1 error, 1 failed |" in text
    assert "| `test_sample.py::test_records_nothing` | - | **recorded nothing** | passed |" in text

    target = tmp_path / "reliability.md"
    assert main(figures, target) == 1  # the real findings list: most have no test here
    assert target.read_text().startswith("# Reliability")
