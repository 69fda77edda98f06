"""B4: one history page of 50 rows as history grows from 10^4 to 10^7 events, for one account
(its own history) and for the administrator's views of everyone's (all, one name, refused
attempts, one name's refused attempts). Measured from outside, HTTP included: the p50 of
requests one at a time over a keep-alive connection. One server per size runs side by side,
each run visits them in a rotated order, and each size's p50 is set against the smallest's.

The account is seed.HEAVY, a twentieth of all rows: its pages are full at every size. A
typical account of 10^5 has too few rows at 10^4 events to fill a page; one (QUIET) is asked
for all the same, since finding its few rows must not cost a walk over everyone's."""

from __future__ import annotations

from contextlib import ExitStack

from .harness import BACKEND_NAMES, Context, Row, median, ratio_row
from .page_timing import Client
from .seed import ADMIN, HEAVY, seeded
from .servers import tfa_server

ID = "B4"
WHAT = "one history page of 50 rows"
ACCOUNTS = 100_000
QUIET = "user77"  # an account of the 100 of tiny sizes, and of 10^5
# (name, path, who asks)
VIEWS = (
    ("own history (GET /me/history)", "/api/v1/me/history?limit=50", "user"),
    ("admin, everyone's", "/api/v1/admin/history?limit=50", "admin"),
    ("admin, one name", f"/api/v1/admin/history?limit=50&username={HEAVY}", "admin"),
    ("admin, refused attempts", "/api/v1/admin/history?limit=50&success=false", "admin"),
    (
        "admin, one name's refused attempts",
        f"/api/v1/admin/history?limit=50&username={HEAVY}&success=false",
        "admin",
    ),
    # A name with few rows: its page is short at every size, and must not cost a walk over
    # everyone's refused attempts to find them.
    (
        "admin, a quiet name's refused attempts",
        f"/api/v1/admin/history?limit=50&username={QUIET}&success=false",
        "admin",
    ),
)


def _power(number: int) -> str:
    exponent = len(str(number)) - 1
    return f"10^{exponent}" if number == 10**exponent else f"{number:,}"


def run(ctx: Context) -> list[Row]:
    sizes = (10**2, 10**3) if ctx.tiny else (10**4, 10**5, 10**6, 10**7)
    accounts = ctx.size(ACCOUNTS, 100)
    requests = ctx.size(200, 20)
    rows: list[Row] = []
    for backend in ctx.backends:
        label = BACKEND_NAMES[backend]
        seen: dict[tuple[int, str], list[float]] = {}
        with ExitStack() as stack:
            clients: dict[int, dict[str, Client]] = {}
            for events in sizes:
                data = seeded(backend, accounts, events)
                ctx.log(
                    f"  {label}: {accounts:,} accounts, {events:,} events ({data.seconds:.0f} s)"
                )
                folder = stack.enter_context(ctx.scratch(f"b4-{backend}-{events}"))
                server = stack.enter_context(tfa_server(data.db, data.key, folder))
                clients[events] = {
                    "user": Client(server.url, HEAVY),
                    "admin": Client(server.url, ADMIN),
                }
                for client in clients[events].values():
                    stack.callback(client.close)
            for run_number in range(ctx.runs):
                shift = run_number % len(sizes)
                for events in sizes[shift:] + sizes[:shift]:
                    for name, path, who in VIEWS:
                        p50 = clients[events][who].p50_ms(path, requests)
                        seen.setdefault((events, name), []).append(p50)
                        ctx.log(f"  {label} {_power(events)} {name}: p50 {p50:.2f} ms")
        base = sizes[0]
        for name, _path, _who in VIEWS:
            base_p50 = median(seen[(base, name)])
            for events in sizes[1:]:
                p50 = median(seen[(events, name)])
                rows.append(
                    ratio_row(
                        ID,
                        f"{WHAT}, {name}, {_power(events)} events",
                        label,
                        (p50, f"p50 {p50:.2f} ms"),
                        (base_p50, f"{_power(base)} events: p50 {base_p50:.2f} ms"),
                        ("<=", 1.5),
                        limit=("p50", p50, "<=", 3, "ms"),
                    )
                )
    return rows
