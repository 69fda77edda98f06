"""`make bench`: every benchmark in one go, then bench/results.md rewritten from what they saw.

    python -m bench                      # full sizes, medians of 3 runs
    python -m bench --tiny --out X.md    # seconds: what `make test` runs so no script rots
    python -m bench --only B3,B7         # some of them

The page ends with bench/fixes.md, written by hand: what each benchmark found and the
before/after of each fix, which a re-run cannot observe again.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

from .harness import Backend, Context, Row, machine

HERE = Path(__file__).parent


def benchmarks() -> list[ModuleType]:
    modules = sorted(path.stem for path in HERE.glob("b[0-9]_*.py"))
    return [importlib.import_module(f"bench.{name}") for name in modules]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def page(rows: list[Row], elapsed: float, options: argparse.Namespace) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`python -m bench`) on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        f" in {elapsed / 60:.1f} min{' at tiny sizes' if options.tiny else ''}. Each figure is"
        f" the median of {options.runs} runs; each ratio is against its baseline measured in"
        " the same run.",
        "",
        "| Machine | |",
        "|---|---|",
        *(f"| {name} | {_cell(value)} |" for name, value in machine()),
        "",
        "| id | what | backend | figure | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        met = {True: "yes", False: "**no**", None: "-"}[row.met]
        cells = [row.id, row.what, row.backend, row.figure, row.baseline, row.ratio, row.target]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + f" | {met} |")
    notes = [f"- {row.id} ({row.backend}): {row.note}" for row in rows if row.note]
    if notes:
        lines += ["", "Notes:", "", *notes]
    fixes = HERE / "fixes.md"
    if fixes.exists():
        lines += ["", fixes.read_text().rstrip()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="smallest sizes, one run")
    parser.add_argument("--only", help="comma-separated ids, e.g. B3,B7")
    parser.add_argument("--runs", type=int, help="runs per figure (default 3, tiny 1)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    options = parser.parse_args(argv)
    options.runs = options.runs or (1 if options.tiny else 3)
    wanted = {item.strip().upper() for item in options.only.split(",")} if options.only else None
    backends: tuple[Backend, ...] = tuple(options.backends.split(","))  # type: ignore[arg-type]
    rows: list[Row] = []
    failed = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tfa-bench-") as folder:
        for module in benchmarks():
            if wanted is not None and module.ID not in wanted:
                continue
            print(f"{module.ID}: {module.WHAT}", file=sys.stderr, flush=True)
            ctx = Context(
                tiny=options.tiny,
                folder=Path(folder) / module.ID,
                runs=options.runs,
                backends=backends,
            )
            try:
                found = module.run(ctx)
            except Exception as exc:  # one broken benchmark must not hide the others' rows
                traceback.print_exc()
                failed.append(module.ID)
                found = [Row(module.ID, module.WHAT, "-", f"failed: {exc}", "", "", "", False)]
            for row in found:
                print(f"  {row}", file=sys.stderr, flush=True)
            rows += found
    options.out.write_text(page(rows, time.monotonic() - started, options))
    print(f"wrote {options.out}", file=sys.stderr)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
