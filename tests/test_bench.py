"""Every benchmark of bench/ runs at tiny sizes and writes its rows, so none rots between
`make bench` runs. These are not timed: a figure's size is never asserted here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import benchmarks
from tests.postgres import unavailable

ROOT = Path(__file__).resolve().parent.parent
MODULES = {module.ID: module for module in benchmarks()}


def table_rows(page: str) -> list[list[str]]:
    """The results table's rows (after its header), as cells."""
    lines = page.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("| id | what |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_every_benchmark_of_the_issue_is_there() -> None:
    assert sorted(MODULES) == [f"B{number}" for number in range(1, 9)]


@pytest.mark.parametrize("bench_id", sorted(MODULES))
def test_a_benchmark_runs_at_tiny_size_and_writes_its_rows(bench_id: str, tmp_path: Path) -> None:
    module = MODULES[bench_id]
    for tool in getattr(module, "TOOLS", ()):
        if shutil.which(tool) is None:
            unavailable(f"{bench_id} needs {tool} (Debian package {tool})")
    out = tmp_path / "results.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--only", bench_id, "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    page = out.read_text()
    assert "| CPU |" in page
    assert "| Load generator |" in page
    rows = [row for row in table_rows(page) if row[0] == bench_id]
    assert rows, page
    backends = {row[2] for row in rows}
    if getattr(module, "PER_BACKEND", True):
        assert backends == {"SQLite", "PostgreSQL"}, rows
    for row in rows:
        assert not row[3].startswith("failed"), row
        baseline, ratio, target = row[4:7]
        assert baseline, row
        assert ratio, row
        assert target, row
        assert row[7] in ("yes", "**no**"), row
