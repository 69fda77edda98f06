"""B7: POST /api/v1/verify (a relying service checking a user's code) throughput at 64
connections and p50 from one sequential client, beside B3's GET /api/v1/me measured the same
ways on the same server, in turn. The issue's bound is absolute: verify's p50 <= 2 ms.

Each right code is spent once (RFC 6238 5.2: a reused one is refused), so every request brings
a code not yet used: many accounts with TOTP secrets seeded through the product's own storage
(the secret encrypted with the server key), and wrk's Lua request() walks a list of bodies
computed beforehand, each wrk thread its own part, so no account is used twice within one time
step. A refused code is a non-2xx answer, which wrk.py turns into a failure, so it never counts
as throughput."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from tfa_server.config import TotpRules
from tfa_server.crypto import ServerKeys, load_key_file, token_digest
from tfa_server.storage import second_factor as factor_rows
from tfa_server.storage import services as service_rows
from tfa_server.storage import users
from tfa_server.storage.database import Connection, open_database, transaction
from tfa_server.totp import code_at, current_step, new_secret
from tfa_server.verify import new_service_key

from .harness import BACKEND_NAMES, Context, Row, median, ratio_row
from .servers import PASSWORD, Process, prepare, settings_for, sign_in, tfa_server
from .wrk import Load, lua_string, wrk

ID = "B7"
WHAT = "POST /api/v1/verify"
TOOLS = ("wrk",)
CONNECTIONS = 64
THREADS = 2

_BODIES = """
local parts = {{{parts}}}
local threads = 0
local mine = nil
local place = 0
wrk.headers["Content-Type"] = "application/json"
setup = function(thread)
  thread:set("part", threads)
  threads = threads + 1
end
init = function(args)
  mine = parts[(part or 0) + 1]
end
request = function()
  place = place + 1
  -- Past the end, a body the server refuses: wrk.py then fails rather than count it.
  return wrk.format("POST", nil, nil, mine[place] or "{{}}")
end
"""


@dataclass
class Codes:
    """The seeded accounts with 2FA and the step each last used, so no code is sent twice."""

    secrets: list[tuple[str, str]]  # (username, base32 secret)
    rules: TotpRules
    last_step: list[int] = field(default_factory=list)
    rate: float = 500.0  # verifications per second to plan for: the most seen so far

    def __post_init__(self) -> None:
        self.last_step = [0] * len(self.secrets)

    def bodies(self, count: int) -> list[str]:
        """`count` verify bodies, each with a right, unused code for a different account:
        the code of the next step, right while the server's step is this one or the next
        two (RFC 6238 window of one step), so for at least 30 s."""
        if count > len(self.secrets):
            raise ValueError(f"{count} codes asked of {len(self.secrets)} accounts")
        while True:
            step = current_step(time.time(), self.rules) + 1
            free = [n for n, last in enumerate(self.last_step) if last < step]
            if len(free) >= count:
                break
            # Every account has a code of this step spent: the next step frees them all.
            time.sleep(self.rules.period - time.time() % self.rules.period + 0.05)
        out = []
        for n in free[:count]:
            self.last_step[n] = step
            name, secret = self.secrets[n]
            body = {
                "username": name,
                "code": code_at(secret, step, self.rules),
                # Each end user from an address of their own, as behind a real service; one
                # address for all would meet the per-address limit, which counts every
                # attempt in flight until its code is checked.
                "remote_ip": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}",
            }
            out.append(json.dumps(body))
        return out

    def script(self, seconds: float, threads: int) -> str:
        """wrk's script: for each thread its own bodies, three times what `rate` needs (one
        thread may serve more than its half)."""
        share = min(
            math.ceil(self.rate * seconds * 3 / threads) + 100, len(self.secrets) // threads
        )
        bodies = self.bodies(share * threads)
        parts = [bodies[n * share : (n + 1) * share] for n in range(threads)]
        text = ",\n".join("{" + ",".join(lua_string(b) for b in part) + "}" for part in parts)
        return _BODIES.format(parts=text)


def seed(db: str, key: Path, accounts: int) -> tuple[Codes, str]:
    """2FA for user1 .. user{accounts - 1} (user0 keeps none, for /me) with known secrets,
    and a service; its key."""
    settings = settings_for(db, key)
    keys = ServerKeys(load_key_file(key))
    rules = settings.totp
    service_key = new_service_key()
    secrets = [(f"user{n}", new_secret(rules)) for n in range(1, accounts)]
    database = open_database(settings.database)
    database.open_sync()
    try:

        def _seed(conn: Connection) -> None:
            now = time.time()
            with transaction(conn):
                for name, secret in secrets:
                    user = users.by_name(conn, name)
                    assert user is not None
                    blob = keys.encrypt_secret(secret, user.id)
                    factor_rows.put_pending(conn, user.id, blob, now)
                    assert factor_rows.activate(conn, user.id, blob, 0, now)
                service_rows.create(conn, "bench", "B7", token_digest(service_key), now, "bench")

        database.run_sync(_seed)
    finally:
        database.close()
    return Codes(secrets, rules), service_key


def verify_load(
    server: Process, codes: Codes, service_key: str, seconds: float, connections: int
) -> Load:
    threads = min(THREADS, connections)
    load = wrk(
        f"{server.url}/api/v1/verify",
        seconds=seconds,
        connections=connections,
        threads=threads,
        method="POST",
        headers={"Authorization": f"Bearer {service_key}"},
        lua=codes.script(seconds, threads),
    )
    if connections > 1:
        codes.rate = max(codes.rate, load.per_second)
    return load


def me_load(server: Process, token: str, seconds: float, connections: int) -> Load:
    return wrk(
        f"{server.url}/api/v1/me",
        seconds=seconds,
        connections=connections,
        threads=min(THREADS, connections),
        headers={"Authorization": f"Bearer {token}"},
    )


def run(ctx: Context) -> list[Row]:
    rows = []
    seconds = ctx.seconds(5, 1)
    accounts = ctx.size(40_000, 4_000)
    for backend in ctx.backends:
        label = BACKEND_NAMES[backend]
        seen: dict[str, list[float]] = {name: [] for name in ("verify", "me", "verify1", "me1")}
        with (
            ctx.database(backend, "b7") as db,
            ctx.scratch(f"b7-{backend}") as folder,
        ):
            key = prepare(db, folder / "setup", accounts)
            codes, service_key = seed(db, key, accounts)
            with tfa_server(db, key, folder / "server") as server:
                token = sign_in(server.url, "user0", PASSWORD)
                verify_load(server, codes, service_key, 1, CONNECTIONS)  # warm-up, and a rate
                me_load(server, token, 1, CONNECTIONS)
                for number in range(ctx.runs):
                    order = ("verify", "me") if number % 2 == 0 else ("me", "verify")
                    for name in order:
                        if name == "verify":
                            many = verify_load(server, codes, service_key, seconds, CONNECTIONS)
                            one = verify_load(server, codes, service_key, seconds, 1)
                        else:
                            many = me_load(server, token, seconds, CONNECTIONS)
                            one = me_load(server, token, seconds, 1)
                        seen[name].append(many.per_second)
                        seen[f"{name}1"].append(one.p50_ms)
                        ctx.log(
                            f"  {name}: {many.per_second:,.0f} req/s at {CONNECTIONS}"
                            f" connections; one client p50 {one.p50_ms:.2f} ms,"
                            f" p99 {one.p99_ms:.2f} ms"
                        )
        rate, me_rate = median(seen["verify"]), median(seen["me"])
        p50, me_p50 = median(seen["verify1"]), median(seen["me1"])
        rows.append(
            ratio_row(
                ID,
                f"{WHAT} throughput at {CONNECTIONS} connections, and p50 from one client",
                label,
                (rate, f"{rate:,.0f} req/s, p50 {p50:.2f} ms"),
                (me_rate, f"B3's GET /api/v1/me: {me_rate:,.0f} req/s, p50 {me_p50:.2f} ms"),
                None,
                "ratio of throughputs; every request a right, unused code of another account"
                " (wrk, Lua bodies); p50 from one sequential keep-alive client (wrk -c1)",
                limit=("p50", p50, "<=", 2, "ms"),
            )
        )
    return rows
