"""B6: the server's resident memory with 10^5 accounts and 10^7 history events, after B3's
load (GET /api/v1/me, keep-alive, 64 connections, with wrk) and a few pages of history and of
the accounts list, against the same on 10^2 accounts and 10^3 events. Both servers run side by
side; each run loads them in a rotated order and reads /proc/PID/statm after each load."""

from __future__ import annotations

from contextlib import ExitStack

from .harness import BACKEND_NAMES, Context, Row, median, ratio_row
from .page_timing import Client
from .seed import ADMIN, HEAVY, seeded
from .servers import Process, tfa_server
from .wrk import wrk

ID = "B6"
WHAT = "server resident memory after /me load (64 connections) and some pages"
TOOLS = ("wrk",)
PAGES = (
    "/api/v1/admin/history?limit=200",
    "/api/v1/admin/history?limit=200&success=false",
    "/api/v1/admin/users?limit=200",
    "/api/v1/admin/users?limit=200&q=9",
)


def _load(server: Process, user: Client, admin: Client, seconds: float) -> float:
    """Resident MiB after the load."""
    headers = {"Authorization": f"Bearer {user.token}"}
    wrk(f"{server.url}/api/v1/me", seconds=seconds, headers=headers)
    for path in PAGES:
        for _ in range(5):
            admin.get(path)
    return server.rss_mib()


def run(ctx: Context) -> list[Row]:
    big_size = (100, 1_000) if ctx.tiny else (100_000, 10_000_000)
    small_size = (100, 100) if ctx.tiny else (100, 1_000)
    seconds = ctx.seconds(5, 1)
    rows: list[Row] = []
    for backend in ctx.backends:
        label = BACKEND_NAMES[backend]
        seen: dict[str, list[float]] = {"big": [], "small": []}
        with ExitStack() as stack:
            running = {}
            for which, (accounts, events) in (("big", big_size), ("small", small_size)):
                data = seeded(backend, accounts, events)
                folder = stack.enter_context(ctx.scratch(f"b6-{backend}-{which}"))
                server = stack.enter_context(tfa_server(data.db, data.key, folder))
                user, admin = Client(server.url, HEAVY), Client(server.url, ADMIN)
                stack.callback(user.close)
                stack.callback(admin.close)
                running[which] = (server, user, admin)
            for run_number in range(ctx.runs):
                order = ["big", "small"] if run_number % 2 == 0 else ["small", "big"]
                for which in order:
                    mib = _load(*running[which], seconds)
                    seen[which].append(mib)
                    ctx.log(f"  {label} {which}: {mib:.1f} MiB")
        big, small = median(seen["big"]), median(seen["small"])
        rows.append(
            ratio_row(
                ID,
                f"{WHAT}, {big_size[0]:,} accounts and {big_size[1]:,} events",
                label,
                (big, f"{big:.1f} MiB"),
                (small, f"{small_size[0]:,} accounts, {small_size[1]:,} events: {small:.1f} MiB"),
                ("<=", 1.1),
                limit=("resident", big, "<=", 100, "MiB"),
            )
        )
    return rows
