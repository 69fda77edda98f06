"""A pytest plugin: what the run collected and what pytest saw each test do, appended to
TFA_FIGURES beside the rows the tests record (figures.py), so the report states outcomes that
were observed rather than assumed.

`make stress` loads it with `-p tests.reliability.observed`; tests/reliability/conftest.py
registers it too, so `TFA_FIGURES=... pytest tests/reliability` records the same lines. It also
marks every test under tests/reliability `reliability`, so one run can select
`-m "reliability or finding"` across the whole suite.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .figures import append

HERE = Path(__file__).resolve().parent
# Worst first wins: one test's setup, call and teardown (and its subtests) make one outcome.
RANK = {"passed": 0, "skipped": 1, "xfailed": 1, "xpassed": 1, "failed": 2, "error": 3}


@dataclass
class Seen:
    outcome: str = "passed"
    findings: list[str] = field(default_factory=list)


class Observer:
    """Collects the phases of each test and writes one line per test when it finishes."""

    def __init__(self) -> None:
        self.pending: dict[str, Seen] = {}

    def note(self, item: pytest.Item, report: pytest.TestReport) -> None:
        # Schemathesis' lazy schemas report each API operation as a subtest of one item, under
        # the item's id plus "[METHOD /path]": each becomes its own line.
        seen = self.pending.setdefault(report.nodeid, Seen(findings=findings_of(item)))
        now = phase_outcome(report)
        if RANK[now] > RANK[seen.outcome]:
            seen.outcome = now

    def flush(self) -> None:
        for nodeid, seen in self.pending.items():
            append(
                {
                    "kind": "outcome",
                    "test": nodeid,
                    "outcome": seen.outcome,
                    "findings": seen.findings,
                }
            )
        self.pending.clear()


OBSERVER = Observer()


def findings_of(item: pytest.Item) -> list[str]:
    return [str(arg) for mark in item.iter_markers("finding") for arg in mark.args]


def phase_outcome(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.passed:
        return "passed"
    if report.skipped:
        return "skipped"
    return "failed" if report.when == "call" else "error"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "reliability: a test under tests/reliability (automatic)")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Before `-m` deselects anything."""
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker("reliability")


def pytest_collection_finish(session: pytest.Session) -> None:
    """The expected set: every test selected to run, whether it records figures (and for
    which group, its module's GROUP), and the findings it proves."""
    for item in session.items:
        append(
            {
                "kind": "collected",
                "test": item.nodeid,
                "figures": "figures" in getattr(item, "fixturenames", ()),
                "group": getattr(getattr(item, "module", None), "GROUP", None),
                "findings": findings_of(item),
            }
        )


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        append({"kind": "collect_error", "test": report.nodeid})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    OBSERVER.note(item, report)
    return report


def pytest_runtest_logfinish(nodeid: str) -> None:
    OBSERVER.flush()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """The run's exit status: a run that stopped early or failed anywhere is not a clean one."""
    OBSERVER.flush()
    append({"kind": "session", "exitstatus": int(session.exitstatus)})
