"""B8: one page of the administrator's accounts list (50 names, in name order) and name
searches, with 10^5 accounts against the same with 10^3. Measured from outside, HTTP included:
the p50 of requests one at a time over a keep-alive connection; both servers side by side,
visited in a rotated order each run.

The searches are chosen to cost what they can: a term in many names (the page fills after a
short walk), one in a single name near the end of the name order, and one in none (every
name must be looked at, unless an index answers it)."""

from __future__ import annotations

from contextlib import ExitStack

from .harness import BACKEND_NAMES, Context, Row, median, ratio_row
from .page_timing import Client
from .seed import ADMIN, seeded
from .servers import tfa_server

ID = "B8"
WHAT = "the admin's accounts list, one page of 50"


def views(accounts: int) -> tuple[tuple[str, str], ...]:
    last = f"{accounts - 1}"
    return (
        ("first page", "/api/v1/admin/users?limit=50"),
        ("a page from the middle", f"/api/v1/admin/users?limit=50&after=user{accounts // 2}"),
        ("search in many names (q=1)", "/api/v1/admin/users?limit=50&q=1"),
        (f"search in one name (q={last})", f"/api/v1/admin/users?limit=50&q={last}"),
        ("search in no name (q=zq)", "/api/v1/admin/users?limit=50&q=zq"),
        ("search in no name (q=nobody)", "/api/v1/admin/users?limit=50&q=nobody"),
    )


def run(ctx: Context) -> list[Row]:
    # Events do not matter here; these sizes are databases B4 made already in the same run.
    big, small = (ctx.size(100_000, 1_000), ctx.size(10_000, 100))
    small_accounts = ctx.size(1_000, 100)
    sizes = {"big": (ctx.size(100_000, 1_000), big), "small": (small_accounts, small)}
    del big, small
    requests = ctx.size(200, 20)
    rows: list[Row] = []
    for backend in ctx.backends:
        label = BACKEND_NAMES[backend]
        seen: dict[tuple[str, str], list[float]] = {}
        with ExitStack() as stack:
            clients: dict[str, Client] = {}
            for which, (accounts, events) in sizes.items():
                data = seeded(backend, accounts, events)
                folder = stack.enter_context(ctx.scratch(f"b8-{backend}-{which}"))
                server = stack.enter_context(tfa_server(data.db, data.key, folder))
                clients[which] = Client(server.url, ADMIN)
                stack.callback(clients[which].close)
            for run_number in range(ctx.runs):
                order = ["big", "small"] if run_number % 2 == 0 else ["small", "big"]
                for which in order:
                    accounts = sizes[which][0]
                    for name, path in views(accounts):
                        p50 = clients[which].p50_ms(path, requests)
                        key = (which, name.split(" (q=")[0] if "one name" in name else name)
                        seen.setdefault(key, []).append(p50)
                        ctx.log(f"  {label} {accounts:,} accounts, {name}: p50 {p50:.2f} ms")
        big_accounts, small_accounts = sizes["big"][0], sizes["small"][0]
        for name, _path in views(big_accounts):
            key = name.split(" (q=")[0] if "one name" in name else name
            p50, base = median(seen[("big", key)]), median(seen[("small", key)])
            rows.append(
                ratio_row(
                    ID,
                    f"{WHAT}: {name}, {big_accounts:,} accounts",
                    label,
                    (p50, f"p50 {p50:.2f} ms"),
                    (base, f"{small_accounts:,} accounts: p50 {base:.2f} ms"),
                    ("<=", 1.5),
                    limit=("p50", p50, "<=", 5, "ms"),
                )
            )
    return rows
