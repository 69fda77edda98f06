"""Before and after: GET /api/v1/me and GET /healthz of several commits, side by side.

    python -m bench.commits 67be5c2 HEAD            # medians of 3 runs, 5 s per figure
    python -m bench.commits A B C --runs 5 --seconds 10

Each commit's server runs from a git worktree of that commit (its own tfa_server on
PYTHONPATH, this venv's packages) on a SQLite database its own code made, with one signed-in
account; each run measures every commit in turn, in a rotated order, so drift hits all alike.
Besides requests per second it reads the server's CPU time per request, per thread, from
/proc: on a shared machine that moves much less than throughput does. Prints a Markdown table
for bench/fixes.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from .harness import median
from .servers import PASSWORD, Process, sign_in, started
from .wrk import wrk

ROOT = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")

_PREPARE = """
import sys
from pathlib import Path
from bench.servers import prepare
prepare(sys.argv[1], Path(sys.argv[2]), accounts=1)
"""


@dataclass
class Figures:
    per_second: float
    main_us: float  # the event loop's thread, CPU time per request
    other_us: float  # every other thread (the database's), CPU time per request


def _threads(pid: int) -> dict[int, float]:
    """CPU seconds used so far by each thread of a process."""
    seconds = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        seconds[int(task.name)] = (int(fields[11]) + int(fields[12])) / TICK
    return seconds


def measure(server: Process, url: str, token: str, seconds: float) -> Figures:
    headers = {"Authorization": f"Bearer {token}"}
    wrk(url, seconds=1, headers=headers)  # warm-up
    before = _threads(server.pid)
    load = wrk(url, seconds=seconds, headers=headers)
    after = _threads(server.pid)
    used = {tid: after[tid] - before.get(tid, 0.0) for tid in after}
    main = used.pop(server.pid, 0.0)
    per_request = 1e6 / load.requests
    return Figures(load.per_second, main * per_request, sum(used.values()) * per_request)


def worktree(commit: str, folder: Path) -> tuple[str, Path]:
    sha = subprocess.run(  # noqa: S603 git, our own repository
        ["git", "rev-parse", "--short", commit],  # noqa: S607 git from PATH
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    path = folder / sha
    subprocess.run(  # noqa: S603
        ["git", "worktree", "add", "--detach", "--quiet", str(path), sha],  # noqa: S607
        cwd=ROOT,
        check=True,
    )
    return sha, path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.commits", description=__doc__)
    parser.add_argument("commits", nargs="+")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tfa-commits-") as scratch, ExitStack() as stack:
        folder = Path(scratch)
        servers: dict[str, tuple[Process, str]] = {}
        try:
            for commit in options.commits:
                sha, tree = worktree(commit, folder / "trees")
                env = {"PYTHONPATH": f"{tree / 'src'}{os.pathsep}{ROOT}"}
                db = str(folder / sha / "tfa.db")
                subprocess.run(  # noqa: S603 this interpreter, our own code
                    [sys.executable, "-c", _PREPARE, db, str(folder / sha / "setup")],
                    env={**os.environ, **env},
                    check=True,
                )
                argv = [sys.executable, "-m", "tfa_server", "serve", "--host", "127.0.0.1"]
                argv += ["--port", "0", "--max-connections-per-address", "256"]
                env |= {"TFA_DB": db, "TFA_KEY_FILE": str(folder / sha / "setup" / "tfa.key")}
                server = stack.enter_context(started(argv, folder / sha / "serve", env=env))
                servers[sha] = (server, sign_in(server.url, "user0", PASSWORD))
            seen: dict[tuple[str, str], list[Figures]] = {}
            names = list(servers)
            for run in range(options.runs):
                for sha in names[run % len(names) :] + names[: run % len(names)]:
                    server, token = servers[sha]
                    for path in ("/api/v1/me", "/healthz"):
                        figures = measure(server, server.url + path, token, options.seconds)
                        seen.setdefault((sha, path), []).append(figures)
                        print(f"  {sha} {path}: {figures}", file=sys.stderr, flush=True)
        finally:
            stack.close()
            subprocess.run(
                ["git", "worktree", "prune"],  # noqa: S607
                cwd=ROOT,
                check=False,
            )
    print("| commit | /me req/s | /me CPU per request (loop + database) | /healthz req/s |")
    print("|---|---|---|---|")
    for sha in names:
        me, health = seen[(sha, "/api/v1/me")], seen[(sha, "/healthz")]
        main_us = median([f.main_us for f in me])
        other_us = median([f.other_us for f in me])
        print(
            f"| {sha} | {median([f.per_second for f in me]):,.0f}"
            f" | {main_us:.0f} + {other_us:.0f} µs"
            f" | {median([f.per_second for f in health]):,.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
