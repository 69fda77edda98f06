"""B3: throughput of GET /api/v1/me (signed in, keep-alive, 64 connections), beside
(a) a minimal asyncio + h11 server answering a fixed JSON body, (b) the same /me on the same
database served by uvicorn (h11, asyncio) + Starlette, (c) the same on uvicorn[standard]
(httptools, uvloop). Every server is a process of its own, started once; each run measures
them in turn, in a rotated order, so drift hits all alike.

Two more figures explain the rows, in the note: our own GET /healthz (the HTTP layer with no
session and no database), and the fixed body served by httptools on an asyncio.Protocol (what
the HTTP parser and the stream layer cost, beside (a))."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from .harness import BACKEND_NAMES, Context, Row, median, ratio_row
from .servers import PASSWORD, Process, prepare, sign_in, started, tfa_server
from .wrk import wrk

ID = "B3"
WHAT = "GET /api/v1/me throughput, keep-alive, 64 connections"
TOOLS = ("wrk",)
UVICORN_RUNNING = r"Uvicorn running on http://127\.0\.0\.1:(\d+)"


@dataclass
class Servers:
    ours: Process
    minimal: Process
    httptools: Process
    starlette: Process
    standard: Process
    token: str

    def urls(self) -> dict[str, str]:
        """What each measured name asks for."""
        return {
            "ours": f"{self.ours.url}/api/v1/me",
            "ours_health": f"{self.ours.url}/healthz",
            "minimal": f"{self.minimal.url}/api/v1/me",
            "httptools": f"{self.httptools.url}/api/v1/me",
            "starlette": f"{self.starlette.url}/api/v1/me",
            "standard": f"{self.standard.url}/api/v1/me",
        }


@contextmanager
def servers(db: str, folder: Path) -> Iterator[Servers]:
    """Ours and the three baselines on one database with one signed-in account."""
    import re

    key = prepare(db, folder / "setup", accounts=1)
    env = {"TFA_DB": db, "TFA_KEY_FILE": str(key)}
    baseline = [sys.executable, "-m", "bench.baselines.starlette_me"]
    root = Path(__file__).resolve().parent.parent
    with ExitStack() as stack:
        ours = stack.enter_context(tfa_server(db, key, folder / "ours"))
        minimal = stack.enter_context(
            started(
                [sys.executable, "-m", "bench.baselines.h11_minimal"],
                folder / "minimal",
                env={"PYTHONPATH": str(root)},
            )
        )
        httptools = stack.enter_context(
            started(
                [sys.executable, "-m", "bench.baselines.httptools_minimal"],
                folder / "httptools",
                env={"PYTHONPATH": str(root)},
            )
        )
        uvicorn = re.compile(UVICORN_RUNNING)
        starlette = stack.enter_context(
            started(
                [*baseline, "h11"],
                folder / "starlette",
                env={**env, "PYTHONPATH": str(root)},
                pattern=uvicorn,
            )
        )
        standard = stack.enter_context(
            started(
                [*baseline, "httptools"],
                folder / "standard",
                env={**env, "PYTHONPATH": str(root)},
                pattern=uvicorn,
            )
        )
        token = sign_in(ours.url, "user0", PASSWORD)
        yield Servers(ours, minimal, httptools, starlette, standard, token)


def measure(ctx: Context, running: Servers, seconds: float) -> dict[str, float]:
    """Requests per second of each server: the median of ctx.runs runs."""
    urls = running.urls()
    names = list(urls)
    seen: dict[str, list[float]] = {name: [] for name in names}
    headers = {"Authorization": f"Bearer {running.token}"}
    for run in range(ctx.runs):
        order = names[run % len(names) :] + names[: run % len(names)]
        for name in order:
            wrk(urls[name], seconds=1, headers=headers)  # warm-up
            load = wrk(urls[name], seconds=seconds, headers=headers)
            seen[name].append(load.per_second)
            ctx.log(f"  {name}: {load.per_second:,.0f} req/s, p99 {load.p99_ms:.1f} ms")
    return {name: median(values) for name, values in seen.items()}


def run(ctx: Context) -> list[Row]:
    rows = []
    seconds = ctx.seconds(5, 1)
    for backend in ctx.backends:
        label = BACKEND_NAMES[backend]
        with (
            ctx.database(backend, "b3") as db,
            ctx.scratch(f"b3-{backend}") as folder,
            servers(db, folder) as running,
        ):
            rates = measure(ctx, running, seconds)
        ours = (rates["ours"], f"{rates['ours']:,.0f} req/s")
        note = (
            f"wrk -t2 -c64, {seconds:.0f} s per figure after a 1 s warm-up. For the gap to (a):"
            f" our GET /healthz (HTTP layer, no session, no database) {rates['ours_health']:,.0f}"
            f" req/s; the fixed body on httptools + asyncio.Protocol instead of h11 + streams"
            f" {rates['httptools']:,.0f} req/s (wrk itself may be the limit there)."
        )
        for key, name, bound in (
            ("minimal", "(a) asyncio + h11, fixed body", 0.5),
            ("starlette", "(b) uvicorn (h11) + Starlette, same /me", 1.2),
            ("standard", "(c) uvicorn[standard] (httptools, uvloop) + Starlette", 0.8),
        ):
            rows.append(
                ratio_row(
                    ID,
                    f"{WHAT}, against {name.split(')')[0]})",
                    label,
                    ours,
                    (rates[key], f"{name}: {rates[key]:,.0f} req/s"),
                    (">=", bound),
                    note if key == "minimal" else "",
                )
            )
    return rows
