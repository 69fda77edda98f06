"""B1: password-step sign-in throughput (POST /api/v1/login with the right password) over many
accounts, from 4 x CPU-count concurrent clients (wrk, a Lua request() turning the name over the
accounts), beside the hardware's own limit: raw Argon2id verifications per second with the
server's parameters (tfa_server.config's defaults, the same PasswordHasher settings) on
CPU-count threads, in a process of its own, no HTTP. The two are measured in turn, in a rotated
order, so drift hits both alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from .harness import BACKEND_NAMES, Context, Row, median, ratio_row
from .servers import PASSWORD, Process, prepare, tfa_server
from .wrk import Load, lua_string, wrk

ID = "B1"
WHAT = "password-step sign-in throughput, many accounts, 4 x CPU-count clients"
TOOLS = ("wrk",)

# Every wrk thread starts at its own place in the account list, and each request takes the
# next name, so concurrent sign-ins are for different accounts, as from many people.
_ROTATE = """
local accounts = {accounts}
local password = {password}  -- as JSON, quotes included
local threads = 0
local place = 0
wrk.headers["Content-Type"] = "application/json"
setup = function(thread)
  thread:set("first", threads * 7919)
  threads = threads + 1
end
init = function(args)
  place = first or 0
end
request = function()
  place = place + 1
  local body = '{{"username": "user' .. (place % accounts) .. '", "password": ' .. password .. '}}'
  return wrk.format("POST", nil, nil, body)
end
"""

# The baseline: a process of its own (no GIL shared with anything), CPU-count threads each
# verifying the right password against the production hash for a while.
_RAW_ARGON2 = """
import json, os, sys, threading, time
from argon2 import PasswordHasher, Type
from tfa_server.config import PasswordHashing
cost = PasswordHashing()
hasher = PasswordHasher(time_cost=cost.time_cost, memory_cost=cost.memory_kib,
                        parallelism=cost.parallelism, type=Type.ID)
password = sys.argv[2]
stored = hasher.hash(password)
seconds = float(sys.argv[1])
counts = []
def work(counts):
    deadline = time.monotonic() + seconds
    done = 0
    while time.monotonic() < deadline:
        assert hasher.verify(stored, password)
        done += 1
    counts.append((done, time.monotonic()))
threads = [threading.Thread(target=work, args=(counts,)) for _ in range(os.cpu_count() or 1)]
started = time.monotonic()
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
elapsed = max(end for _, end in counts) - started
done = sum(done for done, _ in counts)
print(json.dumps({"verifications": done, "seconds": elapsed, "cpu": time.process_time()}))
"""


def clients() -> int:
    return 4 * (os.cpu_count() or 1)


def rotating_sign_ins(accounts: int) -> str:
    """wrk's script for sign-ins of user0 .. user{accounts - 1} in turn."""
    return _ROTATE.format(accounts=accounts, password=lua_string(json.dumps(PASSWORD)))


def raw_argon2(seconds: float) -> tuple[float, float]:
    """Argon2id verifications per second with the server's parameters on CPU-count threads,
    and the CPU each verification took (seconds)."""
    done = subprocess.run(  # noqa: S603 our own interpreter
        [sys.executable, "-c", _RAW_ARGON2, str(seconds), PASSWORD],
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(done.stdout)
    verifications = float(seen["verifications"])
    return verifications / float(seen["seconds"]), float(seen["cpu"]) / verifications


def sign_in_load(server: Process, accounts: int, seconds: float) -> Load:
    """B1's load: right-password sign-ins over the accounts from 4 x CPU-count clients."""
    return wrk(
        f"{server.url}/api/v1/login",
        seconds=seconds,
        connections=clients(),
        threads=min(2, clients()),
        method="POST",
        lua=rotating_sign_ins(accounts),
    )


class Background:
    """sign_in_load in a thread: B2 measures beside it."""

    def __init__(self, server: Process, accounts: int, seconds: float) -> None:
        self.load: Load | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(server, accounts, seconds), daemon=True
        )
        self._thread.start()

    def _run(self, server: Process, accounts: int, seconds: float) -> None:
        try:
            self.load = sign_in_load(server, accounts, seconds)
        except BaseException as exc:  # handed to the caller by result()
            self.error = exc

    def result(self) -> Load:
        self._thread.join()
        if self.error is not None:
            raise self.error
        assert self.load is not None
        return self.load


def refusals(log: Path) -> int:
    """Sign-ins the server's access log shows refused (throttled or over a limit)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return sum(1 for line in text.splitlines() if "/api/v1/login" in line and " 429 " in line)


def run(ctx: Context) -> list[Row]:
    """Sign-ins and raw hashing in adjacent pairs, turn about: this machine's speed drifts by
    a fifth within minutes, so each pair's ratio is taken side by side and the row reports
    their median (and the CPU each sign-in cost the server beside each raw verification's)."""
    rows = []
    # Tiny: 2 s, so a suite that loads both cores with other tests still sees sign-ins
    # complete (each waits for a password hash on a busy machine).
    seconds = ctx.seconds(6, 2)
    accounts = ctx.size(1000, 20)
    pairs = 2 * ctx.runs
    for backend in ctx.backends:
        label = BACKEND_NAMES[backend]
        ours: list[float] = []
        raw: list[float] = []
        ours_cpu: list[float] = []
        raw_cpu: list[float] = []
        with (
            ctx.database(backend, "b1") as db,
            ctx.scratch(f"b1-{backend}") as folder,
        ):
            key = prepare(db, folder / "setup", accounts)
            with tfa_server(db, key, folder / "server") as server:
                sign_in_load(server, accounts, 2)  # warm-up
                for number in range(pairs):
                    for turn in ("ours", "raw") if number % 2 == 0 else ("raw", "ours"):
                        if turn == "ours":
                            before = server.cpu_seconds()
                            load = sign_in_load(server, accounts, seconds)
                            spent = server.cpu_seconds() - before
                            ours.append(load.per_second)
                            ours_cpu.append(spent / max(1, load.requests))
                            ctx.log(
                                f"  sign-in: {load.per_second:,.1f}/s, p50 {load.p50_ms:.0f} ms,"
                                f" p99 {load.p99_ms:.0f} ms, {ours_cpu[-1] * 1000:.1f} ms CPU"
                            )
                        else:
                            rate, cpu = raw_argon2(seconds)
                            raw.append(rate)
                            raw_cpu.append(cpu)
                            ctx.log(f"  raw Argon2id: {rate:,.1f}/s, {cpu * 1000:.1f} ms CPU")
                refused = refusals(server.log)
        figure, base = median(ours), median(raw)
        side_by_side = median([mine / theirs for mine, theirs in zip(ours, raw, strict=True)])
        note = (
            f"{accounts:,} accounts, {clients()} clients, wrk; median of {pairs} adjacent"
            f" pairs' ratios; server CPU per sign-in {median(ours_cpu) * 1000:.1f} ms"
            f" (every thread) against {median(raw_cpu) * 1000:.1f} ms per raw verification"
        )
        if refused:
            note += f"; {refused} sign-ins refused (429) in the server log"
        rows.append(
            ratio_row(
                ID,
                WHAT,
                label,
                (figure, f"{figure:,.1f} sign-ins/s"),
                (base, f"raw Argon2id verify, {os.cpu_count()} threads: {base:,.1f}/s"),
                (">=", 0.9),
                note,
                ratio=side_by_side,
            )
        )
    return rows
