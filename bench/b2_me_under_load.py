"""B2: latency of GET /api/v1/me from one client (sequential requests on one keep-alive
connection: wrk -c1) while B1's load (right-password sign-ins from 4 x CPU-count clients) runs,
beside the same client on the same server without load. Measured in turn, in a rotated order.
The issue's bound is absolute: p99 under load <= 10 ms; the ratio is shown for scale."""

from __future__ import annotations

import time

from .b1_sign_in import Background, clients
from .harness import BACKEND_NAMES, Context, Row, median, ratio_row
from .servers import PASSWORD, Process, prepare, sign_in, tfa_server
from .wrk import Load, wrk

ID = "B2"
WHAT = "GET /api/v1/me latency from one client while B1's sign-in load runs"
TOOLS = ("wrk",)


def one_client(server: Process, token: str, seconds: float) -> Load:
    return wrk(
        f"{server.url}/api/v1/me",
        seconds=seconds,
        connections=1,
        threads=1,
        headers={"Authorization": f"Bearer {token}"},
    )


def under_load(server: Process, token: str, accounts: int, seconds: float) -> tuple[Load, Load]:
    """The one client's figures while the sign-in load runs (started a second before, ended a
    second after), and the load's."""
    load = Background(server, accounts, seconds + 2)
    time.sleep(1)
    probe = one_client(server, token, seconds)
    return probe, load.result()


def run(ctx: Context) -> list[Row]:
    rows = []
    seconds = ctx.seconds(8, 1)
    accounts = ctx.size(1000, 20)
    for backend in ctx.backends:
        label = BACKEND_NAMES[backend]
        loaded: list[float] = []
        quiet: list[float] = []
        loaded_p50: list[float] = []
        with (
            ctx.database(backend, "b2") as db,
            ctx.scratch(f"b2-{backend}") as folder,
        ):
            # The probe's account is outside the load's rotation, so the load never pushes
            # its session out (the oldest goes past max sessions per user).
            key = prepare(db, folder / "setup", accounts + 1)
            with tfa_server(db, key, folder / "server") as server:
                token = sign_in(server.url, f"user{accounts}", PASSWORD)
                one_client(server, token, 1)  # warm-up
                for number in range(ctx.runs):
                    for turn in ("quiet", "loaded") if number % 2 == 0 else ("loaded", "quiet"):
                        if turn == "quiet":
                            probe = one_client(server, token, seconds)
                            quiet.append(probe.p99_ms)
                            ctx.log(
                                f"  /me alone: p50 {probe.p50_ms:.2f} ms, p99 {probe.p99_ms:.2f} ms"
                            )
                        else:
                            probe, load = under_load(server, token, accounts, seconds)
                            loaded.append(probe.p99_ms)
                            loaded_p50.append(probe.p50_ms)
                            ctx.log(
                                f"  /me under load: p50 {probe.p50_ms:.2f} ms,"
                                f" p99 {probe.p99_ms:.2f} ms; sign-ins {load.per_second:,.1f}/s"
                            )
        figure, base = median(loaded), median(quiet)
        rows.append(
            ratio_row(
                ID,
                WHAT,
                label,
                (figure, f"p99 {figure:.2f} ms (p50 {median(loaded_p50):.2f} ms)"),
                (base, f"p99 without load: {base:.2f} ms"),
                None,
                f"one keep-alive client (wrk -c1) beside {clients()} signing-in clients,"
                f" {accounts:,} accounts",
                limit=("p99", figure, "<=", 10, "ms"),
            )
        )
    return rows
